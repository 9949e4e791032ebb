"""An in-memory stand-in for Rekognition's video face search.

moto has no StartFaceSearch or GetFaceSearch. :class:`FakeVideoSearch`
answers them for a video the test describes as GetFaceSearch ``Persons``
entries: it honours ``ClientRequestToken`` (same token, same JobId, as the
real service does), pages its results through ``NextToken``, can stay
IN_PROGRESS for a number of calls, and can fail a job. It reads the video
from S3 as the service would (a missing object is InvalidS3ObjectException).
"""
import json
import uuid

from botocore.exceptions import ClientError

from tests.fakes.base import ModelCheckedFake, aws_error
from tests.support.clips import encode

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


class FakeVideoSearch(ModelCheckedFake):
    """StartFaceSearch / GetFaceSearch over ``persons`` (GetFaceSearch entries)."""

    service = "rekognition"

    def __init__(self, s3, persons=(), *, page_size=1000, pending_polls=1, fail_job=None):
        super().__init__()
        self._s3 = s3
        self.persons = list(persons)
        self.page_size = page_size
        # A new job answers IN_PROGRESS to this many GetFaceSearch calls (a real
        # job takes a while; 0 = done at once).
        self.pending_polls = pending_polls
        self.fail_job = fail_job  # a StatusMessage: the next job started FAILS with it
        self.jobs = {}  # job_id -> {"request", "status", "message", "pending", "persons"}
        self._tokens = {}

    # -- test side -----------------------------------------------------------
    def started(self):
        return self.called("StartFaceSearch")

    def pages_read(self, job_id=None):
        return [params for params in self.called("GetFaceSearch")
                if job_id is None or params["JobId"] == job_id]

    def message(self, job_id):
        """The SNS message Rekognition publishes when ``job_id`` ends."""
        job = self.jobs[job_id]
        return json.dumps({
            "JobId": job_id, "Status": job["status"], "API": "StartFaceSearch",
            "JobTag": job["request"].get("JobTag"), "Timestamp": 1700000000000,
            "Video": {"S3ObjectName": job["request"]["Video"]["S3Object"]["Name"],
                      "S3Bucket": job["request"]["Video"]["S3Object"]["Bucket"]}})

    # -- API side ------------------------------------------------------------
    def start_face_search(self, **params):
        self._enter("StartFaceSearch", params)
        token = params.get("ClientRequestToken")
        if token in self._tokens:  # idempotent: the same token answers the same job
            return self._answer("StartFaceSearch", {"JobId": self._tokens[token]})
        s3obj = params["Video"]["S3Object"]
        try:
            self._s3.head_object(Bucket=s3obj["Bucket"], Key=s3obj["Name"])
        except ClientError:
            raise aws_error("InvalidS3ObjectException", "Unable to get object metadata from S3.")
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
            raise aws_error("ResourceNotFoundException", "The job does not exist.")
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
