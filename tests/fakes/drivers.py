"""Driving the app the way a browser and AWS would, through ``chalice.test.Client``.

The browser asks for a presigned upload and S3 receives the file (here a
``put_object`` at the answered key); S3 and SNS deliver events to the
handlers (here ``api.lambda_.invoke`` with the event AWS would send).
"""
import json

from chalicelib.dynamo import batch_put
from chalicelib.students import index_attributes
from tests.fakes.video_search import MP4_BYTES


def upload_photo(api, headers, services, data, content_type="image/jpeg"):
    """Ask ``POST /uploads/photo`` for an upload and put ``data`` at its key; the key."""
    answer = api.http.post("/uploads/photo", headers=headers,
                           body=json.dumps({"content_type": content_type}))
    assert answer.status_code == 200, answer.body
    key = answer.json_body["photo_key"]
    services.clients.client("s3").put_object(Bucket=services.settings.photos_bucket, Key=key,
                                             Body=data, ContentType=content_type)
    return key


def add_students(services, people):
    """Register ``[(student_id, full_name), ...]`` straight into the students table."""
    items = [{"student_id": sid, "full_name": name, "photo_keys": [], "face_ids": [],
              "created_at": "2024-01-01T00:00:00+00:00"} for sid, name in people]
    batch_put(services.clients.table(services.settings.students_table),
              [dict(item, **index_attributes(item)) for item in items])


def create_session(api, headers, **fields):
    body = {"title": "Maths 1A", "content_type": "video/mp4", **fields}
    response = api.http.post("/sessions", headers=headers, body=json.dumps(body))
    assert response.status_code == 201, response.body
    return response.json_body


def upload_video(services, session, data=MP4_BYTES, content_type="video/mp4"):
    """What the browser's presigned POST puts in the bucket at the session's key."""
    services.clients.client("s3").put_object(
        Bucket=services.settings.videos_bucket, Key=session["video_key"], Body=data,
        ContentType=content_type)


def s3_event(api, services, key):
    """Deliver the S3 ObjectCreated event AWS would send for ``key``."""
    return api.lambda_.invoke("on_video_uploaded", api.events.generate_s3_event(
        bucket=services.settings.videos_bucket, key=key))


def sns_event(api, message):
    """Deliver an SNS message to the completion handler."""
    return api.lambda_.invoke("on_face_search_complete",
                              api.events.generate_sns_event(message=message))


def session_detail(api, headers, session_id):
    response = api.http.get(f"/sessions/{session_id}", headers=headers)
    assert response.status_code == 200, response.body
    return response.json_body


def run_session(api, headers, services, fake, persons, **fields):
    """Create, upload, S3 event, completion message: the session's detail."""
    fake.persons = list(persons)
    session = create_session(api, headers, **fields)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    job_id = session_detail(api, headers, session["session_id"])["session"]["job_id"]
    sns_event(api, fake.message(job_id))
    return session_detail(api, headers, session["session_id"])


def by_student(detail):
    return {row["student_id"]: row for row in detail["attendance"]}
