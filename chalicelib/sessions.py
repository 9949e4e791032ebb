r"""Sessions: one recording each, from upload to attendance.

Lifecycle (``status``)::

    AWAITING_UPLOAD --S3 event--> PROCESSING --completion--> COMPLETED
       ^  |         \                  ^   |
       |  |          +-> CONVERTING ---+   |   (not H.264 in MP4/MOV: MediaConvert first)
       |  |                 |              |
       |  +------ bad file / error --------+--> FAILED --POST retry--> PROCESSING
       |                                          |
       +------------- POST upload ----------------+

* :class:`SessionStore` keeps the items; every status change is a conditional
  write, so a late or repeated event can never undo a newer state.
* :class:`SessionWorkflow` runs the steps: create with a presigned upload,
  the S3 event (check the file, read its codec from the headers, convert it
  when Rekognition cannot read it, start the face search once), the completion
  (read every result page, decide, write rows, count), retry, correction,
  deletion and one student's history.

Roster: a session is taken against its roster **when the face search
completes**: the people enrolled in its class at that moment, or, for a
session without a class (an admin's "everyone" session, or one from before
classes), every registered person. Someone enrolled or registered while the
video was processing is counted (as absent if not seen). Each row keeps the
name the person had at that moment, so deleting or renaming them later does
not change history. A registered person recognised who is not on the roster
is listed apart on the session (``seen_not_enrolled``), never counted.

Lateness: the class's ``late_threshold_minutes`` (read at completion, kept on
the session) after the session's start, which is the video's start plus the
teacher's optional ``start_offset_seconds``.

Evidence: once COMPLETED, the completion asks for the face crops
(:mod:`chalicelib.evidence`) with one queue message; they are cut by another
function and never delay the result. The session keeps the unrecognised people
(``strangers``, grouped by attendance.group_strangers) in the order found; an
entry's number is its position (the list only grows: "Not this person" adds
one, registering one marks it ``registered_as``; one found to be the same face
as another is marked ``merged_into`` by the evidence function and no longer
listed or counted, see chalicelib/strangers.py).

Without a completion topic (or role) the S3 handler polls GetFaceSearch with
backoff inside its Lambda timeout. If the time runs out the session stays
PROCESSING with its job id, and it is finished by whichever comes next: a
redelivered S3 event (polls again, starts nothing new), or ``GET
/sessions/{id}``, which looks at the job once (see :meth:`SessionWorkflow.detail`).

Watchdog: nothing may stay PROCESSING for ever (a completion message lost, a
handler that failed past its retries, a face engine that died). A session
PROCESSING for longer than ``PROCESSING_CHECK_SECONDS`` is checked against
its job by :meth:`SessionWorkflow.check_processing`, from the scheduled
``check_processing_sessions`` and from ``GET /sessions/{id}`` (at most once
a minute per session, whoever asks): a job that ended is finished as its
message would have; a failed, unknown or never-started job ends the session
FAILED with a retryable reason.

Sparse indexes (see :func:`upkeep_attributes`): the same conditional write
that moves a session into PROCESSING or CONVERTING sets ``live``, and the one
that decides it (COMPLETED, FAILED) or sends it back to await an upload
removes it, so the watchdog queries the few live sessions, never the table.
Completion sets ``kept_since`` with ``video_kept`` and ``crops_kept``; the
retention sweep removes each when it deletes those files, so it reads only
what it has still to delete.
"""
import collections
import datetime
import json
import re
import uuid

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from chalicelib import attendance, evidence
from chalicelib.classes import DEFAULT_LATE_MINUTES
from chalicelib.dynamo import (batch_get, conditional_update, from_dynamo,
                               is_conditional_failure, query_all, to_dynamo, utc_now)
from chalicelib.errors import (InvalidInput, NotFound, UnknownSession, UnknownStudent, Unusable,
                               WrongState)
from chalicelib.face_search import FaceSearchProblem, unreadable_video
from chalicelib.paging import decode_cursor, encode_cursor, query_page
from chalicelib.schema import (LISTED, SESSIONS_BY_CLASS_INDEX, SESSIONS_BY_DAY_INDEX,
                               SESSIONS_CROPS_KEPT_INDEX, SESSIONS_LIVE_INDEX,
                               SESSIONS_VIDEO_KEPT_INDEX)
from chalicelib.conversion import CONVERTED_PREFIX, ConversionProblem
from chalicelib.media import MediaProblem, probe
from chalicelib.strangers import STRANGERS_VERSION, new_strangers_version
from chalicelib.statuses import AttendanceStatus, ErrorKind, JobStatus, SessionStatus
from chalicelib.students import is_student_id
from chalicelib.uploads import VIDEO_TYPES, UploadProblem

AWAITING_UPLOAD, CONVERTING = SessionStatus.AWAITING_UPLOAD, SessionStatus.CONVERTING
PROCESSING, COMPLETED, FAILED = (SessionStatus.PROCESSING, SessionStatus.COMPLETED,
                                 SessionStatus.FAILED)
#: The states before a result: a late event may still move a session out of these.
_UNDECIDED = [AWAITING_UPLOAD, CONVERTING, PROCESSING]

#: Session ids are uuid4 hex: safe in S3 keys, job tags and request tokens.
SESSION_ID_PATTERN = r"[0-9a-f]{32}"
VIDEO_PREFIX = "videos/"
#: A presigned video upload stays usable this long (large files, slow links).
UPLOAD_EXPIRES_IN = 3600

#: A stuck session's job is looked at no more often than this (whoever asks).
CHECK_EVERY_SECONDS = 60
#: GetFaceSearch errors saying the job does not exist (any more).
_LOST_JOB_CODES = ("ResourceNotFoundException", "InvalidParameterException")
_LOST_JOB = ("The face search of this video stopped without an answer (it was lost on our "
             "side). Retry this session.")

_INTERNAL_ERROR = ("Attendance could not be recorded because of an error on our side. "
                   "Retry this session; if it fails again, tell your administrator.")

#: Results are kept as (timestamp, track, best student, similarity) while read.
_BEST = attendance.best_match

#: Reads a recount makes before it gives up (each lost to a strangers write).
_RECOUNT_TRIES = 5

_ZERO_COUNTS = {"roster": 0, "present": 0, "late": 0, "absent": 0, "excused": 0,
                "unrecognised": 0, "not_enrolled": 0}
_SESSION_FIELDS = ("session_id", "title", "course", "date", "status", "error", "error_kind",
                   "created_at", "updated_at", "video_key", "job_id", "class_id",
                   "start_offset_seconds", "late_threshold_minutes", "media",
                   "conversion_percent", "analysis_key", "completed_at",
                   "evidence_status", "video_deleted_at")
#: ``error_kind`` of a FAILED session: the file itself is wrong (upload another;
#: retrying cannot help), or something else failed (retrying may help).
FILE_ERROR, RETRY_ERROR = ErrorKind.FILE, ErrorKind.RETRY
#: The reason a correction made by "Not this person" / "Register this person" carries.
NOT_THIS_PERSON = "Not this person: the face in the video is someone else"
REGISTERED_HERE = "registered from this session"
#: Photo refusals that mean the video's face is not good enough to register from.
_PHOTO_PROBLEMS = {"bad_photo", "no_face", "face_too_small", "face_blurry", "face_too_dark",
                   "face_too_bright", "face_unclear", "several_faces"}


#: ``class_key`` of a session that belongs to no class (an "everyone" session).
NO_CLASS = "-"

#: The statuses the watchdog looks after; only these set ``live``. (A session
#: awaiting its upload is not watched: nothing of ours runs for it, and
#: abandoned ones may pile up.)
LIVE = (PROCESSING, CONVERTING)
#: Values of the retention indexes' partition attributes.
VIDEO_KEPT, CROPS_KEPT = "video", "crops"


def index_attributes(item):
    """The list indexes' attributes (provisioning backfills older sessions):
    the class (or ``-``) and a unique day key, ``date#created_at#session_id``."""
    return {LISTED: "session", "class_key": item.get("class_id") or NO_CLASS,
            "day_key": f"{item.get('date') or ''}#{item.get('created_at') or ''}"
                       f"#{item['session_id']}"}


def upkeep_attributes(item):
    """The sparse indexes' attributes a stored session holds, None where it must
    hold none: ``live`` (its status) while PROCESSING or CONVERTING; once
    COMPLETED, ``kept_since`` (completion time, then the id) with ``video_kept``
    until its video is deleted and ``crops_kept`` until its crops are.

    The status writes keep these up to date; provisioning backfills sessions
    stored before the indexes (whose completion time is then their last update).
    """
    status = item.get("status")
    done = status == COMPLETED
    since = item.get("completed_at") or item.get("updated_at") or ""
    return {"live": status if status in LIVE else None,
            "kept_since": f"{since}#{item['session_id']}" if done else None,
            "video_kept": VIDEO_KEPT if done and not item.get("video_deleted_at") else None,
            "crops_kept": CROPS_KEPT if done and item.get("evidence_status")
            not in (None, "deleted") else None}


def stored_index_attributes(item):
    """Every index attribute of a stored session (what provisioning backfills)."""
    return dict(index_attributes(item), **upkeep_attributes(item))


def with_index_attributes(item):
    """A copy of a whole session item (one being restored or imported) holding
    exactly the index attributes its fields call for."""
    item = dict(item)
    for name, value in stored_index_attributes(item).items():
        if value is None:
            item.pop(name, None)
        else:
            item[name] = value
    return item


def stranger_views(entries):
    """The strangers as the API answers them: numbered by position, every field present."""
    return [dict({"registered_as": None, "from_student": None}, **from_dynamo(entry),
                 **{"number": position})
            for position, entry in enumerate(entries or [], start=1)]


def unrecognised_count(entries):
    """People still unrecognised: the strangers nobody registered, each once (an
    entry merged into another as the same face, ``merged_into``, is not counted)."""
    return sum(1 for entry in entries or []
               if not entry.get("registered_as") and not entry.get("merged_into"))


def public_session(item, full=False):
    """A stored session as the API answers it (``full``: its strangers and crop names too)."""
    item = from_dynamo(item)
    session = {field: item.get(field) for field in _SESSION_FIELDS}
    session["counts"] = dict(_ZERO_COUNTS, **(item.get("counts") or {}))
    session["seen_not_enrolled"] = item.get("seen_not_enrolled") or []
    if full:
        # One entry per person: those merged into another (same face) are left out.
        session["strangers"] = [s for s in stranger_views(item.get("strangers"))
                                if not s.get("merged_into")]
        session["evidence_cut"] = sorted(item.get("evidence_cut") or [])
    return session


def _video_key(session_id, content_type):
    return f"{VIDEO_PREFIX}{session_id}/video.{VIDEO_TYPES[content_type]}"


def session_id_from_key(key):
    """The session id of ``videos/<session_id>/<file>``, or None."""
    match = re.fullmatch(rf"{VIDEO_PREFIX}({SESSION_ID_PATTERN})/[^/]+", key)
    return match.group(1) if match else None


class SessionStore:
    """The sessions table. Status changes are conditional updates."""

    def __init__(self, table, now=utc_now):
        self._table = table
        self._now = now

    def create(self, item):
        now = self._now()
        item = dict(item, created_at=now, updated_at=now, status=AWAITING_UPLOAD,
                    error=None, job_id=None, attempt=0, counts=dict(_ZERO_COUNTS))
        item.update(index_attributes(item))
        self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(session_id)")
        return item

    def get(self, session_id):
        return self._table.get_item(Key={"session_id": session_id},
                                    ConsistentRead=True).get("Item")

    def get_many(self, session_ids):
        """The sessions with these ids, by id (BatchGetItem, not one read each)."""
        items = batch_get(self._table, [{"session_id": i} for i in set(session_ids)])
        return {item["session_id"]: item for item in items}

    KEY_ATTRIBUTES = ("session_id", "day_key")

    def page(self, *, class_key=None, start=None, end=None, limit, cursor):
        """Sessions newest first, a page at a time: of one class (``class_key``, or
        :data:`NO_CLASS`) or of all (``None``), dated between ``start`` and ``end``."""
        low, high = (start or "0000"), f"{end or '9999-99-99'}#\uffff"
        if class_key is None:
            partition, index = (LISTED, "session"), SESSIONS_BY_DAY_INDEX
        else:
            partition, index = ("class_key", class_key), SESSIONS_BY_CLASS_INDEX
        return query_page(
            self._table, limit=limit, cursor=cursor,
            key_attributes=self.KEY_ATTRIBUTES + (partition[0],),
            fixed=dict([partition]), bounds=("day_key", low, high), IndexName=index,
            KeyConditionExpression=Key(partition[0]).eq(partition[1])
            & Key("day_key").between(low, high), ScanIndexForward=False)

    def completed_between(self, start=None, end=None, most=None):
        """COMPLETED sessions dated between ``start`` and ``end`` (the day index),
        newest first; at most ``most`` + 1, so a caller can tell there were more."""
        low, high = (start or "0000"), f"{end or '9999-99-99'}#\uffff"
        found = []
        for item in query_all(self._table, IndexName=SESSIONS_BY_DAY_INDEX,
                              ScanIndexForward=False,
                              KeyConditionExpression=Key(LISTED).eq("session")
                              & Key("day_key").between(low, high),
                              FilterExpression=Attr("status").eq(COMPLETED)):
            found.append(item)
            if most is not None and len(found) > most:
                break
        return found

    def of_class(self, class_key, start=None, end=None):
        """Every session of a class between two dates, oldest first (all pages)."""
        low, high = (start or "0000"), f"{end or '9999-99-99'}#\uffff"
        return list(query_all(self._table, IndexName=SESSIONS_BY_CLASS_INDEX,
                              KeyConditionExpression=Key("class_key").eq(class_key)
                              & Key("day_key").between(low, high)))

    def newest(self, class_key, low, high, count):
        """Up to ``count`` sessions of a class with day keys in [low, high], newest first."""
        return self._table.query(IndexName=SESSIONS_BY_CLASS_INDEX, ScanIndexForward=False,
                                 Limit=count, KeyConditionExpression=Key("class_key").eq(
                                     class_key) & Key("day_key").between(low, high)
                                 ).get("Items", [])

    def class_has_sessions(self, class_id):
        answer = self._table.query(IndexName=SESSIONS_BY_CLASS_INDEX, Limit=1,
                                   KeyConditionExpression=Key("class_key").eq(class_id))
        return bool(answer.get("Items"))

    def _update(self, session_id, values, condition, remove=()):
        """SET ``values`` (and updated_at) if ``condition`` holds; the new item or None."""
        return conditional_update(self._table, {"session_id": session_id}, values, condition,
                                  remove, now=self._now)

    def live(self):
        """Every PROCESSING or CONVERTING session: the sparse live index (few at any
        time, however many sessions there are); eventually consistent, so a
        session may have moved on since (each step's write checks its status)."""
        for status in LIVE:
            yield from query_all(self._table, IndexName=SESSIONS_LIVE_INDEX,
                                 KeyConditionExpression=Key("live").eq(status))

    def forget_live(self, session_id):
        """Take ``live`` off a session that is no longer PROCESSING or CONVERTING
        (one written by a tool that did not keep it)."""
        try:  # (updated_at stays: an older session's completion time may be read from it)
            self._table.update_item(
                Key={"session_id": session_id}, UpdateExpression="REMOVE live",
                ConditionExpression=Attr("session_id").exists()
                & ~Attr("status").is_in(list(LIVE)))
        except ClientError as error:
            if not is_conditional_failure(error):
                raise

    def kept(self, which, before):
        """Completed sessions still holding their ``which`` (:data:`VIDEO_KEPT` or
        :data:`CROPS_KEPT`) that completed before ``before`` (the sparse index)."""
        attribute, index = {VIDEO_KEPT: ("video_kept", SESSIONS_VIDEO_KEPT_INDEX),
                            CROPS_KEPT: ("crops_kept", SESSIONS_CROPS_KEPT_INDEX)}[which]
        return query_all(self._table, IndexName=index,
                         KeyConditionExpression=Key(attribute).eq(which)
                         & Key("kept_since").lt(before))

    def note_ignored_upload(self, session_id, etag):
        """Keep the ETag of the last upload that came when none was awaited."""
        return self._update(session_id, {"ignored_upload_etag": etag},
                            Attr("session_id").exists())

    def claim_check(self, session_id, now, not_since):
        """Note a look at a PROCESSING session's job, unless one was made after
        ``not_since``: the item, or None (someone else looks, or it moved on)."""
        return self._update(session_id, {"checked_at": now},
                            Attr("status").eq(PROCESSING)
                            & (Attr("checked_at").not_exists() | Attr("checked_at").lt(not_since)))

    def mark_processing(self, session_id, attempt, job_id, analysis_key):
        """PROCESSING with ``job_id`` on ``analysis_key``, unless a retry or an end came first."""
        return self._update(session_id, {"status": PROCESSING, "job_id": job_id, "error": None,
                                         "error_kind": None, "analysis_key": analysis_key,
                                         "processing_since": self._now(), "live": PROCESSING},
                            Attr("attempt").eq(attempt) & Attr("status").is_in(_UNDECIDED))

    def set_media(self, session_id, attempt, media, video=("", "")):
        """What the uploaded file holds (:meth:`chalicelib.media.VideoInfo.as_dict`),
        and the uploaded object's (ETag, VersionId): the one analysed."""
        return self._update(session_id, {"media": media, "video_etag": video[0],
                                         "video_version": video[1]},
                            Attr("attempt").eq(attempt) & Attr("status").is_in(_UNDECIDED))

    def mark_converting(self, session_id, attempt, job_id):
        """CONVERTING with MediaConvert's ``job_id``, unless the session moved on."""
        return self._update(session_id, {"status": CONVERTING, "conversion_job_id": job_id,
                                         "conversion_percent": 0, "error": None,
                                         "error_kind": None, "live": CONVERTING},
                            Attr("attempt").eq(attempt) & Attr("status").is_in(_UNDECIDED))

    def set_conversion_percent(self, session_id, job_id, percent):
        return self._update(session_id, {"conversion_percent": percent},
                            Attr("conversion_job_id").eq(job_id)
                            & Attr("status").eq(CONVERTING))

    def mark_completed(self, session_id, job_id, counts, extra=None):
        now = self._now()
        values = dict(extra or {}, status=COMPLETED, counts=counts, error=None, completed_at=now)
        kept = {k: v for k, v in upkeep_attributes(dict(values, session_id=session_id)).items()
                if v is not None}
        return self._update(session_id, dict(values, **kept),
                            Attr("job_id").eq(job_id) & Attr("status").eq(PROCESSING),
                            remove=("live",))

    def change(self, session_id, values):
        """SET ``values`` (title, date, class, start offset) and the index keys that
        follow from them; None if the session is gone."""
        current = self.get(session_id)
        if current is None:
            return None
        values = dict(values)
        values.update(index_attributes(dict(current, **values)))
        return self._update(session_id, values, Attr("session_id").exists())

    def set_evidence(self, session_id, job_id, status, names=()):
        """The crops' status, and the names of the crops now stored (added to the set).

        The session is (again) in the crops' retention index: crops written
        after a sweep deleted the earlier ones are swept in their turn. Each
        write gives the crops a new ``crops_version``: a sweep marks the crops
        deleted only if they are still those it saw."""
        update = ("SET evidence_status = :status, crops_kept = :kept, "
                  "crops_version = :version")
        values = {":status": status, ":job": job_id, ":done": COMPLETED, ":kept": CROPS_KEPT,
                  ":version": uuid.uuid4().hex}
        if names:
            update += " ADD evidence_cut :names"
            values[":names"] = set(names)
        try:
            self._table.update_item(
                Key={"session_id": session_id}, UpdateExpression=update,
                ConditionExpression="job_id = :job AND #status = :done",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values)
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            return False  # retried, re-uploaded or deleted meanwhile
        return True

    def forget_crops(self, session_id, names):
        """Take crop names out of the stored set (their files were deleted); a
        session deleted meanwhile needs nothing."""
        if not names:
            return
        try:
            self._table.update_item(Key={"session_id": session_id},
                                    UpdateExpression="DELETE evidence_cut :names",
                                    ConditionExpression="attribute_exists(session_id)",
                                    ExpressionAttributeValues={":names": set(names)})
        except ClientError as error:
            if not is_conditional_failure(error):
                raise

    def add_stranger(self, session_id, student_id, entry):
        """Append a stranger made from ``student_id``'s row; False if already done."""
        try:
            self._table.update_item(
                Key={"session_id": session_id},
                UpdateExpression=("SET strangers = list_append(if_not_exists(strangers, :none), "
                                  ":entry), updated_at = :now, "
                                  f"{STRANGERS_VERSION} = :version ADD not_this_person :sid"),
                ConditionExpression=("attribute_exists(session_id) AND "
                                     "NOT contains(not_this_person, :id)"),
                ExpressionAttributeValues={":none": [], ":entry": [to_dynamo(entry)],
                                           ":sid": {student_id}, ":id": student_id,
                                           ":now": self._now(),
                                           ":version": new_strangers_version()})
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            return False
        return True

    def mark_registered(self, session_id, position, student_id):
        """Stranger ``position`` (from 1) is now ``student_id``; False if it already was."""
        path = f"strangers[{int(position) - 1}]"
        try:
            self._table.update_item(
                Key={"session_id": session_id},
                UpdateExpression=(f"SET {path}.registered_as = :sid, updated_at = :now, "
                                  f"{STRANGERS_VERSION} = :version"),
                # Not an entry the grouping merged meanwhile (its sightings moved on).
                ConditionExpression=(f"attribute_exists({path}) AND "
                                     f"attribute_not_exists({path}.merged_into) AND "
                                     f"(attribute_not_exists({path}.registered_as) OR "
                                     f"attribute_type({path}.registered_as, :null))"),
                ExpressionAttributeValues={":sid": student_id, ":now": self._now(),
                                           ":null": "NULL",
                                           ":version": new_strangers_version()})
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            return False
        return True

    def mark_video_deleted(self, session_id):
        return self._update(session_id, {"video_deleted_at": self._now()},
                            Attr("session_id").exists(), remove=("video_kept",))

    def mark_crops_deleted(self, session_id, crops_version=None):
        """The crops are deleted, if they are still those of ``crops_version`` (as
        the sweep read it; None: the session had none): crops cut again
        meanwhile keep the session in the retention index for the next sweep.
        The item, or None."""
        unchanged = (Attr("crops_version").not_exists() if crops_version is None
                     else Attr("crops_version").eq(crops_version))
        return self._update(session_id, {"evidence_status": "deleted"}, unchanged,
                            remove=("evidence_cut", "crops_kept", "crops_version"))

    def mark_failed(self, session_id, attempt, reason, kind=RETRY_ERROR):
        """FAILED with a reason, unless the session moved on (completed, retried)."""
        return self._update(session_id, {"status": FAILED, "error": reason, "error_kind": kind},
                            Attr("attempt").eq(attempt) & Attr("status").is_in(_UNDECIDED),
                            remove=("live",))

    def start_recount(self, session_id):
        """A new recount of the session: the session as it is after a new
        ``recount_token`` (the recount's own) is written, or None if it is gone."""
        return self._update(session_id, {"recount_token": uuid.uuid4().hex},
                            Attr("session_id").exists())

    def set_counts(self, session_id, counts, strangers_version, recount_token):
        """Write ``counts`` if the strangers are still as read (``strangers_version``
        as read; None: it had none) and no recount after ``recount_token`` has
        started; the item, or None if not (or the session is gone)."""
        unchanged = (Attr(STRANGERS_VERSION).not_exists() if strangers_version is None
                     else Attr(STRANGERS_VERSION).eq(strangers_version))
        unchanged = unchanged & Attr("recount_token").eq(recount_token)
        return self._update(session_id, {"counts": counts}, unchanged)

    def begin_retry(self, session_id, attempt):
        """FAILED -> PROCESSING with the next attempt number; None if not FAILED."""
        return self._update(session_id, {"status": PROCESSING, "attempt": attempt + 1,
                                         "job_id": None, "error": None, "error_kind": None,
                                         "processing_since": self._now(), "live": PROCESSING},
                            Attr("status").eq(FAILED) & Attr("attempt").eq(attempt))

    def begin_upload(self, session_id, attempt, video_key):
        """AWAITING_UPLOAD/FAILED -> AWAITING_UPLOAD for another file, with the next
        attempt number (a new request token); None if the session moved on."""
        return self._update(session_id, {"status": AWAITING_UPLOAD, "attempt": attempt + 1,
                                         "job_id": None, "error": None, "error_kind": None,
                                         "video_key": video_key, "analysis_key": None,
                                         "media": None, "conversion_job_id": None},
                            Attr("status").is_in([AWAITING_UPLOAD, FAILED])
                            & Attr("attempt").eq(attempt), remove=("live",))

    def delete(self, session_id):
        self._table.delete_item(Key={"session_id": session_id})


class SessionWorkflow:
    """The steps from a new session to its attendance; see the module docstring."""

    def __init__(self, *, store, attendance_store, face_search, videos, roster, settings,
                 logger, classes=None, access=None, converter=None, evidence_queue=None,
                 crops=None, photos=None, scratch=None):
        self.store = store
        self.attendance = attendance_store
        self.face_search = face_search
        self.videos = videos
        self.roster = roster  # the students service: get, get_many, list_all (index pages)
        self.classes = classes  # chalicelib.classes.Classes
        self.access = access  # chalicelib.access.Access
        self.converter = converter  # chalicelib.conversion.Converter, or None: no conversion
        self.settings = settings
        self.log = logger
        self.evidence_queue = evidence_queue  # the hand-off to the crop cutting
        self.crops = crops  # evidence.EvidenceFiles
        self.photos = photos  # the photos bucket's Uploads (registration from a crop)
        self.scratch = scratch  # strangers.FaceGrouping: its scratch collections

    # -- API ----------------------------------------------------------------------
    # ``user`` is the signed-in user: each method answers 404 for a session that
    # user may not see (see chalicelib.access). None only for internal callers.
    def create(self, *, title, date, course, content_type, class_id=None,
               start_offset_seconds=None, user=None):
        """A new AWAITING_UPLOAD session and the presigned POST for its video.

        A teacher's session belongs to one of their classes; only an admin may
        create one without a class (taken against everyone)."""
        if class_id is not None:
            class_item = (self.access.class_for(user, class_id) if user
                          else self.classes.require(class_id))
            if class_item.get("archived"):
                raise WrongState("This class is archived; it takes no new sessions.",
                               code="class_archived")
        elif user is not None and user["role"] != "admin":
            raise InvalidInput("Choose the class this session is for.", code="missing_field",
                             details={"field": "class_id"})
        if date is None:
            date = datetime.datetime.now(self.settings.tz).date().isoformat()
        session_id = uuid.uuid4().hex
        key = _video_key(session_id, content_type)
        item = self.store.create({"session_id": session_id, "title": title, "course": course,
                                  "date": date, "video_key": key, "class_id": class_id,
                                  "start_offset_seconds": start_offset_seconds})
        return self._with_upload(item, content_type)

    def change(self, session_id, changes, user=None):
        """Change a session's title, date, class or start offset.

        Moving to another class needs access to that class too; only an admin
        may take a session out of every class."""
        self.require(session_id, user)
        if "class_id" in changes:
            if changes["class_id"] is None:
                if user is not None and user["role"] != "admin":
                    raise InvalidInput("Choose the class this session is for.",
                                     code="missing_field", details={"field": "class_id"})
            elif user is not None:
                self.access.class_for(user, changes["class_id"])
            else:
                self.classes.require(changes["class_id"])
        item = self.store.change(session_id, changes)
        if item is None:
            raise _no_session()
        return public_session(item)

    def new_upload(self, session_id, content_type, user=None):
        """A fresh presigned POST for the session's video (another file, or an upload
        that was interrupted): AWAITING_UPLOAD or FAILED only; a FAILED session
        waits for the upload again (its S3 event starts a new face search)."""
        item = self.require(session_id, user)
        attempt = int(item.get("attempt", 0))
        key = _video_key(session_id, content_type)
        updated = None
        if item["status"] in (AWAITING_UPLOAD, FAILED):
            updated = self.store.begin_upload(session_id, attempt, key)
        if updated is None:
            status = SessionStatus(self.require(session_id)["status"]).words()
            raise WrongState(f"The video can be uploaded again only while the session awaits "
                             f"its upload or has failed; this one is {status}.",
                             code="upload_not_allowed")
        return self._with_upload(updated, content_type)

    def _with_upload(self, item, content_type):
        upload = self.videos.presigned_post(item["video_key"], content_type,
                                            self.settings.max_video_bytes,
                                            expires_in=UPLOAD_EXPIRES_IN)
        return {"session": public_session(item), "upload": upload,
                "max_bytes": self.settings.max_video_bytes, "expires_in": UPLOAD_EXPIRES_IN}

    def require(self, session_id, user=None):
        item = self.store.get(session_id) if re.fullmatch(SESSION_ID_PATTERN, session_id) else None
        if item is None:
            raise _no_session()
        if user is not None:
            self.access.check_session(user, item)
        return item

    def page(self, user, *, class_id=None, start=None, end=None, limit, cursor):
        """A page of sessions newest first: of one class (``class_id``; ``"none"``
        for sessions without a class, admins only), or, without ``class_id``, all
        of them for an admin and those of the teacher's classes for a teacher."""
        if class_id == "none":
            if user["role"] != "admin":
                raise _no_class()
            items, next_cursor = self.store.page(class_key=NO_CLASS, start=start, end=end,
                                                 limit=limit, cursor=cursor)
        elif class_id is not None:
            self.access.class_for(user, class_id)
            items, next_cursor = self.store.page(class_key=class_id, start=start, end=end,
                                                 limit=limit, cursor=cursor)
        elif user["role"] == "admin":
            items, next_cursor = self.store.page(start=start, end=end, limit=limit,
                                                 cursor=cursor)
        else:
            items, next_cursor = self._page_of_classes(
                sorted(self.access.class_ids(user)), start, end, limit, cursor)
        return [public_session(item) for item in items], next_cursor

    def _page_of_classes(self, class_ids, start, end, limit, cursor):
        """Newest first across several classes: each class's next page, merged.

        The cursor is the last answered session's day key (unique); each class
        is read from just after it, so nothing is answered twice."""
        after = decode_cursor(cursor, ["before"])["before"] if cursor else None
        end_key = f"{end or '9999-99-99'}#\uffff"
        high = min(end_key, after) if after else end_key
        merged = []
        for class_id in class_ids if high >= (start or "0000") else ():
            merged.extend(i for i in self.store.newest(class_id, start or "0000", high,
                                                       limit + 1) if i["day_key"] != after)
        merged.sort(key=lambda i: i["day_key"], reverse=True)
        page = merged[:limit]
        more = len(merged) > limit
        return page, (encode_cursor({"before": page[-1]["day_key"]}) if more else None)

    def detail(self, session_id, user=None):
        """The session and its rows sorted by name.

        In polling mode a PROCESSING session's job is looked at once here, so a
        job that outlived the S3 handler's timeout still completes; in both
        modes a session stuck PROCESSING is checked (:meth:`check_processing`).
        """
        item = self.require(session_id, user)
        if item["status"] == PROCESSING:
            if item.get("job_id") and not self.face_search.notifies:
                self._look_at_job(item)
                item = self.require(session_id)
            if item["status"] == PROCESSING:
                self.check_processing(item)
            item = self.require(session_id)
        elif item["status"] == CONVERTING and item.get("conversion_job_id") and self.converter:
            # The conversion's end event may be lost or late: its state is asked once.
            self._look_at_conversion(item, budget_seconds=0)
            item = self.require(session_id)
        return {"session": public_session(item, full=True),
                "attendance": self.attendance.rows(session_id)}

    def retry(self, session_id, budget_seconds=0, user=None):
        """Start a FAILED session's face search again (409 for any other status)."""
        item = self.require(session_id, user)
        attempt = int(item.get("attempt", 0))
        if item["status"] != FAILED or self.store.begin_retry(session_id, attempt) is None:
            raise WrongState(f"Only a failed session can be retried; this one is "
                             f"{SessionStatus(item['status']).words()}.", code="not_failed")
        self._start(self.require(session_id), budget_seconds)
        return public_session(self.require(session_id))

    def correct(self, session_id, student_id, *, status, reason, user_email, user=None):
        """A manual status (PRESENT, LATE, ABSENT or EXCUSED) kept beside the
        automatic result. A person without a row gets one only if they are on
        the session's roster: enrolled in its class, or registered for a
        session without a class."""
        item = self.require(session_id, user)
        if not is_student_id(student_id):  # could not be a key: never looked up
            raise UnknownStudent("There is no student with that ID.", code="student_not_found")

        def name_for_new_row():
            student = self.roster.get(student_id)
            if student is not None and item.get("class_id") and not self.classes.members.enrolled(
                    [item["class_id"]], [student_id]):
                student = None
            if student is None:
                raise UnknownStudent("That person has no row in this session and is not on its "
                                     "roster.", code="student_not_found")
            return student.get("full_name") or student_id

        try:
            row = self.attendance.correct(session_id, student_id, status, reason, user_email)
        except attendance.RowNotFound:
            row = self.attendance.correct(session_id, student_id, status, reason, user_email,
                                          full_name=name_for_new_row())
        self._recount(session_id)
        return row

    # -- evidence: a second look, and registering from the video ----------------
    def _completed(self, session_id, user):
        item = self.require(session_id, user)
        if item["status"] != COMPLETED:
            raise WrongState("This can be done only once the session is completed; this one "
                             f"is {SessionStatus(item['status']).words()}.",
                             code="not_completed")
        return item

    def not_this_person(self, session_id, student_id, *, user_email, user=None):
        """"Not this person": the row becomes a correction to absent, and the face
        it was matched on joins the session's unrecognised people (once)."""
        self._completed(session_id, user)
        rows = {r["student_id"]: r for r in self.attendance.rows(session_id)}
        row = rows.get(student_id)
        if row is None:
            raise UnknownStudent("That student has no row in this session.",
                                 code="student_not_found")
        corrected = self.correct(session_id, student_id, status=AttendanceStatus.ABSENT,
                                 reason=NOT_THIS_PERSON, user_email=user_email)
        best = (row.get("moments") or {}).get("best")
        if best:
            entry = {"first_seen_ms": row.get("first_seen_ms"),
                     "last_seen_ms": row.get("last_seen_ms"),
                     "seen_for_ms": row.get("seen_for_ms") or 0,
                     "seen_ms": (row.get("seen_ms") or [])[:attendance.MAX_STRANGER_TIMELINE],
                     "moment": best, "from_student": student_id}
            self.store.add_stranger(session_id, student_id, entry)
            self._recount(session_id)
        return corrected

    def register_stranger(self, session_id, number, *, student_id, full_name, user_email,
                          photo_key=None, user=None):
        """Register unrecognised person ``number`` and mark them present in this session.

        The photo is the crop cut for it from the full-resolution frame, unless
        ``photo_key`` (a photo uploaded the usual way) is given. The normal
        registration rules apply; when the video's face fails the photo rules
        the answer is 422 ``video_photo_unusable`` (the page asks for a photo).
        Then, for a class session, they are enrolled in its class; the stranger
        is marked ``registered_as`` and the student gets a PRESENT correction
        "registered from this session".
        """
        item = self._completed(session_id, user)
        entries = stranger_views(item.get("strangers"))
        if not 1 <= number <= len(entries) or entries[number - 1].get("merged_into"):
            raise NotFound("This session has no such unrecognised person.",
                           code="stranger_not_found")
        entry = entries[number - 1]
        if entry["registered_as"]:
            raise WrongState(f"This person was already registered as {entry['registered_as']}.",
                             code="already_registered")
        from_video = photo_key is None
        if from_video:
            crop = evidence.stranger_crop(entry["number"], photo=True)
            if entry["from_student"] or crop not in (item.get("evidence_cut") or set()):
                raise Unusable("There is no picture of this person from the video to register "
                               "with. Choose a photo of them instead.", code="no_video_photo",
                               details={"field": "photo"})
            photo_key = f"photos/uploads/{uuid.uuid4().hex}.jpg"
            self.crops.copy_to(session_id, crop, self.photos.bucket, photo_key)
        try:
            student = self.roster.register(student_id, full_name, photo_key)
        except Unusable as refusal:
            if not from_video or refusal.code not in _PHOTO_PROBLEMS:
                raise
            raise Unusable(f"The face in the video cannot be used as a registration photo: "
                           f"{refusal.message} Choose a photo of this person instead.",
                           code="video_photo_unusable",
                           details={"field": "photo", "reason": refusal.code}) from refusal
        if item.get("class_id"):
            class_item = self.classes.store.get(item["class_id"])
            if class_item is not None:  # (a deleted class enrols nobody)
                self.classes.enrol(class_item, student_id, user_email)
        if not self.store.mark_registered(session_id, number, student_id):
            self.log.warning("stranger was registered twice",
                             extra={"session_id": session_id, "number": number})
        row = self.correct(session_id, student_id, status=AttendanceStatus.PRESENT,
                           reason=REGISTERED_HERE, user_email=user_email)
        return {"student": self.roster.view(student), "row": row}

    def delete(self, session_id, user=None):
        """Remove the video, the rows, the face-grouping runs' scratch
        collections, then the session (so a failure can be redone)."""
        item = self.require(session_id, user)
        self.videos.delete_prefix(f"{VIDEO_PREFIX}{session_id}/")
        self.videos.delete_prefix(f"{CONVERTED_PREFIX}{session_id}/")
        if self.crops is not None:
            self.crops.delete_session(session_id)
        if self.scratch is not None:
            # as noted now, not at the first read: a run may have started since
            self.scratch.delete_all_noted(self.store.get(session_id) or item)
        self.attendance.delete_session(session_id)
        self.store.delete(session_id)

    def student_history(self, student_id, class_ids=None):
        """One student's rows with their sessions, newest first, and the rate.

        ``class_ids``: only sessions of these classes (a teacher's); None: all.
        The rate is attended (present or late) over the sessions not excused."""
        rows = self.attendance.history(student_id)
        sessions = self.store.get_many(row["session_id"] for row in rows)
        dated = []
        for row in rows:
            session = sessions.get(row["session_id"])
            if session is None:
                continue  # deleted between the two reads
            if class_ids is not None and session.get("class_id") not in class_ids:
                continue
            dated.append(((session.get("date") or "", session.get("created_at") or ""), {
                "session_id": row["session_id"], "title": session.get("title"),
                "course": session.get("course"), "date": session.get("date"),
                "class_id": session.get("class_id"),
                "status": row["status"], "source": row["source"],
                "similarity": row["similarity"], "first_seen_ms": row["first_seen_ms"]}))
        history = [entry for _, entry in sorted(dated, key=lambda d: d[0], reverse=True)]
        return dict({"history": history}, **attendance_totals(h["status"] for h in history))

    # -- the watchdog -------------------------------------------------------------
    def sweep(self, now=None):
        """Check every session stuck PROCESSING; how many ended in each status."""
        ended = collections.Counter()
        for item in self.store.live():
            if item.get("status") not in LIVE:
                self.store.forget_live(item["session_id"])
                continue
            if item.get("status") == CONVERTING:
                # A conversion's end event may be lost: its job is asked once a sweep.
                if item.get("conversion_job_id") and self.converter:
                    ended[str(self._look_at_conversion(item, budget_seconds=0))] += 1
                continue
            ended[str(self.check_processing(item, now))] += 1
        if ended:
            self.log.info("checked processing sessions", extra={"outcomes": dict(ended)})
        return dict(ended)

    def check_processing(self, item, now=None):
        """A session PROCESSING for longer than the bound is checked against its job
        (at most once per :data:`CHECK_EVERY_SECONDS`); answers its status after."""
        if item.get("status") != PROCESSING:
            return item.get("status")
        now = now or datetime.datetime.now(datetime.timezone.utc)
        bound = self.settings.processing_check_seconds
        since = _parse_time(item.get("processing_since") or item.get("updated_at"))
        if since is not None and (now - since).total_seconds() < bound:
            return PROCESSING
        stamp = now.isoformat(timespec="seconds")
        not_since = (now - datetime.timedelta(seconds=min(bound, CHECK_EVERY_SECONDS))
                     ).isoformat(timespec="seconds")
        claimed = self.store.claim_check(item["session_id"], stamp, not_since)
        if claimed is None:
            return PROCESSING  # looked at a moment ago, or it just moved on
        return self._watch(claimed) or PROCESSING

    def _watch(self, item):
        session_id, attempt = item["session_id"], int(item.get("attempt", 0))
        job_id = item.get("job_id")
        if job_id:
            try:
                result = self.face_search.read(job_id, _BEST)
            except ClientError as error:
                if error.response["Error"]["Code"] not in _LOST_JOB_CODES:
                    self.log.exception("could not look at a stuck session's job",
                                       extra={"session_id": session_id, "job_id": job_id})
                    return PROCESSING
                result = None
            except Exception:  # noqa: BLE001 - the next check tries again
                self.log.exception("could not look at a stuck session's job",
                                   extra={"session_id": session_id, "job_id": job_id})
                return PROCESSING
            if result is not None:
                return self._finish(item, result)
        self.log.warning("session stuck processing: its face search is lost",
                         extra={"session_id": session_id, "job_id": job_id})
        self.store.mark_failed(session_id, attempt, _LOST_JOB)
        return FAILED

    # -- events -------------------------------------------------------------------
    def on_video_uploaded(self, bucket, key, budget_seconds):
        """The S3 event: check the file, start the face search once, maybe poll."""
        session_id = session_id_from_key(key)
        if bucket != self.videos.bucket or session_id is None:
            self.log.warning("ignored upload outside the sessions' keys",
                             extra={"bucket": bucket, "key": key})
            return None
        item = self.store.get(session_id)
        if item is None or item.get("video_key") != key:
            self.log.warning("ignored upload for no session",
                             extra={"session_id": session_id, "key": key})
            return None
        if item["status"] != AWAITING_UPLOAD and self._replaced(item, key):
            return item["status"]
        if item["status"] in (COMPLETED, FAILED, CONVERTING):
            return item["status"]  # repeated event: decided, or its conversion runs
        if item["status"] == PROCESSING and item.get("job_id"):
            # Repeated event: nothing new starts; in polling mode keep waiting for it.
            if not self.face_search.notifies:
                return self._complete_from(
                    item, lambda: self.face_search.wait(item["job_id"], budget_seconds, _BEST))
            return PROCESSING
        return self._start(item, budget_seconds)

    def _replaced(self, item, key):
        """True (logged, and noted on the session) if the object under ``key`` is not
        the one that was analysed: an upload form used again after the session
        stopped awaiting one. It is ignored: nothing starts, the attendance stays
        that of the analysed video (whose ETag the session keeps); the new object
        is left in place, unused (deleting it would leave no video at all)."""
        analysed = item.get("video_etag")
        current = self.videos.version(key)
        if not analysed or current is None or current[0] == analysed:
            return False  # a repeated event for the analysed object (or none kept yet)
        self.log.warning("ignored an upload for a session that was not awaiting one",
                         extra={"session_id": item["session_id"], "status": item["status"],
                                "analysed_etag": analysed, "uploaded_etag": current[0]})
        self.store.note_ignored_upload(item["session_id"], current[0])
        return True

    def on_completion_message(self, message):
        """Rekognition's SNS message: ``{"JobId", "Status", "JobTag", ...}``."""
        session_id, job_id = message.get("JobTag"), message.get("JobId")
        item = self.store.get(session_id) if session_id else None
        if item is None or item.get("job_id") != job_id:
            self.log.warning("ignored completion of an unknown or replaced job",
                             extra={"session_id": session_id, "job_id": job_id})
            return None
        if item["status"] != PROCESSING:
            return item["status"]  # repeated message: changes nothing
        # The message says only SUCCEEDED/FAILED; GetFaceSearch has the results and
        # the StatusMessage of a failure, so it is always asked.
        return self._complete_from(item, lambda: self.face_search.read(job_id, _BEST))

    # -- steps --------------------------------------------------------------------
    def _start(self, item, budget_seconds):
        """Check the stored file and read what it holds; convert it or search it."""
        session_id, attempt = item["session_id"], int(item.get("attempt", 0))
        converted = item.get("analysis_key")
        if converted and converted.startswith(CONVERTED_PREFIX):
            # A retry after the conversion: the converted copy is the one left.
            return self._start_face_search(item, converted, budget_seconds)
        try:
            stored = self.videos.inspect(item["video_key"], VIDEO_TYPES,
                                         self.settings.max_video_bytes)
            info = probe(self.videos.reader(item["video_key"]), stored.size)
        except (UploadProblem, MediaProblem) as problem:
            # Retrying the same file cannot help: POST .../upload sends another.
            self.store.mark_failed(session_id, attempt, f"{problem} To send another file, "
                                   "upload the video again.", kind=FILE_ERROR)
            return FAILED
        except Exception:
            self.log.exception("the upload could not be read", extra={"session_id": session_id})
            self.store.mark_failed(session_id, attempt, _INTERNAL_ERROR)
            return FAILED
        self.store.set_media(session_id, attempt, to_dynamo(info.as_dict()),
                             video=(stored.etag, stored.version_id))
        if info.face_search_ready():
            return self._start_face_search(item, item["video_key"], budget_seconds)
        return self._convert(item, info)

    def _convert(self, item, info):
        """Start MediaConvert on a recording Rekognition cannot read: CONVERTING."""
        session_id, attempt = item["session_id"], int(item.get("attempt", 0))
        if self.converter is None:
            self.store.mark_failed(
                session_id, attempt, f"The video is {info.codec_name} in a "
                f"{info.container.upper()} file; face search reads H.264 video in MP4 or "
                "MOV only. Export or convert it to MP4 (H.264) and upload it again.",
                kind=FILE_ERROR)
            return FAILED
        try:
            job_id = self.converter.start(source_key=item["video_key"], session_id=session_id,
                                          attempt=attempt, info=info)
        except ConversionProblem as problem:
            self.store.mark_failed(session_id, attempt, str(problem))
            return FAILED
        except Exception:
            self.log.exception("conversion could not start", extra={"session_id": session_id})
            self.store.mark_failed(session_id, attempt, _INTERNAL_ERROR)
            return FAILED
        if self.store.mark_converting(session_id, attempt, job_id) is None:
            return None  # retried, deleted or finished meanwhile
        self.log.info("conversion started", extra={"session_id": session_id, "job_id": job_id,
                                                   "codec": info.codec})
        return CONVERTING

    def on_conversion_event(self, result, budget_seconds):
        """MediaConvert's job state (:func:`chalicelib.conversion.parse_job_event`):
        progress is kept, the end starts the face search on the converted file."""
        item = self.store.get(result.session_id) if result.session_id else None
        if item is None or item.get("conversion_job_id") != result.job_id:
            self.log.warning("ignored a conversion event of an unknown or replaced job",
                             extra={"session_id": result.session_id, "job_id": result.job_id})
            return None
        if item["status"] != CONVERTING:
            return item["status"]  # repeated event: changes nothing
        return self._after_conversion(item, result, budget_seconds)

    def _look_at_conversion(self, item, budget_seconds):
        try:
            result = self.converter.read(item["conversion_job_id"])
        except Exception:  # noqa: BLE001 - the event or a later look finishes it
            self.log.exception("could not look at the conversion job",
                               extra={"session_id": item["session_id"]})
            return CONVERTING
        return self._after_conversion(item, result, budget_seconds)

    def _after_conversion(self, item, result, budget_seconds):
        session_id, attempt = item["session_id"], int(item.get("attempt", 0))
        if not result.finished:
            if result.percent is not None:
                self.store.set_conversion_percent(session_id, result.job_id, int(result.percent))
            return CONVERTING
        if result.status != "COMPLETE" or not result.output_key:
            detail = f" ({result.message})" if result.message else ""
            self.store.mark_failed(
                session_id, attempt, f"The video could not be converted to H.264{detail}. "
                "Export it as MP4 (H.264) and upload it again.", kind=FILE_ERROR)
            return FAILED
        status = self._start_face_search(item, result.output_key, budget_seconds)
        if status in (PROCESSING, COMPLETED):
            # One copy is kept: the converted file is the one analysed from now on.
            self.videos.delete([item["video_key"]])
        return status

    def _start_face_search(self, item, key, budget_seconds):
        session_id, attempt = item["session_id"], int(item.get("attempt", 0))
        try:
            job_id = self.face_search.start(bucket=self.videos.bucket, key=key,
                                            session_id=session_id, attempt=attempt)
        except FaceSearchProblem as problem:
            self.store.mark_failed(session_id, attempt, str(problem),
                                   kind=FILE_ERROR if problem.about_file else RETRY_ERROR)
            return FAILED
        except Exception:
            self.log.exception("face search could not start", extra={"session_id": session_id})
            self.store.mark_failed(session_id, attempt, _INTERNAL_ERROR)
            return FAILED
        item = self.store.mark_processing(session_id, attempt, job_id, key)
        if item is None:
            return None  # retried, deleted or finished meanwhile
        self.log.info("face search started", extra={"session_id": session_id, "job_id": job_id})
        if self.face_search.notifies:
            # A completion message that came before the job id was stored was
            # ignored as unknown; one look now closes that gap (whatever ends
            # later is announced to a session that knows its job).
            return self._look_at_job(item)
        return self._complete_from(
            item, lambda: self.face_search.wait(job_id, budget_seconds, _BEST))

    def _complete_from(self, item, fetch):
        """:meth:`_finish` with what ``fetch`` answers; FAILED if fetching raised."""
        try:
            result = fetch()
        except Exception:
            self.log.exception("could not read the face search results",
                               extra={"session_id": item["session_id"], "job_id": item["job_id"]})
            self.store.mark_failed(item["session_id"], int(item.get("attempt", 0)),
                                   _INTERNAL_ERROR)
            return FAILED
        return self._finish(item, result)

    def _look_at_job(self, item):
        """Ask for the job's state once and finish the session if it ended."""
        try:
            result = self.face_search.read(item["job_id"], _BEST)
        except Exception:  # noqa: BLE001 - a later look or the message will finish it
            self.log.exception("could not look at the face search job",
                               extra={"session_id": item["session_id"], "job_id": item["job_id"]})
            return PROCESSING
        return self._finish(item, result)

    def _finish(self, item, result):
        """Turn a job's result into rows and a final status (or leave it PROCESSING)."""
        session_id, attempt = item["session_id"], int(item.get("attempt", 0))
        if result.status == JobStatus.IN_PROGRESS:
            self.log.info("face search still running", extra={"session_id": session_id,
                                                              "job_id": result.job_id})
            return PROCESSING
        if result.status != JobStatus.SUCCEEDED:
            detail = f" ({result.message})" if result.message else ""
            if unreadable_video(result.message):
                # The same file fails again: a retry cannot help, another file can.
                self.store.mark_failed(
                    session_id, attempt, f"The video could not be read for face search"
                    f"{detail}. Face search reads H.264 video in MP4 or MOV: convert the "
                    "recording to MP4 (H.264) and upload it again.", kind=FILE_ERROR)
                return FAILED
            self.store.mark_failed(session_id, attempt,
                                   f"The face search of the video failed{detail}. Retry this "
                                   "session; if it fails again, upload the video again.")
            return FAILED
        try:
            roster, late_minutes = self._roster_of(item)
            decision = attendance.decide(result.persons, {s["student_id"] for s in roster},
                                         self.settings.match_threshold)
            late_after_ms = None
            if late_minutes is not None:
                late_after_ms = (int(item.get("start_offset_seconds") or 0) * 1000
                                 + late_minutes * 60_000)
            rows = self.attendance.record_automatic(session_id, roster, decision,
                                                    self.settings.min_sightings, late_after_ms)
            outside = {s["student_id"]: s for s in self.roster.get_many(decision.outside)}
            apart = attendance.seen_not_enrolled(decision, outside, self.settings.min_sightings)
            # People of other classes are listed apart, not among the unrecognised.
            decision = decision.without(outside)
            strangers = [s.public() for s in decision.strangers[:attendance.MAX_STRANGERS]]
            done = self.store.mark_completed(
                session_id, result.job_id,
                attendance.counts(rows, decision.unrecognised, len(apart)),
                extra={"seen_not_enrolled": to_dynamo(apart),
                       "late_threshold_minutes": late_minutes,
                       # The unrecognised people, and the crops that follow.
                       "strangers": to_dynamo(strangers),
                       STRANGERS_VERSION: new_strangers_version(),
                       "evidence_status": evidence.PENDING})
        except Exception:
            self.log.exception("attendance could not be recorded",
                               extra={"session_id": session_id, "job_id": result.job_id})
            self.store.mark_failed(session_id, attempt, _INTERNAL_ERROR)
            return FAILED
        if done is None and self.store.get(session_id) is None:
            self.attendance.delete_session(session_id)  # deleted meanwhile: leave nothing
            return None
        self.log.info("attendance recorded", extra={"session_id": session_id,
                                                    "pages": result.pages,
                                                    "rows": len(rows)})
        if done is not None:
            self._request_evidence(session_id, result.job_id)
        return COMPLETED

    def _request_evidence(self, session_id, job_id):
        """Ask for the crops; the session is already COMPLETED whatever happens here."""
        if self.evidence_queue is None:
            return
        try:
            self.evidence_queue.request(session_id, job_id)
        except Exception:  # noqa: BLE001 - attendance stands; the page says "no crops"
            self.log.exception("evidence crops could not be requested",
                               extra={"session_id": session_id, "job_id": job_id})
            self.store.set_evidence(session_id, job_id, evidence.FAILED)
    def _roster_of(self, item):
        """The people a session is taken against, now, and the late threshold in
        minutes (None: no lateness): the class's enrolment, or everyone."""
        if not item.get("class_id"):
            # Everyone, by definition: every page of the people's name index (a
            # query, page by page, never a scan), only at an everyone-session's end.
            return self.roster.list_all(), None
        class_item = self.classes.store.get(item["class_id"])
        if class_item is None:  # the class was deleted: nobody is on its roster
            return [], None
        late = int(class_item.get("late_threshold_minutes", DEFAULT_LATE_MINUTES))
        return self.classes.roster_for_completion(item["class_id"]), late

    def _recount(self, session_id):
        """Count the session again, after a change to its rows or strangers.

        The unrecognised count comes from the strangers as read, and other
        writers change them meanwhile (the grouping's merges lower the count
        themselves): the counts are written only if the strangers are unchanged
        since the read, else counted again from a fresh read. Two corrections at
        once each recount: each first marks itself the latest (a token on the
        session, written after its row and before it reads the rows), and only
        the latest may write, so the counts that stay were read after every
        row whose recount had started: a slower recount that read fewer rows
        never writes over them."""
        item = self.store.start_recount(session_id)
        if item is None:
            return
        token = item["recount_token"]
        for attempt in range(_RECOUNT_TRIES):
            if attempt:         # (the first count reads the item the token's write answered)
                item = self.store.get(session_id)
            if item is None or item.get("recount_token") != token:
                return          # gone, or a later recount counts (it reads after us)
            old = item.get("counts") or {}
            unrecognised = int(old.get("unrecognised", 0))
            if item.get("strangers") is not None:
                unrecognised = unrecognised_count(item["strangers"])
            counts = attendance.counts(self.attendance.rows(session_id, consistent=True),
                                       unrecognised,
                                       int(old.get("not_enrolled", 0)))
            if self.store.set_counts(session_id, counts, item.get(STRANGERS_VERSION), token):
                return
        self.log.warning("counts not written: the strangers kept changing",
                         extra={"session_id": session_id})


def attendance_totals(statuses):
    """``present`` (attended: on time or late), ``late``, ``excused``, ``total``
    and ``rate`` = attended / sessions not excused (None when there are none)."""
    statuses = [s for s in statuses if s]
    present = sum(1 for s in statuses if s in attendance.ATTENDED)
    excused = statuses.count(attendance.EXCUSED)
    counted = len(statuses) - excused
    return {"present": present, "late": statuses.count(attendance.LATE), "excused": excused,
            "total": len(statuses), "rate": round(present / counted, 4) if counted else None}


def _no_session():
    return UnknownSession("There is no such session (it may have been deleted).")


def _no_class():
    return NotFound("There is no such class (it may have been deleted).",
                    code="class_not_found")


def _parse_time(text):
    try:
        return datetime.datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


# -- reading events ---------------------------------------------------------------
#: Seconds the S3 handler keeps for writing rows after it stops polling.
POLL_MARGIN_SECONDS = 20
#: Polling budget when there is no Lambda context (the local bridge, a script).
DEFAULT_POLL_SECONDS = 100


def polling_budget(context):
    """How long the S3 handler may poll: its remaining Lambda time less a margin."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return DEFAULT_POLL_SECONDS
    seconds = remaining() / 1000
    # A fifth of a short timeout, at most POLL_MARGIN_SECONDS of a long one.
    return max(0.0, seconds - min(POLL_MARGIN_SECONDS, seconds / 5))


def parse_completion_message(text, logger):
    """Rekognition's SNS message as a dict, or None (logged) if it is not one."""
    try:
        message = json.loads(text)
    except (TypeError, ValueError):
        message = None
    if not isinstance(message, dict) or "JobId" not in message:
        logger.warning("ignored an SNS message that is not a face search completion")
        return None
    return message
