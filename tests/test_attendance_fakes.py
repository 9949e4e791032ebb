"""An in-memory stand-in for Rekognition's video face search, and test helpers.

moto has no StartFaceSearch or GetFaceSearch. :class:`FakeVideoSearch`
answers them for a video the test describes as GetFaceSearch ``Persons``
entries: it honours ``ClientRequestToken`` (same token, same JobId, as the
real service does), pages its results through ``NextToken``, can stay
IN_PROGRESS for a number of calls, and can fail a job. Every request and
answer is checked against botocore's own Rekognition model, so the code under
test cannot drift from the real API's shapes. It reads the video from S3 as
the service would (a missing object is InvalidS3ObjectException).
"""
import json
import uuid

import botocore.session
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters

from tests.support.clips import encode

_MODEL = botocore.session.get_session().get_service_model("rekognition")

#: A real, tiny H.264 MP4 (the upload's headers are read before the face search).
MP4_BYTES = encode("mp4", "libx264", width=64, height=64, fps=5, seconds=1)


def sighting(timestamp_ms, index, matches=(), box=(0.1, 0.1, 0.2, 0.3)):
    """One GetFaceSearch ``Persons`` entry: person ``index`` at ``timestamp_ms``.

    ``matches`` is ``[(student_id, similarity), ...]``; empty = nobody matched.
    ``box`` is the face's (left, top, width, height), ratios of the frame.
    """
    entry = {"Timestamp": timestamp_ms,
             "Person": {"Index": index,
                        "BoundingBox": dict(zip(("Left", "Top", "Width", "Height"), box))}}
    if matches:
        entry["FaceMatches"] = [
            {"Similarity": float(similarity),
             "Face": {"FaceId": str(uuid.uuid5(uuid.NAMESPACE_OID, student_id)),
                      "ExternalImageId": student_id, "Confidence": 99.9}}
            for student_id, similarity in matches]
    return entry


def seen(student_id, index, timestamps, similarity=95.0):
    """Entries for one tracked person matched to ``student_id`` at each timestamp."""
    return [sighting(t, index, [(student_id, similarity)]) for t in timestamps]


def _error(code, message="injected"):
    return ClientError({"Error": {"Code": code, "Message": message}}, "Fake")


class FakeVideoSearch:
    def __init__(self, s3, persons=(), *, page_size=1000, pending_polls=1, fail_job=None):
        self._s3 = s3
        self.persons = list(persons)
        self.page_size = page_size
        # A new job answers IN_PROGRESS to this many GetFaceSearch calls (a real
        # job takes a while; 0 = done at once).
        self.pending_polls = pending_polls
        self.fail_job = fail_job  # a StatusMessage: the next job started FAILS with it
        self.fail_start = None  # an error code StartFaceSearch raises once
        self.jobs = {}  # job_id -> {"request", "status", "message", "pending", "persons"}
        self._tokens = {}
        self.calls = []  # (operation, params)

    # -- test side -----------------------------------------------------------
    def started(self):
        return [params for op, params in self.calls if op == "StartFaceSearch"]

    def pages_read(self, job_id=None):
        return [params for op, params in self.calls if op == "GetFaceSearch"
                and (job_id is None or params["JobId"] == job_id)]

    def message(self, job_id):
        """The SNS message Rekognition publishes when ``job_id`` ends."""
        job = self.jobs[job_id]
        return json.dumps({
            "JobId": job_id, "Status": job["status"], "API": "StartFaceSearch",
            "JobTag": job["request"].get("JobTag"), "Timestamp": 1700000000000,
            "Video": {"S3ObjectName": job["request"]["Video"]["S3Object"]["Name"],
                      "S3Bucket": job["request"]["Video"]["S3Object"]["Bucket"]}})

    # -- API side ------------------------------------------------------------
    def _enter(self, operation, params):
        validate_parameters(params, _MODEL.operation_model(operation).input_shape)
        self.calls.append((operation, params))

    @staticmethod
    def _answer(operation, answer):
        validate_parameters(answer, _MODEL.operation_model(operation).output_shape)
        return answer

    def start_face_search(self, **params):
        self._enter("StartFaceSearch", params)
        if self.fail_start:
            code, self.fail_start = self.fail_start, None
            raise _error(code)
        token = params.get("ClientRequestToken")
        if token in self._tokens:  # idempotent: the same token answers the same job
            return self._answer("StartFaceSearch", {"JobId": self._tokens[token]})
        s3obj = params["Video"]["S3Object"]
        try:
            self._s3.head_object(Bucket=s3obj["Bucket"], Key=s3obj["Name"])
        except ClientError:
            raise _error("InvalidS3ObjectException", "Unable to get object metadata from S3.")
        job_id = uuid.uuid4().hex + uuid.uuid4().hex
        self.jobs[job_id] = {"request": params, "pending": self.pending_polls,
                             "status": "FAILED" if self.fail_job else "SUCCEEDED",
                             "message": self.fail_job, "persons": list(self.persons)}
        self.fail_job = None
        if token:
            self._tokens[token] = job_id
        return self._answer("StartFaceSearch", {"JobId": job_id})

    def get_face_search(self, **params):
        self._enter("GetFaceSearch", params)
        job = self.jobs.get(params["JobId"])
        if job is None:
            raise _error("ResourceNotFoundException", "The job does not exist.")
        if job["pending"] > 0:
            job["pending"] -= 1
            return self._answer("GetFaceSearch", {"JobStatus": "IN_PROGRESS"})
        if job["status"] == "FAILED":
            return self._answer("GetFaceSearch", {"JobStatus": "FAILED",
                                                  "StatusMessage": job["message"]})
        start = int(params.get("NextToken") or 0)
        size = min(params.get("MaxResults", 1000), self.page_size)
        answer = {"JobStatus": "SUCCEEDED", "Persons": job["persons"][start:start + size],
                  "VideoMetadata": {"Codec": "h264", "DurationMillis": 60000,
                                    "Format": "QuickTime / MOV", "FrameRate": 15.0,
                                    "FrameHeight": 360, "FrameWidth": 640}}
        if start + size < len(job["persons"]):
            answer["NextToken"] = str(start + size)
        return self._answer("GetFaceSearch", answer)


# -- fixtures and helpers shared by the sessions / attendance / exports tests ----
# (imported by name into those modules; pytest finds fixtures imported that way)
import dataclasses  # noqa: E402

import pytest  # noqa: E402

import app as app_module  # noqa: E402
from chalicelib.dynamo import batch_put  # noqa: E402
from chalicelib.services import Services  # noqa: E402
from chalicelib.students import index_attributes  # noqa: E402


@pytest.fixture
def video_search(services):
    """The fake face search, answering every Rekognition call of this test."""
    fake = FakeVideoSearch(services.clients.client("s3"))
    services.clients.register("rekognition", fake)
    return fake


@pytest.fixture
def polling(services, video_search):
    """The app without a completion topic: the S3 handler polls (without sleeping)."""
    fresh = Services(settings=dataclasses.replace(services.settings, completion_topic=""),
                     clients=services.clients)
    fresh.face_search.sleep = lambda seconds: None
    app_module.reset_services(fresh)
    return fresh


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
