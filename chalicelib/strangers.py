"""Unrecognised people by face: one entry per person where the person index split them.

:func:`chalicelib.attendance.group_strangers` groups a session's unmatched
tracks by time and place at completion. Some splits remain: one person seen
at two places (a new seat, the board), or a track the face search lost and
started again elsewhere. Once the crops are cut (the evidence function), the
entries' faces are compared, and entries that are one face are merged.

How: a scratch collection for the run (:func:`scratch_collection_id`):
IndexFaces on each entry's crop, SearchFaces for each indexed face, then the
collection is deleted (in ``finally``). Its name is the run's own (the session,
the run's start and its claim token), so two deliveries of one message at once
(SQS delivers at least once) never touch each other's collection. The session
notes each run's collection (``strangers_scratch``) before it is made and
forgets it once deleted; a run that died meanwhile (its timeout) leaves it
noted, and a later run of the session deletes every noted collection whose run
started more than :data:`RUN_SECONDS` ago (so certainly ended).
Chosen over CompareFaces between pairs because it is linear: 2 calls per entry
(n IndexFaces + n SearchFaces, each $0.001 at Rekognition's list price: 4
cents for a session with 20 unrecognised entries, 40 cents at most, the
session keeping at most attendance.MAX_STRANGERS = 200), and each crop's face
is found and described once; pairs would be n(n-1)/2 calls (19 900 at 200)
and need a cap leaving some pairs unasked. Only the same Rekognition calls on
AWS and on one machine (the built-in engine answers all four).

Rules, conservative (two different people shown as one is worse than one
person shown twice):

* the bar is the app's own MATCH_THRESHOLD: the similarity that makes a face
  in the video a registered person makes two faces in the video one person;
* both ways: each face finds the other at or above the bar;
* whole groups only (complete linkage): a group is merged only if every pair
  of its faces matched, so no chain A~B~C puts A and C together;
* never two entries seen at the same moment (two faces at once); an entry
  seen beside every other one costs no call at all (:func:`mergeable`);
* only entries nobody touched: not registered, not made by "Not this person",
  not merged already; an entry whose crop has no clear face (nothing indexed,
  or the face found is not the crop's centre) stays on its own.

The merge (:func:`merged_entries`, pure) keeps every entry where it is (an
entry's number is its position; crops are named by it): the kept entry of a
group is the one with the largest face (the best crop), and takes the group's
first sighting, last sighting, time seen (summed: the entries never overlap)
and timeline; the others get ``merged_into`` (the kept number) and are left
out of what the API answers and of the unrecognised count.
"""
import itertools
import re
import time
import uuid

from botocore.exceptions import ClientError

from chalicelib.attendance import MAX_STRANGER_TIMELINE, thin_timeline
from chalicelib.dynamo import from_dynamo, is_conditional_failure, to_dynamo

#: A fresh value on the session (:func:`new_strangers_version`) with every write
#: of its ``strangers``: a recount writes the counts only if it is still the one
#: it read, so it never brings back a number a merge lowered meanwhile.
STRANGERS_VERSION = "strangers_version"
#: The scratch collections' names:
#: ``<FACE_COLLECTION>-strangers-<session_id>-<run start, epoch s>-<run id>``
#: (the IAM policy grants the calls on ``<FACE_COLLECTION>-strangers-*`` only).
SCRATCH_INFIX = "-strangers-"
#: The session attribute (a string set) noting the scratch collections of runs
#: that may not have deleted theirs.
SCRATCH_NOTED = "strangers_scratch"
#: No run lasts longer: the evidence function's timeout (config.json's
#: cut_evidence ``lambda_timeout``, 300 s). A run started this long ago has ended.
RUN_SECONDS = 300
#: The face found in a crop must have its centre this close to the crop's middle
#: (fraction of the side either way): a crop is cut around its face, and a face
#: near its edge is someone sitting beside them.
CENTRE_REACH = 0.3
#: At most this many entries become one person (bounds one merge's DynamoDB
#: update expression; a person split more often keeps the rest apart).
MAX_GROUP = 20


def new_strangers_version():
    return uuid.uuid4().hex


def scratch_collection_id(face_collection, session_id, started, run):
    """One run's scratch collection (``run``: hex, ``started``: epoch seconds).
    Rekognition's CollectionId is ``[a-zA-Z0-9_.\\-]+``, at most 255 long: the
    suffix takes 87 (a 32-hex session id and run id)."""
    return f"{face_collection}{SCRATCH_INFIX}{session_id}-{int(started)}-{run}"


def scratch_started(collection_id):
    """The start (epoch seconds) of the run that named ``collection_id``, or None."""
    match = re.search(r"-(\d+)-[0-9a-f]+$", collection_id)
    return int(match.group(1)) if match else None


def grouped_prefix(job_id):
    """``strangers_grouped`` on a session: the claim of one run, for one face search."""
    return f"{job_id}/"


def candidates(entries):
    """The numbers (from 1) of entries that may be merged (rules in the module doc)."""
    return [number for number, entry in enumerate(entries or [], start=1)
            if not entry.get("registered_as") and not entry.get("from_student")
            and not entry.get("merged_into") and (entry.get("moment") or {}).get("box")]


def _centred(box):
    if not box:
        return False
    cx = float(box["Left"]) + float(box["Width"]) / 2
    cy = float(box["Top"]) + float(box["Height"]) / 2
    return abs(cx - 0.5) <= CENTRE_REACH and abs(cy - 0.5) <= CENTRE_REACH


def same_faces(rekognition, collection_id, crops, threshold):
    """{(a, b): similarity} for the crops whose faces match at or above ``threshold``.

    ``crops`` maps an entry number to its crop's JPEG bytes. Each pair is
    reported as each face's search found it (a, b) and (b, a). The scratch
    collection ``collection_id`` (a new name: one run's) exists only during
    the call.
    """
    def delete():
        delete_scratch(rekognition, collection_id)

    rekognition.create_collection(CollectionId=collection_id)
    try:
        face_of = {}  # FaceId -> entry number
        for number, data in sorted(crops.items()):
            indexed = rekognition.index_faces(
                CollectionId=collection_id, Image={"Bytes": data},
                ExternalImageId=str(number), MaxFaces=1, QualityFilter="AUTO",
                DetectionAttributes=[])
            for record in indexed.get("FaceRecords") or []:
                face = record["Face"]
                if _centred(face.get("BoundingBox")):
                    face_of[face["FaceId"]] = number
        matches = {}
        for face_id, number in face_of.items():
            found = rekognition.search_faces(
                CollectionId=collection_id, FaceId=face_id,
                FaceMatchThreshold=float(threshold), MaxFaces=max(1, len(face_of)))
            for match in found.get("FaceMatches") or []:
                other = face_of.get(match["Face"]["FaceId"])
                if other is not None and other != number \
                        and float(match["Similarity"]) >= threshold:
                    matches[(number, other)] = float(match["Similarity"])
        return matches
    finally:
        delete()


def delete_scratch(rekognition, collection_id):
    """Delete a scratch collection; one already gone is fine."""
    try:
        rekognition.delete_collection(CollectionId=collection_id)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise


def groups_of(numbers, matches, seen):
    """The entries that are one person: sorted lists of two or more numbers.

    ``matches`` as :func:`same_faces` answers; ``seen`` maps a number to the
    timestamps it was seen at. Greedy complete linkage over mutual matches,
    the most similar pairs first.
    """
    def mutual(a, b):
        return (a, b) in matches and (b, a) in matches

    group_of = {n: frozenset([n]) for n in numbers}
    pairs = sorted(((min(matches[(a, b)], matches[(b, a)]), a, b)
                    for a, b in itertools.combinations(sorted(numbers), 2) if mutual(a, b)),
                   key=lambda p: (-p[0], p[1], p[2]))
    for _, a, b in pairs:
        left, right = group_of[a], group_of[b]
        if left is right:
            continue
        if len(left) + len(right) <= MAX_GROUP and all(
                mutual(x, y) and not (set(seen.get(x, ())) & set(seen.get(y, ())))
                for x in left for y in right):
            joined = left | right
            for n in joined:
                group_of[n] = joined
    return sorted({tuple(sorted(g)) for g in group_of.values() if len(g) > 1})


def mergeable(numbers, seen):
    """The ``numbers`` that could be in a group: those with another entry never
    seen at the same moment (``seen`` as :func:`groups_of` takes it). The rest
    are never merged, so their faces need no Rekognition call."""
    moments = {n: set(seen.get(n, ())) for n in numbers}
    return [n for n in numbers
            if any(other != n and not (moments[n] & moments[other]) for other in numbers)]


def _area(entry):
    box = (entry.get("moment") or {}).get("box") or (0, 0, 0, 0)
    return float(box[2]) * float(box[3])


def merge_plan(entries, groups):
    """Each group as ``(kept number, its new fields, [numbers merged into it])`` (module doc).

    Pure; numbers are positions from 1. A group with a member that is no longer
    a candidate (registered meanwhile) is left out.
    """
    open_numbers = set(candidates(entries))
    plans = []
    for group in groups:
        if len(group) < 2 or not set(group) <= open_numbers:
            continue
        members = [entries[n - 1] for n in group]
        keep = min(group, key=lambda n: (-_area(entries[n - 1]),
                                         int(entries[n - 1].get("first_seen_ms") or 0), n))
        timeline = sorted({int(ms) for m in members for ms in (m.get("seen_ms") or [])})
        merged = sorted(n for n in group if n != keep)
        plans.append((keep, {
            "first_seen_ms": min(int(m["first_seen_ms"]) for m in members),
            "last_seen_ms": max(int(m["last_seen_ms"]) for m in members),
            "seen_for_ms": sum(int(m.get("seen_for_ms") or 0) for m in members),
            "seen_ms": thin_timeline(timeline, MAX_STRANGER_TIMELINE),
            "merged_from": merged}, merged))
    return plans


def merged_entries(entries, groups):
    """``entries`` as they are once :func:`merge_plan` is applied (a copy)."""
    entries = [dict(entry) for entry in entries]
    for keep, fields, merged in merge_plan(entries, groups):
        entries[keep - 1].update(fields)
        for n in merged:
            entries[n - 1]["merged_into"] = keep
    return entries


class StrangerMerges:
    """The merges written to the session item, once per completed face search.

    A run first claims the session's strangers of its face search
    (``strangers_grouped``: ``<job_id>/<token>``), so a repeated message, or a
    run after one that died half way, changes nothing;
    then each group is one conditional update: written only while that run
    holds the claim and every member is still unregistered and unmerged, with
    the unrecognised count lowered by the entries merged away.
    """

    def __init__(self, table):
        self._table = table

    def _update(self, session_id, **request):
        try:
            self._table.update_item(Key={"session_id": session_id}, **request)
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            return False
        return True

    def note_scratch(self, session_id, collection_id):
        """Note a scratch collection about to be made; False if the session is gone."""
        return self._update(session_id, UpdateExpression=f"ADD {SCRATCH_NOTED} :names",
                            ConditionExpression="attribute_exists(session_id)",
                            ExpressionAttributeValues={":names": {collection_id}})

    def forget_scratch(self, session_id, collection_ids):
        """The scratch collections ``collection_ids`` are deleted."""
        if collection_ids:
            self._update(session_id, UpdateExpression=f"DELETE {SCRATCH_NOTED} :names",
                         ConditionExpression="attribute_exists(session_id)",
                         ExpressionAttributeValues={":names": set(collection_ids)})

    def claim(self, session_id, job_id, token):
        """True if this run may merge the strangers of ``job_id`` (nobody did yet; a
        claim of an earlier job, before a retry or another upload, does not count)."""
        return self._update(
            session_id, UpdateExpression="SET strangers_grouped = :token",
            ConditionExpression=("job_id = :job AND #status = :done AND "
                                 "(attribute_not_exists(strangers_grouped) OR "
                                 "NOT begins_with(strangers_grouped, :job_prefix))"),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":token": token, ":job": job_id,
                                       ":job_prefix": grouped_prefix(job_id),
                                       ":done": "COMPLETED"})

    def write(self, session_id, token, keep, fields, merged):
        """Merge entries ``merged`` into ``keep`` (which takes ``fields``); False if
        the claim is gone or a member changed (registered, merged) meanwhile."""
        values = {":token": token, ":null": "NULL", ":gone": len(merged),
                  ":version": new_strangers_version()}
        sets, conditions = [f"{STRANGERS_VERSION} = :version"], ["strangers_grouped = :token"]
        for name, value in fields.items():
            values[f":{name}"] = to_dynamo(value)
            sets.append(f"strangers[{keep - 1}].{name} = :{name}")
        values[":keep"] = keep
        for number in [keep] + list(merged):
            path = f"strangers[{number - 1}]"
            if number != keep:
                sets.append(f"{path}.merged_into = :keep")
            conditions.append(f"attribute_exists({path}) AND "
                              f"attribute_not_exists({path}.merged_into) AND "
                              f"(attribute_not_exists({path}.registered_as) OR "
                              f"attribute_type({path}.registered_as, :null))")
        sets.append("counts.unrecognised = counts.unrecognised - :gone")
        return self._update(session_id, UpdateExpression="SET " + ", ".join(sets),
                            ConditionExpression=" AND ".join(conditions),
                            ExpressionAttributeValues=values)


class FaceGrouping:
    """Merging a completed session's unrecognised entries that are one face.

    ``rekognition`` the face service's client, ``face_collection`` the app's
    collection (the scratch one is named after it), ``threshold`` the app's
    MATCH_THRESHOLD, ``merges`` a :class:`StrangerMerges`.
    """

    def __init__(self, *, rekognition, face_collection, threshold, merges, logger,
                 clock=time.time):
        self.rekognition = rekognition
        self.face_collection = face_collection
        self.threshold = float(threshold)
        self.merges = merges
        self.log = logger
        self.clock = clock

    def _delete_left(self, item, now):
        """Delete the noted scratch collections of the session's runs that ended
        (started over :data:`RUN_SECONDS` ago) without deleting theirs."""
        ended = [name for name in item.get(SCRATCH_NOTED) or ()
                 if scratch_started(name) is None
                 or now - scratch_started(name) >= RUN_SECONDS]
        for name in ended:
            delete_scratch(self.rekognition, name)
        self.merges.forget_scratch(item["session_id"], ended)
        if ended:
            self.log.warning("scratch collections of ended runs deleted",
                             extra={"session_id": item["session_id"], "deleted": len(ended)})

    def delete_all_noted(self, item):
        """The session (``item``, as read) is being deleted: every scratch
        collection noted on it goes, of ended runs and of running ones alike
        (a running run then fails its next call and ends; nobody would look
        at the session again to clear what it left)."""
        for name in item.get(SCRATCH_NOTED) or ():
            delete_scratch(self.rekognition, name)   # a redone delete finds them gone

    def group(self, item, crops):
        """Merge ``item``'s (the session as read) entries whose ``crops`` (number ->
        JPEG) are one face; the number of entries merged away. Raises on a failed
        call (the caller logs it; the entries stay as they are)."""
        session_id, job_id = item["session_id"], item["job_id"]
        now = self.clock()
        # Whatever this run does, collections of runs that certainly ended go:
        # a repeated message is often the only later run a session gets.
        self._delete_left(item, now)
        if str(item.get("strangers_grouped") or "").startswith(grouped_prefix(job_id)):
            return 0  # a repeated message
        entries = from_dynamo(item.get("strangers") or [])
        numbers = [n for n in candidates(entries) if n in crops]
        seen = {n: entries[n - 1].get("seen_ms") or [] for n in numbers}
        numbers = mergeable(numbers, seen)
        if len(numbers) < 2:
            return 0  # (people all seen at once: nothing to compare)
        run = uuid.uuid4().hex
        scratch = scratch_collection_id(self.face_collection, session_id, now, run)
        if not self.merges.note_scratch(session_id, scratch):
            return 0  # the session was deleted
        matches = same_faces(self.rekognition, scratch, {n: crops[n] for n in numbers},
                             self.threshold)
        self.merges.forget_scratch(session_id, [scratch])  # (left noted if that raised)
        groups = groups_of(numbers, matches, seen)
        token = grouped_prefix(job_id) + run
        if not self.merges.claim(session_id, job_id, token):
            return 0  # grouped by another run, or the session moved on
        gone = 0
        for keep, fields, merged in merge_plan(entries, groups):
            if self.merges.write(session_id, token, keep, fields, merged):
                gone += len(merged)
        self.log.info("unrecognised people grouped by face",
                      extra={"session_id": session_id, "compared": len(numbers),
                             "matches": len(matches), "merged": gone})
        return gone
