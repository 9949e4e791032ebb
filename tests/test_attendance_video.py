"""A real recording of registered faces comes out right, through the API alone.

Real photos from /work/shared/faces are registered through ``POST /students``
against the built-in face engine (the ``face_rekognition`` fixture); a short
video made from *other* photos of some of them (plus a stranger) is uploaded
to the session's key; the real handlers take it from there: the S3 event
starts the face search with an SNS notification channel, the engine publishes
its completion to moto's SNS topic, an SQS queue subscribed to the topic
receives it (as AWS would deliver it to the Lambda), and the SNS handler
records attendance. Present/absent is then read from ``GET /sessions/{id}``.
"""
import json
import time

import pytest

from tests.support.video_maker import make_video
from test_attendance_fakes import by_student, s3_event, session_detail, sns_event

REGISTERED = {"obama": ("barack_obama", "Barack Obama"), "simm": ("john_simm", "John Simm"),
              "biden": ("joe_biden", "Joe Biden"), "rose": ("rose_leslie", "Rose Leslie")}


@pytest.fixture
def engine(services, face_rekognition):
    services.clients.register("rekognition", face_rekognition)
    face_rekognition.create_collection(CollectionId=services.settings.face_collection)
    return face_rekognition


@pytest.fixture
def completions(services):
    """An SQS queue subscribed to the completion topic: where SNS delivers."""
    sns, sqs = services.clients.client("sns"), services.clients.client("sqs")
    [topic] = [t["TopicArn"] for t in sns.list_topics()["Topics"]
               if t["TopicArn"].endswith(":" + services.settings.completion_topic)]
    url = sqs.create_queue(QueueName="completions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs",
                  Endpoint=arn["Attributes"]["QueueArn"])

    def next_message(timeout_s=90):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
            for message in got.get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return json.loads(message["Body"])["Message"]  # the SNS envelope's message
            time.sleep(0.5)
        raise AssertionError(f"no completion was published within {timeout_s} s")
    return next_message


def register(api, headers, services, student_id, full_name, path):
    answer = api.http.post("/uploads/photo", headers=headers,
                           body=json.dumps({"content_type": "image/jpeg"})).json_body
    services.clients.client("s3").put_object(
        Bucket=services.settings.photos_bucket, Key=answer["photo_key"],
        Body=path.read_bytes(), ContentType="image/jpeg")
    response = api.http.post("/students", headers=headers, body=json.dumps(
        {"student_id": student_id, "full_name": full_name, "photo_key": answer["photo_key"]}))
    assert response.status_code == 201, response.body


def test_a_video_of_registered_people_comes_out_right(api, admin_headers, services, engine,
                                                      completions, faces_dir, tmp_path):
    people = faces_dir / "people"
    for student_id, (folder, name) in REGISTERED.items():
        register(api, admin_headers, services, student_id, name, people / folder / "1.jpg")
    # Other photos than the registered ones; Obama and Simm attend, and one
    # person nobody registered; Biden and Rose Leslie stay away.
    video = tmp_path / "class.mp4"
    make_video(video, [
        dict(image=people / "barack_obama" / "2.jpg", start_s=0.2, end_s=4.8, x=60, y=90,
             height=90, drift=4),
        dict(image=people / "john_simm" / "2.jpg", start_s=1.0, end_s=4.8, x=360, y=110,
             height=90),
        dict(image=people / "john_savage" / "1.jpg", start_s=0.5, end_s=4.5, x=220, y=20,
             height=80),
    ], size=(640, 360), fps=10, duration_s=5.0)

    created = api.http.post("/sessions", headers=admin_headers, body=json.dumps(
        {"title": "Civics", "date": "2024-10-07", "content_type": "video/mp4"}))
    assert created.status_code == 201, created.body
    session = created.json_body["session"]
    # What the browser's presigned POST puts in the bucket.
    services.clients.client("s3").put_object(
        Bucket=services.settings.videos_bucket, Key=created.json_body["upload"]["fields"]["key"],
        Body=video.read_bytes(), ContentType="video/mp4")
    s3_event(api, services, session["video_key"])
    assert session_detail(api, admin_headers,
                          session["session_id"])["session"]["status"] == "PROCESSING"

    sns_event(api, completions())
    detail = session_detail(api, admin_headers, session["session_id"])
    assert detail["session"]["status"] == "COMPLETED", detail["session"]["error"]
    rows = by_student(detail)
    assert {sid: row["status"] for sid, row in rows.items()} == {
        "obama": "PRESENT", "simm": "PRESENT", "biden": "ABSENT", "rose": "ABSENT"}
    for sid in ("obama", "simm"):
        assert rows[sid]["similarity"] >= services.settings.match_threshold
        assert rows[sid]["sightings"] >= services.settings.min_sightings
        assert 0 <= rows[sid]["first_seen_ms"] <= rows[sid]["last_seen_ms"] <= 5000
    assert rows["simm"]["first_seen_ms"] >= 500  # he comes in at 1 s
    assert detail["session"]["counts"]["present"] == 2
    assert detail["session"]["counts"]["unrecognised"] >= 1  # the stranger


def test_a_real_recording_comes_out_right(api, admin_headers, services, engine, completions,
                                          faces_dir, tmp_path):
    """The real clip in shared/faces/videos, not one we made: its label file says who is in it."""
    clip = faces_dir / "videos" / "short_hamilton_clip.mp4"
    label = json.loads(clip.with_suffix(".json").read_text())
    people = faces_dir / "people"
    # Everyone the label says is there (the hard ones and the maybe aside), and two who are not.
    roster = {"lmm": "lin_manuel_miranda", "biden": "joe_biden", "rose": "rose_leslie"}
    assert set(label["present"]) == {"lin_manuel_miranda"}
    for student_id, folder in roster.items():
        register(api, admin_headers, services, student_id, folder.replace("_", " ").title(),
                 people / folder / "1.jpg")

    created = api.http.post("/sessions", headers=admin_headers, body=json.dumps(
        {"title": "Rehearsal", "content_type": "video/mp4"})).json_body
    services.clients.client("s3").put_object(
        Bucket=services.settings.videos_bucket, Key=created["upload"]["fields"]["key"],
        Body=clip.read_bytes(), ContentType="video/mp4")
    s3_event(api, services, created["session"]["video_key"])
    sns_event(api, completions())

    detail = session_detail(api, admin_headers, created["session"]["session_id"])
    assert detail["session"]["status"] == "COMPLETED", detail["session"]["error"]
    rows = by_student(detail)
    assert {sid: row["status"] for sid, row in rows.items()} == {
        "lmm": "PRESENT", "biden": "ABSENT", "rose": "ABSENT"}
    assert rows["lmm"]["last_seen_ms"] <= label["duration_s"] * 1000 + 500
