"""Evidence crops: cut from the video at the face search's moments, stored privately, linked.

The geometry and the decoding are tested on generated videos whose faces are
at known places (tests/support/video_maker.py): a crop must hold that face,
centred, at the size the page shows, and a crop at a moment when the person
was not there must hold no face. The hand-off is tested through the real
handlers: the completion sends one message to the evidence queue (moto SQS),
``cut_evidence`` takes it as Lambda's SQS event source would, and the
session's page answers presigned links to the stored JPEGs. A video that
cannot be decoded leaves the session COMPLETED, its rows without crops, and
the failure in the log.
"""
import io
import json
import logging
import urllib.parse

import pytest
from PIL import Image

from chalicelib import evidence
from chalicelib.evidence import Cut, crop_region, cut_from, plan
from tests.support.video_maker import make_video
from test_attendance_fakes import (MP4_BYTES, add_students, by_student, create_session,
                                   s3_event, seen, session_detail, sighting, sns_event,
                                   upload_video, video_search)  # noqa: F401 (fixture)

SIZE = (640, 360)


def ratio_box(ltrb, size=SIZE):
    """Pixel (l, t, r, b) -> the face search's (left, top, width, height) ratios."""
    l, t, r, b = ltrb
    return (l / size[0], t / size[1], (r - l) / size[0], (b - t) / size[1])


def faces_in(jpeg):
    """The faces dlib's HOG detector finds in a JPEG: [(l, t, r, b)], and the image size."""
    import dlib
    import numpy as np
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    found = dlib.get_frontal_face_detector()(np.asarray(image), 1)
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in found], image.size


@pytest.fixture(scope="module")
def two_people(tmp_path_factory, faces_dir_module):
    """A 4 s video: Obama at the left for 0-2 s, Simm at the right for 2-4 s."""
    people = faces_dir_module / "people"
    path = tmp_path_factory.mktemp("video") / "two.mp4"
    meta = make_video(path, [
        dict(image=people / "barack_obama" / "2.jpg", start_s=0.0, end_s=2.0, x=40, y=60,
             height=110),
        dict(image=people / "john_simm" / "2.jpg", start_s=2.0, end_s=4.0, x=380, y=80,
             height=100),
    ], size=SIZE, fps=10, duration_s=4.0)
    return path, meta


@pytest.fixture(scope="module")
def faces_dir_module():
    from conftest import shared_faces_dir
    path = shared_faces_dir()
    if not (path / "people").is_dir():
        pytest.skip(f"face photos not found in {path}")
    return path


# -- geometry (pure) -----------------------------------------------------------------
def test_a_crop_is_a_square_around_the_face_kept_inside_the_frame():
    # A 100x100 face in the middle of a 640x360 frame, 35 % margin: a 170 px square.
    assert crop_region((270 / 640, 130 / 360, 100 / 640, 100 / 360), 640, 360, 0.35) == \
        (235, 95, 405, 265)
    # At the top-left corner the square moves inside the frame, the face still in it.
    l, t, r, b = crop_region((0.0, 0.0, 60 / 640, 60 / 360), 640, 360, 0.35)
    assert (l, t) == (0, 0) and r - l == b - t == 102
    # Larger than the frame's height: cut to it.
    l, t, r, b = crop_region((0.3, 0.1, 0.3, 0.8), 640, 360, 0.8)
    assert b - t == 360 and r - l == 360


def test_the_plan_names_each_seen_student_and_each_stranger():
    rows = [{"student_id": "ada", "moments": {"best": {"ms": 1500, "box": [0.1, 0.1, 0.2, 0.3]},
                                              "first": {"ms": 500, "box": [0.1, 0.1, 0.2, 0.3]}}},
            {"student_id": "bob", "moments": None}]
    strangers = [{"moment": {"ms": 900, "box": [0.5, 0.5, 0.1, 0.1]}},
                 {"moment": {"ms": 100, "box": None}},
                 {"from_student": "ada", "moment": {"ms": 1500, "box": [0.1] * 4}}]
    assert [(c.name, c.ms, c.photo) for c in plan(rows, strangers)] == [
        ("student-ada-best", 1500, False), ("student-ada-first", 500, False),
        ("stranger-1", 900, False), ("stranger-1-photo", 900, True)]


# -- decoding (generated video, faces at known places) --------------------------------
def test_crops_hold_the_face_at_its_place_and_moment(two_people):
    path, meta = two_people
    obama, simm = (ratio_box(a["face_box"]) for a in meta["appearances"])
    cuts = [Cut("obama", 1000, obama), Cut("simm", 3000, simm),
            Cut("obama-photo", 1000, obama, photo=True),
            Cut("obama-gone", 3000, obama)]  # his place when he has left
    with open(path, "rb") as video:
        crops = {cut.name: data for cut, data in cut_from(video, cuts)}
    assert set(crops) == {c.name for c in cuts}
    for name in ("obama", "simm"):
        found, size = faces_in(crops[name])
        assert size == (evidence.THUMB_SIDE, evidence.THUMB_SIDE)
        assert len(found) == 1, name
        l, t, r, b = found[0]
        # Centred, and the face fills about 1 / (1 + 2 * margin) of the crop.
        assert abs((l + r) / 2 - 80) < 20 and abs((t + b) / 2 - 80) < 24, found
        assert 60 <= r - l <= 125, found
    assert faces_in(crops["obama-gone"])[0] == []
    # The registration photo: full resolution (face ~110 px, never scaled), wide margin.
    found, size = faces_in(crops["obama-photo"])
    assert len(found) == 1 and size[0] == size[1] and 250 <= size[0] <= 360
    assert Image.open(io.BytesIO(crops["obama"])).format == "JPEG"


def test_crops_of_a_portrait_phone_video_are_upright(tmp_path, faces_dir_module):
    """Stored sideways with a display matrix: boxes are of the upright picture."""
    people = faces_dir_module / "people"
    meta = make_video(tmp_path / "portrait.mp4", [
        dict(image=people / "john_simm" / "2.jpg", start_s=0.0, end_s=2.0, x=60, y=200,
             height=120)], size=(360, 640), fps=10, duration_s=2.0, rotation=90)
    box = ratio_box(meta["appearances"][0]["face_box"], (360, 640))
    with open(tmp_path / "portrait.mp4", "rb") as video:
        [(cut, data)] = list(cut_from(video, [Cut("simm", 1000, box)]))
    assert len(faces_in(data)[0]) == 1


def test_the_video_is_read_from_s3_in_ranges(services, two_people):
    path, meta = two_people
    s3 = services.clients.client("s3")
    bucket = services.settings.videos_bucket
    s3.put_object(Bucket=bucket, Key="videos/x/video.mp4", Body=path.read_bytes())
    remote = evidence.S3File(s3, bucket, "videos/x/video.mp4", block=16 * 1024)
    box = ratio_box(meta["appearances"][0]["face_box"])
    [(cut, data)] = list(cut_from(remote, [Cut("obama", 500, box)]))
    assert len(faces_in(data)[0]) == 1 and remote.requests >= 1


# -- the hand-off, through the handlers ---------------------------------------------
def evidence_messages(services):
    sqs = services.clients.client("sqs")
    url = sqs.get_queue_url(QueueName=services.settings.evidence_queue)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    bodies = [m["Body"] for m in got.get("Messages", [])]
    for message in got.get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def deliver_evidence(api, services):
    """What Lambda's SQS event source does: hand the queued messages to cut_evidence."""
    bodies = evidence_messages(services)
    if bodies:
        api.lambda_.invoke("cut_evidence", api.events.generate_sqs_event(
            message_bodies=bodies, queue_name=services.settings.evidence_queue))
    return bodies


def complete(api, headers, services, fake, persons, video_bytes, **fields):
    fake.persons = list(persons)
    session = create_session(api, headers, **fields)["session"]
    upload_video(services, session, data=video_bytes)
    s3_event(api, services, session["video_key"])
    job_id = session_detail(api, headers, session["session_id"])["session"]["job_id"]
    sns_event(api, fake.message(job_id))
    return session["session_id"], job_id


def test_completed_first_then_crops_stored_privately_and_linked(api, admin_headers, services,
                                                               video_search, two_people):
    path, meta = two_people
    obama, simm = (ratio_box(a["face_box"]) for a in meta["appearances"])
    add_students(services, [("obama", "Barack Obama"), ("biden", "Joe Biden")])
    persons = ([sighting(t, 0, [("obama", 97.0 if t == 1200 else 92.0)], box=obama)
                for t in (200, 700, 1200, 1700)]
               + [sighting(t, 1, box=simm) for t in (2200, 2700, 3200)])
    session_id, job_id = complete(api, admin_headers, services, video_search, persons,
                                  path.read_bytes())

    # The attendance is there before any crop: COMPLETED, crops pending.
    detail = session_detail(api, admin_headers, session_id)
    assert detail["session"]["status"] == "COMPLETED"
    assert detail["session"]["evidence_status"] == "pending"
    rows = by_student(detail)
    assert rows["obama"]["crops"] == {"best": None, "first": None}
    assert rows["obama"]["moments"]["best"]["ms"] == 1200
    assert rows["obama"]["moments"]["first"]["ms"] == 200
    assert rows["obama"]["seen_for_ms"] == 1500
    [stranger] = detail["session"]["strangers"]
    assert stranger["number"] == 1 and stranger["first_seen_ms"] == 2200
    assert stranger["seen_for_ms"] == 1000 and stranger["crop"] is None

    bodies = deliver_evidence(api, services)
    assert [json.loads(b) for b in bodies] == [{"session_id": session_id, "job_id": job_id}]
    detail = session_detail(api, admin_headers, session_id)
    assert detail["session"]["evidence_status"] == "ready"
    rows = by_student(detail)
    assert rows["biden"]["crops"] == {"best": None, "first": None}  # never seen: no crop
    for url in (rows["obama"]["crops"]["best"], rows["obama"]["crops"]["first"],
                detail["session"]["strangers"][0]["crop"]):
        assert "Signature=" in url and "/evidence/" + session_id + "/" in url  # presigned
        key = urllib.parse.urlsplit(url).path.lstrip("/")
        key = key.split("/", 1)[1] if key.startswith(services.settings.videos_bucket) else key
        stored = services.clients.client("s3").get_object(
            Bucket=services.settings.videos_bucket, Key=key)
        assert stored["ContentType"] == "image/jpeg"
        assert len(faces_in(stored["Body"].read())[0]) == 1
    assert detail["session"]["strangers"][0]["has_photo"] is True

    # A repeated message writes nothing new.
    s3 = services.clients.client("s3")
    before = s3.list_objects_v2(Bucket=services.settings.videos_bucket,
                                Prefix=f"evidence/{session_id}/")["KeyCount"]
    assert before == 4  # obama best + first, stranger crop + photo
    assert services.evidence.cut(session_id, job_id) == "ready"


def test_the_session_completes_when_crops_cannot_be_cut(api, admin_headers, services,
                                                       video_search, caplog):
    add_students(services, [("ada", "Ada Lovelace")])
    session_id, _ = complete(api, admin_headers, services, video_search,
                             seen("ada", 0, [0, 500, 1000]), MP4_BYTES)
    # The video cannot be read any more when the crops are cut (here: it is gone).
    s3, bucket = services.clients.client("s3"), services.settings.videos_bucket
    for listed in s3.list_objects_v2(Bucket=bucket, Prefix="").get("Contents", []):
        if session_id in listed["Key"]:
            s3.delete_object(Bucket=bucket, Key=listed["Key"])
    with caplog.at_level(logging.ERROR, logger="rollcall"):
        deliver_evidence(api, services)
    detail = session_detail(api, admin_headers, session_id)
    assert detail["session"]["status"] == "COMPLETED"
    assert detail["session"]["evidence_status"] == "failed"
    row = by_student(detail)["ada"]
    assert row["status"] == "PRESENT" and row["crops"] == {"best": None, "first": None}
    assert any(r.getMessage() == "evidence crops could not be cut" for r in caplog.records)


def test_the_session_completes_when_the_crops_cannot_even_be_asked_for(
        api, admin_headers, services, video_search, caplog):
    sqs = services.clients.client("sqs")
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(
        QueueName=services.settings.evidence_queue)["QueueUrl"])
    add_students(services, [("ada", "Ada Lovelace")])
    with caplog.at_level(logging.ERROR, logger="rollcall"):
        session_id, _ = complete(api, admin_headers, services, video_search,
                                 seen("ada", 0, [0, 500]), MP4_BYTES)
    detail = session_detail(api, admin_headers, session_id)
    assert detail["session"]["status"] == "COMPLETED"
    assert detail["session"]["evidence_status"] == "failed"
    assert by_student(detail)["ada"]["status"] == "PRESENT"
    assert any(r.getMessage() == "evidence crops could not be requested"
               for r in caplog.records)


def test_a_message_for_a_replaced_job_changes_nothing(services):
    assert services.evidence.cut("0" * 32, "job") is None


def test_deleting_a_session_deletes_its_crops(api, admin_headers, services, video_search,
                                              two_people):
    path, meta = two_people
    add_students(services, [("obama", "Barack Obama")])
    box = ratio_box(meta["appearances"][0]["face_box"])
    session_id, _ = complete(api, admin_headers, services, video_search,
                             [sighting(t, 0, [("obama", 95.0)], box=box) for t in (200, 700)],
                             path.read_bytes())
    deliver_evidence(api, services)
    s3, bucket = services.clients.client("s3"), services.settings.videos_bucket
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"evidence/{session_id}/")["KeyCount"] == 2
    assert api.http.delete(f"/sessions/{session_id}", headers=admin_headers).status_code == 204
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"evidence/{session_id}/")["KeyCount"] == 0


def test_deleting_a_person_deletes_their_crops_and_keeps_their_row(
        api, admin_headers, services, video_search, two_people):
    path, meta = two_people
    obama, simm = (ratio_box(a["face_box"]) for a in meta["appearances"])
    add_students(services, [("obama", "Barack Obama")])
    session_id, _ = complete(api, admin_headers, services, video_search,
                             [sighting(t, 0, [("obama", 95.0)], box=obama) for t in (200, 700)]
                             + [sighting(t, 1, box=simm) for t in (2200, 2700)],
                             path.read_bytes())
    deliver_evidence(api, services)
    assert api.http.delete("/students/obama", headers=admin_headers).status_code == 204
    s3, bucket = services.clients.client("s3"), services.settings.videos_bucket
    left = [o["Key"].rsplit("/", 1)[-1] for o in s3.list_objects_v2(
        Bucket=bucket, Prefix=f"evidence/{session_id}/")["Contents"]]
    assert sorted(left) == ["stranger-1-photo.jpg", "stranger-1.jpg"]
    detail = session_detail(api, admin_headers, session_id)
    row = by_student(detail)["obama"]
    assert row["full_name"] == "Barack Obama" and row["crops"] == {"best": None, "first": None}
