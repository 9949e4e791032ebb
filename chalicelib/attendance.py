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

It also names the moments worth a face crop: each seen student's best match
and first sighting, and each unrecognised person's best frame (the largest
face). Unrecognised people are counted as people, not appearances: the face
search's person index gives one track per appearance (an engine may split one
person into several tracks when they look away or leave and come back), so
tracks nobody matched are grouped by :func:`group_strangers`, whose rules are
in its docstring.

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
              "seen_for_ms", "moments", "corrected_by", "corrected_at", "reason")
#: Consecutive sightings at most this far apart count as time seen ("seen for 58 s");
#: a longer gap is time away (the face search samples several frames a second).
MAX_SEEN_GAP_MS = 2000
#: The unrecognised timeline keeps at most this many timestamps per person, and a
#: session at most this many unrecognised people (the count stays exact); both
#: keep the session item far below DynamoDB's 400 KB.
MAX_STRANGER_TIMELINE = 30
MAX_STRANGERS = 200


@dataclasses.dataclass
class Evidence:
    """When and how well one student was seen in one video.

    ``best`` is the (timestamp, box) of the highest similarity (the earliest
    of equals), ``first`` that of the first sighting; a box is the face's
    (left, top, width, height) as ratios of the frame, or None if unknown.
    """

    seen: dict = dataclasses.field(default_factory=dict)  # timestamp ms -> best similarity
    boxes: dict = dataclasses.field(default_factory=dict)  # timestamp ms -> box of that match

    @property
    def sightings(self):
        return len(self.seen)

    @property
    def best(self):
        ms = min(self.seen, key=lambda t: (-self.seen[t], t))
        return ms, self.boxes.get(ms)

    @property
    def first(self):
        ms = min(self.seen)
        return ms, self.boxes.get(ms)


@dataclasses.dataclass
class Stranger:
    """One unrecognised person: the tracks grouped as them, and when they were seen."""

    tracks: list  # the face search's person indexes (or entry keys) grouped here
    seen: list  # sorted timestamps (ms)
    best: tuple  # (timestamp, box) of the largest face: the crop to show and register from

    def public(self):
        """The entry kept on the session (its number is its position there)."""
        ms, box = self.best
        return {"first_seen_ms": self.seen[0], "last_seen_ms": self.seen[-1],
                "seen_for_ms": seen_for_ms(self.seen),
                "seen_ms": thin_timeline(self.seen, MAX_STRANGER_TIMELINE),
                "moment": {"ms": ms, "box": list(box) if box else None},
                "registered_as": None, "from_student": None}


@dataclasses.dataclass
class Decision:
    evidence: dict  # student_id -> Evidence (only students seen at least once)
    strangers: list = dataclasses.field(default_factory=list)  # Stranger, by first sighting
    #: student_id -> Evidence of people matched who are not on the roster.
    outside: dict = dataclasses.field(default_factory=dict)
    #: The tracks no roster student matched: {track: {timestamp: box}}, and the
    #: other ids each matched (for :meth:`without`).
    unmatched: dict = dataclasses.field(default_factory=dict)
    matched_outside: dict = dataclasses.field(default_factory=dict)

    @property
    def unrecognised(self):
        """How many people nobody matched (grouped, not appearances)."""
        return len(self.strangers)

    def without(self, registered):
        """This decision with tracks matched to ``registered`` ids (people of other
        classes, seen apart) taken out of the strangers, who are grouped again."""
        kept = {track: seen for track, seen in self.unmatched.items()
                if not self.matched_outside.get(track, set()) & set(registered)}
        return dataclasses.replace(self, strangers=group_strangers(kept))


def _box(person):
    """The face's BoundingBox of a ``Person`` as a (left, top, width, height) tuple."""
    box = (person.get("Face") or {}).get("BoundingBox") or person.get("BoundingBox")
    if not box:
        return None
    try:
        return tuple(round(float(box[k]), 4) for k in ("Left", "Top", "Width", "Height"))
    except (KeyError, TypeError, ValueError):
        return None


def best_match(entry):
    """One ``Persons`` entry as ``(timestamp, person index, student_id, similarity, box)``.

    Only the entry's best match is kept (student_id None when nothing matched)
    and the face's box, which is all :func:`decide` needs: the completion keeps
    these small tuples instead of whole entries, so a long video's results fit
    in memory.
    """
    best_id, best_similarity = None, 0.0
    for match in entry.get("FaceMatches") or []:
        student_id = match.get("Face", {}).get("ExternalImageId")
        similarity = float(match.get("Similarity", 0.0))
        if student_id and (best_id is None or similarity > best_similarity):
            best_id, best_similarity = student_id, similarity
    person = entry.get("Person", {})
    return (int(entry["Timestamp"]), person.get("Index"), best_id, best_similarity,
            _box(person))


def seen_for_ms(timestamps):
    """Time seen: the sum of gaps between consecutive sightings up to MAX_SEEN_GAP_MS.

    A longer gap is time away, so a person seen at 0-10 s and 60-70 s was seen
    for 20 s, not 70; a single sighting is 0 ms (the page says "briefly").
    """
    ordered = sorted(timestamps)
    return sum(b - a for a, b in zip(ordered, ordered[1:]) if b - a <= MAX_SEEN_GAP_MS)


def _same_place(a, b):
    """True if face boxes ``a`` and ``b`` are where one seated person would be.

    Centres closer than the larger face's width, sizes within a factor of 1.6.
    """
    if a is None or b is None:
        return False
    ax, ay, bx, by = a[0] + a[2] / 2, a[1] + a[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    reach = max(a[2], b[2])
    bigger, smaller = max(a[2] * a[3], b[2] * b[3]), min(a[2] * a[3], b[2] * b[3])
    return (abs(ax - bx) <= reach and abs(ay - by) <= max(a[3], b[3])
            and smaller > 0 and bigger / smaller <= 1.6 ** 2)


def group_strangers(tracks):
    """Unmatched tracks grouped into people; a list of :class:`Stranger`.

    ``tracks`` maps a track key to its sightings ``{timestamp: box}``. Rules,
    which need nothing from the engine but times and boxes:

    * one track is one person (the face search's person index);
    * two tracks seen at the same timestamp are two people (two faces at once);
    * a track that starts after a group's last sighting, with its first face at
      the place of that group's last face (see :func:`_same_place`), is the
      same person come back: in a recording of a class, one place is one seat,
      so someone who looked away, was hidden or left and came back to their
      seat is counted once;
    * tracks are taken by first sighting; a track that fits several groups
      joins the one seen most recently (the nearest in time).

    The result is ordered by first sighting; each group's ``best`` is its
    largest face (the earliest of equals), the crop most useful to a person.
    """
    ordered = sorted(((min(s), key, s) for key, s in tracks.items() if s),
                     key=lambda t: (t[0], str(t[1])))
    groups = []  # [keys, {timestamp: box}]
    for start, key, sightings in ordered:
        fits = []
        for group in groups:
            keys, seen = group
            last = max(seen)
            if last < start and not (set(sightings) & set(seen)) and \
                    _same_place(seen[last], sightings[start]):
                fits.append((last, group))
        if fits:
            _, group = max(fits, key=lambda f: f[0])
            group[0].append(key)
            group[1].update(sightings)
        else:
            groups.append([[key], dict(sightings)])
    strangers = []
    for keys, seen in groups:
        area = lambda t: (seen[t][2] * seen[t][3]) if seen[t] else 0.0  # noqa: E731
        best = min(seen, key=lambda t: (-area(t), t))
        strangers.append(Stranger(tracks=keys, seen=sorted(seen), best=(best, seen[best])))
    return strangers


def decide(persons, roster_ids, threshold):
    """Evidence per roster student, and the people nobody matched, grouped.

    ``persons`` are GetFaceSearch ``Persons`` entries from every page, or their
    :func:`best_match` tuples (4-tuples without a box are accepted). Entries
    may repeat a (timestamp, person index) pair; they collapse to one. Rules:

    * a moment's best match at or above ``threshold`` is a sighting of that id;
    * sightings of roster ids are ``evidence``; of other ids, ``outside``
      (the caller keeps only those who are registered: a deleted person's
      face may still match);
    * ``strangers``: the tracks with no sighting of a roster id, grouped into
      people by :func:`group_strangers`; the caller takes out those matched to
      people registered elsewhere (:meth:`Decision.without`).
    """
    best = {}  # (timestamp, track) -> (similarity, student_id, box)
    boxes = collections.defaultdict(dict)  # track -> {timestamp: box}
    for number, entry in enumerate(persons):
        timestamp, index, student_id, similarity, *rest = (
            best_match(entry) if isinstance(entry, dict) else entry)
        box = tuple(rest[0]) if rest and rest[0] else None
        # A person without an index cannot be tracked: it is its own track.
        track = index if index is not None else ("entry", number)
        if box is not None or timestamp not in boxes[track]:
            boxes[track][timestamp] = box
        moment = (timestamp, track)
        if student_id and (moment not in best or similarity > best[moment][0]):
            best[moment] = (similarity, student_id, box)
    evidence = collections.defaultdict(Evidence)
    outside = collections.defaultdict(Evidence)
    recognised = set()
    matched_outside = collections.defaultdict(set)
    for (timestamp, track), (similarity, student_id, box) in sorted(
            best.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        if similarity < threshold:
            continue
        if student_id in roster_ids:
            recognised.add(track)
            found = evidence[student_id]
        else:
            matched_outside[track].add(student_id)
            found = outside[student_id]
        if similarity > found.seen.get(timestamp, -1.0):
            found.seen[timestamp] = similarity
            found.boxes[timestamp] = box or boxes[track].get(timestamp)
    unmatched = {t: b for t, b in boxes.items() if t not in recognised}
    return Decision(evidence=dict(evidence), strangers=group_strangers(unmatched),
                    outside=dict(outside), unmatched=unmatched,
                    matched_outside=dict(matched_outside))


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
    moments = None
    if seen:
        (best_ms, best_box), (first_ms, first_box) = evidence.best, evidence.first
        moments = {"best": {"ms": best_ms, "box": list(best_box) if best_box else None},
                   "first": {"ms": first_ms, "box": list(first_box) if first_box else None}}
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
        "seen_for_ms": seen_for_ms(seen),
        # Where the face crops are cut from (chalicelib/evidence.py).
        "moments": moments,
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

    def rows(self, session_id, consistent=False):
        """Every row of a session (all pages), sorted by name then id;
        ``consistent``: with every write acknowledged before the read (a recount)."""
        items = query_all(self._table, KeyConditionExpression=Key("session_id").eq(session_id),
                          ConsistentRead=consistent)
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

