"""Grouping unrecognised people by face on the built-in engine, with real photos.

The calls are the ones the evidence function makes on AWS (a scratch
collection, IndexFaces, SearchFaces), answered by the engine; the bar is the
app's MATCH_THRESHOLD as configured, never a value chosen for these photos.
Crops are cut by the evidence code itself (``evidence.render``), from the
photos of ../shared/faces, and from a video made of them.
"""
import io

import pytest
from PIL import Image

from chalicelib import evidence, strangers
from tests.fakes.drivers import session_detail
from tests.fakes.evidence import SearchAndFaces, complete, deliver_evidence, ratio_box
from tests.fakes.video_search import sighting
from tests.support.video_maker import face_box, load_rgb, make_video

pytestmark = pytest.mark.engine


def crop_of(path):
    """The thumbnail the evidence function would cut around the photo's face."""
    image = Image.fromarray(load_rgb(path))
    l, t, r, b = face_box(str(path))
    box = (l / image.width, t / image.height, (r - l) / image.width, (b - t) / image.height)
    return evidence.render(image, evidence.Cut("face", 0, box))


def test_crops_of_one_person_from_two_photos_group_and_different_people_stay_apart(
        services, face_rekognition, faces_dir):
    people = faces_dir / "people"
    shown = [("john_simm", 1), ("john_savage", 1), ("john_simm", 3), ("joe_biden", 2),
             ("john_savage", 4), ("rose_leslie", 1), ("john_schneider", 2)]
    crops = {n: crop_of(people / who / f"{photo}.jpg")
             for n, (who, photo) in enumerate(shown, start=1)}
    collection = strangers.scratch_collection_id(services.settings.face_collection, "0" * 32,
                                                 0, "1" * 32)
    matches = strangers.same_faces(face_rekognition, collection, crops,
                                   services.settings.match_threshold)
    groups = strangers.groups_of(sorted(crops), matches, {})
    assert groups == [(1, 3), (2, 5)]  # Simm twice, Savage twice; nobody else together
    # The scratch collection is gone.
    assert collection not in face_rekognition.list_collections()["CollectionIds"]


@pytest.fixture(scope="module")
def moving_stranger(tmp_path_factory, faces_dir_module):
    """5 s: Simm (not registered) at the left, then, from another photo, at the right;
    Savage (not registered either) in the middle throughout."""
    people = faces_dir_module / "people"
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    meta = make_video(path, [
        dict(image=people / "john_simm" / "1.jpg", start_s=0.0, end_s=2.0, x=30, y=90,
             height=100),
        dict(image=people / "john_savage" / "1.jpg", start_s=0.0, end_s=5.0, x=250, y=60,
             height=110),
        dict(image=people / "john_simm" / "3.jpg", start_s=2.5, end_s=5.0, x=460, y=100,
             height=100),
    ], size=(640, 360), fps=10, duration_s=5.0)
    return path, [ratio_box(a["face_box"]) for a in meta["appearances"]]


@pytest.fixture
def engine_faces(services, video_search, face_rekognition):
    """The fake face search (it says where the faces are); the engine for the rest."""
    services.clients.register("rekognition", SearchAndFaces(video_search, face_rekognition))
    return face_rekognition


def test_a_stranger_the_person_index_split_is_shown_once(api, admin_headers, services,
                                                        video_search, engine_faces,
                                                        moving_stranger):
    path, (simm_left, savage, simm_right) = moving_stranger
    persons = ([sighting(t, 0, box=simm_left) for t in (200, 700, 1200, 1700)]
               + [sighting(t, 1, box=savage) for t in range(200, 4800, 500)]
               + [sighting(t, 2, box=simm_right) for t in (2700, 3200, 3700, 4200)])
    session_id, job_id = complete(api, admin_headers, services, video_search, persons,
                                  path.read_bytes())
    before = session_detail(api, admin_headers, session_id)["session"]
    assert before["counts"]["unrecognised"] == 3  # the person index: three tracks

    deliver_evidence(api, services)
    session = session_detail(api, admin_headers, session_id)["session"]
    assert session["evidence_status"] == "ready"
    assert session["counts"]["unrecognised"] == 2
    simm, other = sorted(session["strangers"], key=lambda s: -len(s.get("merged_from") or []))
    assert simm["merged_from"] and (simm["first_seen_ms"], simm["last_seen_ms"]) == (200, 4200)
    assert simm["seen_for_ms"] == 1500 + 1500
    assert other["first_seen_ms"] == 200 and not other.get("merged_from")
    # Each shown entry has its own crop, of one face.
    s3 = services.clients.client("s3")
    for entry in session["strangers"]:
        key = evidence.crop_key(session_id, evidence.stranger_crop(entry["number"]))
        data = s3.get_object(Bucket=services.settings.videos_bucket, Key=key)["Body"].read()
        assert Image.open(io.BytesIO(data)).size == (evidence.THUMB_SIDE, evidence.THUMB_SIDE)
    # Again: nothing changes.
    assert services.evidence.cut(session_id, job_id) == "ready"
    again = session_detail(api, admin_headers, session_id)["session"]
    assert again["counts"] == session["counts"]
    assert [{k: v for k, v in s.items() if k != "crop"} for s in again["strangers"]] == \
        [{k: v for k, v in s.items() if k != "crop"} for s in session["strangers"]]
