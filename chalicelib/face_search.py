"""Rekognition's video face search: start a job once, read every result page.

:class:`FaceSearch` is the only code that speaks to StartFaceSearch and
GetFaceSearch. It is given a boto3 ``rekognition`` client (AWS, the built-in
engine, or a test's fake) and never decides attendance itself: it answers a
:class:`JobResult` that :mod:`chalicelib.attendance` turns into rows.

Idempotency: StartFaceSearch gets ``ClientRequestToken`` = the session id (and
``<session id>-<attempt>`` for a retry), so a repeated S3 event for the same
upload gets the same JobId back from Rekognition instead of a second job.
"""
import dataclasses
import time

from botocore.exceptions import ClientError

from chalicelib.statuses import JobStatus

#: GetFaceSearch's largest page.
PAGE_SIZE = 1000
#: Polling backoff: first wait, growth factor, longest wait (seconds).
FIRST_DELAY, BACKOFF, MAX_DELAY = 1.0, 2.0, 15.0

IN_PROGRESS, SUCCEEDED, FAILED = JobStatus

# Rekognition errors at StartFaceSearch, as sentences a teacher can act on.
_START_ERRORS = {
    "InvalidS3ObjectException": "The video could not be read from storage. Upload it "
                                "again.",
    "VideoTooLargeException": "The video is too long or too large for face search. Split it "
                              "into shorter recordings and upload each in its own session.",
    "LimitExceededException": "Too many videos are being processed right now. Retry this "
                              "session in a few minutes.",
    "ThrottlingException": "The face search service is busy. Retry this session in a few "
                           "minutes.",
    "ProvisionedThroughputExceededException": "The face search service is busy. Retry this "
                                              "session in a few minutes.",
    "ResourceNotFoundException": "The face collection does not exist. Ask an administrator "
                                 "to run provisioning, then retry this session.",
}


#: Start errors about the video itself: retrying the same file cannot help.
#: (InvalidParameterException is not one: it says our request was wrong, so it
#: is raised as it is, logged and answered as an internal, retryable error.)
_FILE_ERRORS = {"InvalidS3ObjectException", "VideoTooLargeException"}

#: Words of a failed job's StatusMessage that say the video itself cannot be read
#: (Rekognition: "Unsupported codec/format."; the built-in engine says more).
_UNREADABLE_VIDEO_WORDS = ("codec", "format", "corrupt", "truncated", "not a video",
                           "video stream", "invalid video", "unreadable")


def unreadable_video(status_message):
    """True if a failed job's message says the file is the problem (upload another)."""
    text = (status_message or "").lower()
    return any(word in text for word in _UNREADABLE_VIDEO_WORDS)


class FaceSearchProblem(Exception):
    """The job could not be started or failed; ``str()`` is for the teacher.

    ``about_file`` is True when the video itself is the problem (upload another).
    """

    def __init__(self, message, about_file=False):
        super().__init__(message)
        self.about_file = about_file


@dataclasses.dataclass
class JobResult:
    """What GetFaceSearch said about a job: its status and every person entry."""

    job_id: str
    status: str
    message: str = ""
    persons: list = dataclasses.field(default_factory=list)
    pages: int = 0


def request_token(session_id, attempt=0):
    """StartFaceSearch's idempotency token: the session id, plus the retry number."""
    return session_id if not attempt else f"{session_id}-{attempt}"


class FaceSearch:
    def __init__(self, rekognition, *, collection_id, threshold, region,
                 topic="", role="", sts=None, sleep=time.sleep, clock=time.monotonic):
        self._rekognition = rekognition
        self._collection_id = collection_id
        self._threshold = float(threshold)
        self._region = region
        self._topic = topic
        self._role = role
        self._sts = sts
        # Public so that tests can poll on a fake clock without waiting.
        self.sleep, self.clock = sleep, clock
        self._account = None

    @property
    def notifies(self):
        """True when Rekognition announces completion on SNS (else we poll)."""
        return bool(self._topic and self._role)

    def _account_id(self):
        if self._account is None:
            self._account = self._sts.get_caller_identity()["Account"]
        return self._account

    def notification_channel(self):
        """Topic and role ARNs; names from the config are completed with the account."""
        topic, role = self._topic, self._role
        if not topic.startswith("arn:"):
            topic = f"arn:aws:sns:{self._region}:{self._account_id()}:{topic}"
        if not role.startswith("arn:"):
            role = f"arn:aws:iam::{self._account_id()}:role/{role}"
        return {"SNSTopicArn": topic, "RoleArn": role}

    def start(self, *, bucket, key, session_id, attempt=0):
        """Start (or, for the same token, find again) the face search; its JobId."""
        request = {
            "Video": {"S3Object": {"Bucket": bucket, "Name": key}},
            "CollectionId": self._collection_id,
            "FaceMatchThreshold": self._threshold,
            "ClientRequestToken": request_token(session_id, attempt),
            "JobTag": session_id,
        }
        if self.notifies:
            request["NotificationChannel"] = self.notification_channel()
        try:
            return self._rekognition.start_face_search(**request)["JobId"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in _START_ERRORS:
                raise FaceSearchProblem(_START_ERRORS[code],
                                        about_file=code in _FILE_ERRORS) from error
            raise

    def read(self, job_id, reduce=None):
        """The job's status and, once it SUCCEEDED, the persons of every page.

        ``reduce``, if given, is applied to each person entry as its page
        arrives, so only what the caller needs is kept.
        """
        result = JobResult(job_id=job_id, status=IN_PROGRESS)
        kwargs = {"JobId": job_id, "MaxResults": PAGE_SIZE, "SortBy": "TIMESTAMP"}
        while True:
            page = self._rekognition.get_face_search(**kwargs)
            result.status = page["JobStatus"]
            result.message = page.get("StatusMessage", "")
            if result.status != SUCCEEDED:
                return result
            result.pages += 1
            persons = page.get("Persons", [])
            result.persons.extend(map(reduce, persons) if reduce else persons)
            if not page.get("NextToken"):
                return result
            kwargs["NextToken"] = page["NextToken"]

    def wait(self, job_id, budget_seconds, reduce=None):
        """Poll :meth:`read` with backoff for at most ``budget_seconds``.

        Answers the finished :class:`JobResult`, or the last IN_PROGRESS one if
        the budget ran out (the session stays PROCESSING; see sessions.py for
        who finishes it later).
        """
        deadline = self.clock() + budget_seconds
        delay = FIRST_DELAY
        while True:
            result = self.read(job_id, reduce)
            if result.status != IN_PROGRESS:
                return result
            remaining = deadline - self.clock()
            if remaining <= 0:
                return result
            self.sleep(min(delay, remaining))
            delay = min(delay * BACKOFF, MAX_DELAY)
