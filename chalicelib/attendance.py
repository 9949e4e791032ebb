"""Deciding who was present from face-search results, and the attendance rows.

:func:`decide` is pure: GetFaceSearch's ``Persons`` entries in, per-student
evidence out. A sighting is one video timestamp at which a tracked person's
*best* match (the highest similarity among its ``FaceMatches``) is a student
at or above the threshold; a student is PRESENT with at least
``min_sightings`` sightings. Only the best match counts, so a face that
resembles two students is never counted for both.

Statuses (:func:`automatic_status`, pure as well): ABSENT below
``min_sightings``; LATE when seen enough but first seen strictly after
``late_after_ms`` (the session's start offset plus the class's late
threshold; a first sighting exactly at it is on time); PRESENT otherwise.
EXCUSED is never automatic: only a teacher's correction sets it.

Someone matched who is not on the roster (a person of another class) is kept
apart in ``Decision.outside``: never a row, never counted present or absent.

:class:`AttendanceStore` keeps one row per (session_id, student_id). The key
is deterministic, so writing the same result twice leaves one set of rows,
and rows that would not change are not written at all. A manual correction
sets ``source = manual`` and the effective ``status``; a later automatic run
(a duplicate message, a retry) only refreshes the ``auto_*`` evidence beside
it and never overrides the teacher's decision.
"""
import collections
import dataclasses

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from chalicelib.dynamo import (batch_delete, batch_put, from_dynamo, is_conditional_failure,
                               query_all, to_dynamo, utc_now)
from chalicelib.schema import ATTENDANCE_BY_STUDENT_INDEX
from chalicelib.statuses import AttendanceStatus, RowSource
from chalicelib.students import name_sort_key  # the roster's own order: accents folded

PRESENT, LATE, ABSENT, EXCUSED = (AttendanceStatus.PRESENT, AttendanceStatus.LATE,
                                  AttendanceStatus.ABSENT, AttendanceStatus.EXCUSED)
#: Every status a row may have; only PRESENT, LATE and ABSENT are ever automatic.
STATUSES = tuple(AttendanceStatus)
#: Statuses that mean the person attended.
ATTENDED = (PRESENT, LATE)
AUTO, MANUAL = RowSource
#: The timeline keeps at most this many sighting timestamps per row.
MAX_TIMELINE = 200

#: Every field of a row as the API answers it (missing ones are null).
ROW_FIELDS = ("session_id", "student_id", "full_name", "status", "source", "auto_status",
              "similarity", "first_seen_ms", "last_seen_ms", "sightings", "seen_ms",
              "corrected_by", "corrected_at", "reason")


@dataclasses.dataclass
class Evidence:
    """When and how well one student was seen in one video."""

    seen: dict = dataclasses.field(default_factory=dict)  # timestamp ms -> best similarity

    @property
    def sightings(self):
        return len(self.seen)


@dataclasses.dataclass
class Decision:
    evidence: dict  # student_id -> Evidence (only students seen at least once)
    unrecognised: int  # tracked people never matched to a roster student
    #: student_id -> Evidence of people matched who are not on the roster.
    outside: dict = dataclasses.field(default_factory=dict)


def best_match(entry):
    """One ``Persons`` entry as ``(timestamp, person index, student_id, similarity)``.

    Only the entry's best match is kept (student_id None when nothing matched),
    which is all :func:`decide` needs: the completion keeps these small tuples
    instead of whole entries, so a long video's results fit in memory.
    """
    best_id, best_similarity = None, 0.0
    for match in entry.get("FaceMatches") or []:
        student_id = match.get("Face", {}).get("ExternalImageId")
        similarity = float(match.get("Similarity", 0.0))
        if student_id and (best_id is None or similarity > best_similarity):
            best_id, best_similarity = student_id, similarity
    return (int(entry["Timestamp"]), entry.get("Person", {}).get("Index"), best_id,
            best_similarity)


def decide(persons, roster_ids, threshold):
    """Evidence per roster student, and how many tracked people nobody matched.

    ``persons`` are GetFaceSearch ``Persons`` entries from every page, or their
    :func:`best_match` tuples. Entries may repeat a (timestamp, person index)
    pair; they collapse to one. Rules:

    * a moment's best match at or above ``threshold`` is a sighting of that id;
    * sightings of roster ids are ``evidence``; of other ids, ``outside``
      (the caller keeps only those who are registered: a deleted person's
      face may still match);
    * ``unrecognised`` counts the tracks with no sighting of a roster id.
    """
    best = {}  # (timestamp, track) -> (similarity, student_id)
    tracks = set()
    for number, entry in enumerate(persons):
        timestamp, index, student_id, similarity = (
            best_match(entry) if isinstance(entry, dict) else entry)
        # A person without an index cannot be tracked: it is its own track.
        track = index if index is not None else ("entry", number)
        tracks.add(track)
        moment = (timestamp, track)
        if student_id and (moment not in best or similarity > best[moment][0]):
            best[moment] = (similarity, student_id)
    evidence = collections.defaultdict(Evidence)
    outside = collections.defaultdict(Evidence)
    recognised = set()
    for (timestamp, track), (similarity, student_id) in best.items():
        if similarity < threshold:
            continue
        if student_id in roster_ids:
            recognised.add(track)
            seen = evidence[student_id].seen
        else:
            seen = outside[student_id].seen
        seen[timestamp] = max(seen.get(timestamp, 0.0), similarity)
    return Decision(evidence=dict(evidence), unrecognised=len(tracks - recognised),
                    outside=dict(outside))


def automatic_status(seen, min_sightings, late_after_ms=None):
    """ABSENT, LATE or PRESENT for sightings ``{timestamp ms: similarity}`` (rules
    in the module docstring). ``late_after_ms`` None: no lateness (no class)."""
    if len(seen) < min_sightings:
        return ABSENT
    if late_after_ms is not None and min(seen) > late_after_ms:
        return LATE
    return PRESENT


def seen_not_enrolled(decision, registered, min_sightings):
    """``decision.outside`` as the session lists it: registered people seen at least
    ``min_sightings`` times, by first sighting. ``registered``: id -> student item."""
    listed = []
    for student_id, evidence in decision.outside.items():
        student = registered.get(student_id)
        if student is None or evidence.sightings < min_sightings:
            continue
        listed.append({"student_id": student_id,
                       "full_name": student.get("full_name") or student_id,
                       "first_seen_ms": min(evidence.seen),
                       "similarity": round(max(evidence.seen.values()), 2),
                       "sightings": evidence.sightings})
    return sorted(listed, key=lambda p: (p["first_seen_ms"], p["student_id"]))


def thin_timeline(timestamps, limit=MAX_TIMELINE):
    """At most ``limit`` sorted timestamps, evenly spread, first and last kept."""
    timestamps = sorted(timestamps)
    if len(timestamps) <= limit:
        return timestamps
    step = (len(timestamps) - 1) / (limit - 1)
    return [timestamps[round(i * step)] for i in range(limit)]


def automatic_row(session_id, student, evidence, min_sightings, late_after_ms=None):
    """The automatic result for one student (status fields filled in by merge)."""
    seen = evidence.seen if evidence else {}
    status = automatic_status(seen, min_sightings, late_after_ms)
    return {
        "session_id": session_id,
        "student_id": student["student_id"],
        # The name at the time: it stays on the row if the student is renamed or deleted.
        "full_name": student.get("full_name") or student["student_id"],
        "auto_status": status,
        "similarity": round(max(seen.values()), 2) if seen else None,
        "first_seen_ms": min(seen) if seen else None,
        "last_seen_ms": max(seen) if seen else None,
        "sightings": len(seen),
        "seen_ms": thin_timeline(seen),
    }


def merge(automatic, existing):
    """The row to store: the automatic result, under a manual correction if any."""
    row = dict(automatic)
    if existing and existing.get("source") == MANUAL:
        for field in ("status", "source", "corrected_by", "corrected_at", "reason"):
            row[field] = existing.get(field)
    else:
        row.update(status=automatic["auto_status"], source=AUTO, corrected_by=None,
                   corrected_at=None, reason=None)
    return row


def counts(rows, unrecognised=0, not_enrolled=0):
    """``present`` counts everyone who attended (on time or late); ``late`` and
    ``excused`` are part of present and of absent-or-excused respectively."""
    statuses = [row.get("status") for row in rows]
    present = sum(1 for status in statuses if status in ATTENDED)
    return {"roster": len(rows), "present": present, "late": statuses.count(LATE),
            "absent": statuses.count(ABSENT), "excused": statuses.count(EXCUSED),
            "unrecognised": int(unrecognised), "not_enrolled": int(not_enrolled)}


def public_row(item):
    """A stored row as the API answers it: every field, numbers as JSON numbers."""
    item = from_dynamo(item)
    return {field: item.get(field) for field in ROW_FIELDS}


class RowNotFound(LookupError):
    pass


class AttendanceStore:
    def __init__(self, table, now=utc_now):
        self._table = table
        self._now = now

    def rows(self, session_id):
        """Every row of a session (all pages), sorted by name then id."""
        items = query_all(self._table, KeyConditionExpression=Key("session_id").eq(session_id))
        rows = [public_row(item) for item in items]
        return sorted(rows, key=lambda r: name_sort_key(
            {"full_name": r["full_name"] or "", "student_id": r["student_id"]}))

    def record_automatic(self, session_id, roster, decision, min_sightings, late_after_ms=None):
        """Write the automatic result for ``roster``; answer every row of the session.

        Existing manual rows keep their status; rows that would not change are
        not rewritten (a repeated run writes nothing); the rest go out with
        BatchWriteItem, 25 at a time.
        """
        existing = {item["student_id"]: item for item in query_all(
            self._table, KeyConditionExpression=Key("session_id").eq(session_id))}
        final = dict(existing)
        changed = []
        for student in roster:
            automatic = automatic_row(session_id, student,
                                      decision.evidence.get(student["student_id"]),
                                      min_sightings, late_after_ms)
            row = to_dynamo(merge(automatic, existing.get(student["student_id"])))
            if existing.get(student["student_id"]) != row:
                changed.append(row)
            final[student["student_id"]] = row
        batch_put(self._table, changed, overwrite_by_pkeys=["session_id", "student_id"])
        return [public_row(item) for item in final.values()]

    def correct(self, session_id, student_id, status, reason, user_email, full_name=None):
        """Set a manual status beside the automatic one; answer the row.

        A student with no row yet (the session has not completed) gets one
        when ``full_name`` is given; otherwise :class:`RowNotFound`.
        """
        now = self._now()
        key = {"session_id": session_id, "student_id": student_id}
        try:
            item = self._table.update_item(
                Key=key, ConditionExpression="attribute_exists(session_id)",
                UpdateExpression=("SET #status = :status, #source = :manual, "
                                  "corrected_by = :by, corrected_at = :at, reason = :reason"),
                ExpressionAttributeNames={"#status": "status", "#source": "source"},
                ExpressionAttributeValues={":status": status, ":manual": MANUAL,
                                           ":by": user_email, ":at": now, ":reason": reason},
                ReturnValues="ALL_NEW")["Attributes"]
            return public_row(item)
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
        if full_name is None:
            raise RowNotFound(student_id)
        item = dict(key, full_name=full_name, status=status, source=MANUAL, auto_status=None,
                    similarity=None, first_seen_ms=None, last_seen_ms=None, sightings=0,
                    seen_ms=[], corrected_by=user_email, corrected_at=now, reason=reason)
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(session_id)")
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            # The automatic result landed in between: correct that row instead.
            return self.correct(session_id, student_id, status, reason, user_email)
        return public_row(item)

    def history(self, student_id):
        """Every row of one student, through the GSI on student_id (all pages)."""
        return [public_row(item) for item in query_all(
            self._table, IndexName=ATTENDANCE_BY_STUDENT_INDEX,
            KeyConditionExpression=Key("student_id").eq(student_id))]

    def delete_session(self, session_id):
        keys = [{"session_id": item["session_id"], "student_id": item["student_id"]}
                for item in query_all(self._table,
                                      KeyConditionExpression=Key("session_id").eq(session_id),
                                      ProjectionExpression="session_id, student_id")]
        batch_delete(self._table, keys)
        return len(keys)

