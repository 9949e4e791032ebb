"""Every status value Rollcall stores or reads from AWS, defined once.

StrEnum members are plain strings: DynamoDB stores, JSON answers and
comparisons with stored items see the value (``"COMPLETED"``), never the name.
"""
from enum import StrEnum


class SessionStatus(StrEnum):
    """A session's lifecycle (see :mod:`chalicelib.sessions`)."""

    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    #: The recording is being converted to H.264 before the face search.
    CONVERTING = "CONVERTING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    def words(self):
        """The status as a person reads it: ``awaiting upload``."""
        return self.value.replace("_", " ").lower()


class ErrorKind(StrEnum):
    """Why a session FAILED: the file itself (upload another) or anything else
    (retrying may help)."""

    FILE = "file"
    RETRY = "retry"


class AttendanceStatus(StrEnum):
    """A row's status. LATE is automatic (first seen after the late threshold);
    EXCUSED only ever comes from a teacher's correction."""

    PRESENT = "PRESENT"
    LATE = "LATE"
    ABSENT = "ABSENT"
    EXCUSED = "EXCUSED"


class RowSource(StrEnum):
    """Who set a row's effective status: the face search or a teacher."""

    AUTO = "auto"
    MANUAL = "manual"


class JobStatus(StrEnum):
    """Rekognition's face-search job states (GetFaceSearch ``JobStatus``)."""

    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
