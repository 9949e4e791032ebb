"""Students: the roster table, and registering people with their photos.

Stored item (the students table, key ``student_id``)::

    {student_id, full_name, photo_keys: [..], face_ids: [..], created_at,
     face_boxes: [{photo_key, left, top, width, height}], email?}

``face_ids[i]`` is the face indexed from ``photo_keys[i]`` (each photo gives
exactly one face, ``MaxFaces=1``); every write keeps the two lists in step,
which is how removing a photo knows which face to take out of the collection.
The first photo is the main one (thumbnails, the person's page).

``face_boxes`` (where each photo's indexed face is, ratios of the image) is
missing from records made before it was kept; the API's ``face_box`` is then null.

``name_version`` orders the record's names (missing: 0; see
:meth:`StudentStore.create` for its start) and is bumped in the same write as
the name; ``roster_name_version`` (missing: 0) is the highest
version known to have reached every class roster entry of the person. A record
whose ``name_version`` is ahead has a rename whose roster writes did not finish
(running now, or cut short): see :func:`rosters_behind` and
:meth:`chalicelib.classes.Classes.catch_up_rosters`.

``created_at`` is ISO 8601 UTC. The face's ``ExternalImageId`` in the
Rekognition collection IS the ``student_id``: the allowed student_id charset
``[A-Za-z0-9_.\\-:]`` is exactly ExternalImageId's, so the mapping is the
identity and a face match (e.g. from ``GetFaceSearch``) names its student
directly. The name is never used as the external id: names repeat and may
hold any Unicode.

One face, one student, also under concurrency: the check before indexing
cannot see a registration of the same face running at the same moment, so
after its record is written a registration searches the collection again
(SearchFacesByImage on the stored photo) and keeps itself only if it is the
oldest of the records holding that face (``registered_us``, microseconds,
read after indexing and before the write; then the student id). A newer one
rolls itself back (record, photo, face) and answers 409. Of two racing
registrations at least one sees the other (index, write, search run in that
order in both), and the one that sees without being seen is the newer; a
matching face whose record is not written yet is waited for briefly.
"""
import datetime
import re
import time
import unicodedata
import uuid

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from chalicelib import names
from chalicelib.dynamo import (batch_get, from_dynamo, is_conditional_failure,
                               to_dynamo, utc_now)
from chalicelib.paging import page_sorted, query_page
from chalicelib.schema import LISTED, STUDENTS_BY_ID_INDEX, STUDENTS_BY_NAME_INDEX
from chalicelib.errors import (Conflict, DuplicateStudentId, NotFound, UnknownStudent,
                               Unusable)
from chalicelib.faces import FaceProblem, image_size
from chalicelib.uploads import PHOTO_TYPES, UploadProblem, type_for_key

#: 1 to 64 characters: exactly Rekognition's ExternalImageId alphabet.
STUDENT_ID_PATTERN = r"(?!\.+$)[A-Za-z0-9_.\-:]{1,64}"
MAX_NAME_LENGTH = 200
#: What POST /uploads/photo answers as a photo key (a uuid under the uploads prefix).
UPLOAD_KEY_PATTERN = r"photos/uploads/[0-9a-f]{32}\.(jpg|png)"
MAX_EMAIL_LENGTH = 320


def is_student_id(value):
    """True if ``value`` could be a student id (path parameters are checked so).

    Ids made only of dots are not: ``.`` and ``..`` cannot be reached in a URL
    path (browsers and proxies resolve them away)."""
    return bool(re.fullmatch(STUDENT_ID_PATTERN, value or ""))


def name_sort_key(item):
    """Sort by name ignoring case and accents ("Émile" beside "Emile"), then id."""
    folded = unicodedata.normalize("NFKD", item["full_name"]).casefold()
    base = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return (base, folded, item["student_id"])


def name_version(item):
    """The version of the record's name (0 for records from before it was kept)."""
    return int(item.get("name_version") or 0)


def rosters_behind(item):
    """True if some roster entry of the person may still carry an older name."""
    return name_version(item) > int(item.get("roster_name_version") or 0)


class DuplicateStudent(Exception):
    """A record with that student_id already exists (the conditional put said so)."""


class NoRoom(Exception):
    """The record is gone, or already holds the most photos allowed."""


class Changed(Exception):
    """The record is gone, or its photos changed since it was read."""


def index_attributes(item):
    """The attributes the list and search indexes read (provisioning backfills
    records made before them): a folded name and a lower-cased id, each unique."""
    return {LISTED: "student",
            "name_key": names.sort_key(item.get("full_name") or "", item["student_id"]),
            "id_key": f"{item['student_id'].lower()}{names.SEPARATOR}{item['student_id']}"}


class StudentStore:
    """The students table. Every write that must not clobber is conditional."""

    def __init__(self, table):
        self._table = table

    def get(self, student_id):
        """The stored item, or None."""
        item = self._table.get_item(Key={"student_id": student_id},
                                    ConsistentRead=True).get("Item")
        return from_dynamo(item) if item else None

    def pages(self, fields=None, page_size=None):
        """Every person, one page of the name index at a time (a Query per page,
        never a Scan): for the few uses that need everyone by definition.
        ``fields``: only these attributes of each item; ``page_size``: at most
        this many a page (else DynamoDB's 1 MB)."""
        request = {"IndexName": STUDENTS_BY_NAME_INDEX,
                   "KeyConditionExpression": Key(LISTED).eq("student")}
        if page_size:
            request["Limit"] = page_size
        if fields:
            request["ProjectionExpression"] = ", ".join(f"#f{n}" for n in range(len(fields)))
            request["ExpressionAttributeNames"] = {f"#f{n}": f for n, f in enumerate(fields)}
        while True:
            answer = self._table.query(**request)
            yield [from_dynamo(item) for item in answer.get("Items", [])]
            if "LastEvaluatedKey" not in answer:
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def list_all(self):
        """Every student item (every page of the name index), sorted by name."""
        return sorted((item for page in self.pages() for item in page), key=name_sort_key)

    def get_many(self, student_ids):
        """The stored items of those ids that exist (BatchGetItem, 100 a call)."""
        ids = {i for i in student_ids if is_student_id(i)}
        return [from_dynamo(item) for item in
                batch_get(self._table, [{"student_id": i} for i in ids])]

    KEY_ATTRIBUTES = ("student_id", LISTED, "name_key")

    def page(self, *, limit, cursor):
        """People by name, a page at a time (the name index)."""
        items, next_cursor = query_page(
            self._table, limit=limit, cursor=cursor, key_attributes=self.KEY_ATTRIBUTES,
            fixed={LISTED: "student"}, IndexName=STUDENTS_BY_NAME_INDEX,
            KeyConditionExpression=Key(LISTED).eq("student"))
        return [from_dynamo(i) for i in items], next_cursor

    def search(self, text, limit):
        """Up to ``limit`` people whose ID or name starts with ``text`` (case and
        accents ignored): ID matches first, then by name. Two key-condition
        queries on the indexes; nothing is scanned."""
        folded, found = names.fold(text), {}
        if not folded:
            return []
        for index, attribute, prefix in ((STUDENTS_BY_ID_INDEX, "id_key", text.strip().lower()),
                                         (STUDENTS_BY_NAME_INDEX, "name_key", folded)):
            if len(found) >= limit or not prefix:
                continue
            answer = self._table.query(
                IndexName=index, Limit=limit,
                KeyConditionExpression=Key(LISTED).eq("student")
                & Key(attribute).begins_with(prefix))
            for item in answer.get("Items", []):
                found.setdefault(item["student_id"], from_dynamo(item))
        return list(found.values())[:limit]

    def create(self, item):
        """Put a new record; :class:`DuplicateStudent` if the id is taken.

        The conditional write is what decides a duplicate id (two concurrent
        registrations of one id cannot both succeed); nothing is scanned.

        The name's first version is the creation time in microseconds: roster
        entries outlive a deleted record, and a record registered again under
        the same ID must start above every version its earlier life gave out
        (one per rename, and renames are far more than a microsecond apart).
        Its rosters start "behind" (``roster_name_version`` 0): entries left by
        an earlier life take the new name at the first request for the person.
        A copy of a record (an archive's import) is no exception: its own
        versions may be below those of entries left in the target by a deleted
        record of the same ID, so it takes the higher of the two, and its
        entries (copied with it) are caught up like any others.
        """
        version = max(name_version(item), time.time_ns() // 1000)
        item = dict(item, **index_attributes(item), name_version=version,
                    roster_name_version=0)
        try:
            self._table.put_item(Item=item,
                                 ConditionExpression="attribute_not_exists(student_id)")
        except ClientError as error:
            if is_conditional_failure(error):
                raise DuplicateStudent(item["student_id"])
            raise
        return item

    def append_photo(self, student_id, photo_key, face_ids, max_photos, face_box=None):
        """Append a photo and its faces; :class:`NoRoom` if gone or full.

        One conditional update, so two concurrent additions cannot pass the
        limit together and an addition cannot recreate a deleted student.
        The face's box goes to ``face_boxes`` (records from before it have none).
        """
        boxes = [_box_entry(photo_key, face_box)] if face_box else []
        try:
            answer = self._table.update_item(
                Key={"student_id": student_id},
                UpdateExpression=("SET photo_keys = list_append(photo_keys, :photo), "
                                  "face_ids = list_append(face_ids, :faces), "
                                  "face_boxes = list_append(if_not_exists(face_boxes, :none), "
                                  ":boxes)"),
                ConditionExpression="attribute_exists(student_id) AND size(photo_keys) < :most",
                ExpressionAttributeValues={":photo": [photo_key], ":faces": list(face_ids),
                                           ":most": max_photos, ":none": [],
                                           ":boxes": boxes},
                ReturnValues="ALL_NEW")
        except ClientError as error:
            if is_conditional_failure(error):
                raise NoRoom(student_id)
            raise
        return from_dynamo(answer["Attributes"])

    def update_details(self, student_id, full_name=None, email=None):
        """Set the name and/or the email ("" removes it); None if the record is gone.

        A new name bumps ``name_version`` in the same write, so the version a
        rename answers is the one its name holds (two renames get two versions,
        and the later version is the name the record keeps)."""
        sets, removes, adds, values = [], [], [], {}
        if full_name is not None:
            # The list and search indexes read name_key: it follows the name.
            sets.append("full_name = :name, name_key = :name_key")
            adds.append("name_version :one")
            values[":name"] = full_name
            values[":name_key"] = index_attributes(
                {"student_id": student_id, "full_name": full_name})["name_key"]
            values[":one"] = 1
        if email:
            sets.append("email = :email")
            values[":email"] = email
        elif email == "":
            removes.append("email")
        expression = " ".join(part for part in (
            "SET " + ", ".join(sets) if sets else "",
            "REMOVE " + ", ".join(removes) if removes else "",
            "ADD " + ", ".join(adds) if adds else "") if part)
        extra = {"ExpressionAttributeValues": values} if values else {}
        try:
            answer = self._table.update_item(
                Key={"student_id": student_id}, UpdateExpression=expression,
                ConditionExpression="attribute_exists(student_id)", ReturnValues="ALL_NEW",
                **extra)
        except ClientError as error:
            if is_conditional_failure(error):
                return None
            raise
        return from_dynamo(answer["Attributes"])

    def mark_rosters_named(self, student_id, version):
        """Record that every roster entry carries name ``version`` or a later one.

        Only ever raises ``roster_name_version`` (a slower rename finishing
        after a later one cannot lower it), and never recreates a deleted record."""
        try:
            self._table.update_item(
                Key={"student_id": student_id},
                UpdateExpression="SET roster_name_version = :v",
                ConditionExpression=("attribute_exists(student_id) AND "
                                     "(attribute_not_exists(roster_name_version) OR "
                                     "roster_name_version < :v)"),
                ExpressionAttributeValues={":v": version})
        except ClientError as error:
            if not is_conditional_failure(error):
                raise

    def set_photos(self, before, photo_keys, face_ids, face_boxes):
        """Write a new photo list, only if it is still ``before``'s; :class:`Changed` if not.

        Optimistic: the condition compares the stored ``photo_keys`` and
        ``face_ids`` with what was read, so a concurrent addition, removal
        or deletion makes this write fail instead of being lost.
        """
        try:
            answer = self._table.update_item(
                Key={"student_id": before["student_id"]},
                UpdateExpression="SET photo_keys = :keys, face_ids = :faces, face_boxes = :boxes",
                ConditionExpression=("attribute_exists(student_id) AND photo_keys = :old_keys "
                                     "AND face_ids = :old_faces"),
                ExpressionAttributeValues={
                    ":keys": list(photo_keys), ":faces": list(face_ids),
                    ":boxes": to_dynamo(list(face_boxes)),
                    ":old_keys": list(before.get("photo_keys") or []),
                    ":old_faces": list(before.get("face_ids") or [])},
                ReturnValues="ALL_NEW")
        except ClientError as error:
            if is_conditional_failure(error):
                raise Changed(before["student_id"])
            raise
        return from_dynamo(answer["Attributes"])

    def delete(self, student_id):
        """Delete the record; False if there was none."""
        try:
            self._table.delete_item(Key={"student_id": student_id},
                                    ConditionExpression="attribute_exists(student_id)")
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True


class Rollback:
    """Undo steps in reverse order when a multi-step change fails.

    Each step that changed something registers how to take it back. If a
    later step fails, :meth:`undo` runs them all (newest first), logging any
    that itself fails without hiding the original error.
    """

    def __init__(self, logger=None):
        self._undo = []
        self._log = logger

    def on_failure(self, description, action, *args):
        self._undo.append((description, action, args))

    def undo(self):
        for description, action, args in reversed(self._undo):
            try:
                action(*args)
            except Exception:  # noqa: BLE001 - keep undoing the rest
                if self._log:
                    self._log.exception("rollback step failed", extra={"step": description})
        self._undo.clear()


class Students:
    """The student service: the store plus registration, photos and deletion.

    ``services().students`` is one of these. Other parts rely on
    :meth:`get` and :meth:`list_all` answering stored items (see the module
    docstring for their shape).

    Photos: the browser uploads to ``photos/uploads/<random>.<ext>`` (a key
    the server chose, see :meth:`new_upload`). Only such keys are accepted
    as input; once a photo is used it is copied to
    ``photos/students/<random>.<ext>`` and the upload deleted. So a request
    can never name (and a failed request never delete) a photo that already
    belongs to someone.
    """

    UPLOAD_PREFIX = "photos/uploads/"
    STUDENT_PREFIX = "photos/students/"
    UPLOAD_KEY_PATTERN = UPLOAD_KEY_PATTERN
    MAX_PHOTOS = 5
    #: How long a registration waits for the record of a racing one's face.
    RACE_WAIT_SECONDS, RACE_POLL_SECONDS = 3.0, 0.2
    #: Lifetime of presigned upload forms and photo links, in seconds.
    LINK_SECONDS = 300

    def __init__(self, store, faces, photos, *, max_photo_bytes, logger=None,
                 clock=utc_now):
        self.store = store
        self._faces = faces
        self._photos = photos  # chalicelib.uploads.Uploads over the photos bucket
        self._max_photo_bytes = max_photo_bytes
        self._log = logger
        self._clock = clock

    # -- the interface other parts use -----------------------------------------
    def get(self, student_id):
        """The stored item ``{student_id, full_name, photo_keys, face_ids, created_at}`` or None."""
        return self.store.get(student_id)

    def list_all(self):
        """Every stored student item, sorted by name: the name index read page by page
        (a query, never a scan). Only a session without a class (taken against
        everyone, by definition) reads it."""
        return self.store.list_all()

    def pages(self):
        """Everyone's ``student_id`` and ``full_name``, a page of the index at a time."""
        return self.store.pages(fields=("student_id", "full_name"))

    def get_many(self, student_ids):
        return self.store.get_many(student_ids)

    def mark_rosters_named(self, student_id, version):
        """Every roster entry of the person carries name ``version`` or a later one."""
        self.store.mark_rosters_named(student_id, version)

    # -- API answers ---------------------------------------------------------
    def view(self, item):
        """The API's ``student``: no face ids, a 5-minute link to the first photo."""
        keys = list(item.get("photo_keys") or [])
        return {"student_id": item["student_id"], "full_name": item["full_name"],
                "email": item.get("email"), "photo_keys": keys, "photo_count": len(keys),
                "face_count": len(item.get("face_ids") or []),
                "created_at": item.get("created_at"),
                "photo_url": (self._photos.presigned_get(keys[0], self.LINK_SECONDS)
                              if keys else None),
                # Where the face is in that photo, for cropping thumbnails.
                "face_box": _face_box(item, keys[0]) if keys else None}

    def describe(self, student_id):
        """The API's ``student`` for an id, or 404."""
        return self.view(self.require(student_id))

    def add_photos(self, rows):
        """Put each row's student's registered photo link and face box on it (BatchGetItem,
        not one read each); rows of deleted students get None."""
        found = {item["student_id"]: item for item in self.store.get_many(
            {row["student_id"] for row in rows})}
        for row in rows:
            student = found.get(row["student_id"])
            view = self.view(student) if student else {}
            row["photo_url"], row["face_box"] = view.get("photo_url"), view.get("face_box")
        return rows

    def page_views(self, *, limit, cursor, query=None, within=None):
        """A page of people (``{"students", "next_cursor"}``).

        ``within``: the enrolments a teacher may see (their classes' rosters); the
        page is taken from those (few) by name. Otherwise everyone, through the
        name index. ``query`` narrows to an ID or name prefix (one page, no cursor).
        """
        if within is not None:
            if query:
                folded, lowered = names.fold(query), query.strip().lower()
                within = [e for e in within if e["name_key"].startswith(folded)
                          or e["student_id"].lower().startswith(lowered)]
            unique = {e["student_id"]: e for e in within}.values()
            page, next_cursor = page_sorted(list(unique), lambda e: e["name_key"],
                                            limit=limit, cursor=cursor)
            found = {i["student_id"]: i for i in self.get_many(e["student_id"] for e in page)}
            items = [found[e["student_id"]] for e in page if e["student_id"] in found]
        elif query:
            items, next_cursor = self.store.search(query, limit), None
        else:
            items, next_cursor = self.store.page(limit=limit, cursor=cursor)
        return {"students": [self.view(item) for item in items], "next_cursor": next_cursor}

    def require(self, student_id):
        """The stored item, or 404 (ids that cannot exist are not looked up)."""
        item = self.get(student_id) if is_student_id(student_id) else None
        if item is None:
            raise UnknownStudent(f"There is no student with ID {student_id}.")
        return item

    def new_upload(self, content_type):
        """A presigned POST for one photo, under a key the server chooses."""
        key = f"{self.UPLOAD_PREFIX}{uuid.uuid4().hex}.{PHOTO_TYPES[content_type]}"
        upload = self._photos.presigned_post(key, content_type, self._max_photo_bytes,
                                             self.LINK_SECONDS)
        return {"upload": upload, "photo_key": key, "max_bytes": self._max_photo_bytes,
                "expires_in": self.LINK_SECONDS}

    # -- registration ----------------------------------------------------------
    def register(self, student_id, full_name, photo_key):
        """Check the photo, index the face, store the record; all or nothing.

        Steps, each undone if a later one fails: check the upload (size,
        type, bytes), one usable face, not someone else's face, index it
        (ExternalImageId = student_id), copy the photo to its permanent key,
        delete the upload, write the record (conditional on a new id). After
        any failure nothing is left: no face, no photo (the upload too is
        deleted, so the site uploads again), no record.
        """
        rollback = Rollback(self._log)
        rollback.on_failure("delete upload", self._photos.delete, [photo_key])
        try:
            if self.get(student_id) is not None:
                # Cheap early answer before any face work; the conditional
                # put below is what really decides (two racing requests).
                raise _duplicate(student_id)
            self._check_photo(photo_key)
            self._refuse_registered_face(photo_key, student_id)
            face_ids, box = self._index(rollback, photo_key, student_id)
            stored_key = self._keep_photo(rollback, photo_key)
            item = {"student_id": student_id, "full_name": full_name,
                    "photo_keys": [stored_key], "face_ids": face_ids,
                    "face_boxes": [_box_entry(stored_key, box)] if box else [],
                    "created_at": self._clock(), "registered_us": time.time_ns() // 1000}
            try:
                self.store.create(item)
            except DuplicateStudent:
                raise _duplicate(student_id)
            rollback.on_failure("delete record", self.store.delete, student_id)
            self._keep_if_oldest(item, stored_key)
        except Exception:
            rollback.undo()
            raise
        return item

    def add_photo(self, student_id, photo_key):
        """Add another photo of the same person (at most :attr:`MAX_PHOTOS`)."""
        student = self.require(student_id)
        rollback = Rollback(self._log)
        rollback.on_failure("delete upload", self._photos.delete, [photo_key])
        try:
            if len(student.get("photo_keys") or []) >= self.MAX_PHOTOS:
                raise _too_many(student)
            self._check_photo(photo_key)
            self._require_same_face(photo_key, student)
            face_ids, box = self._index(rollback, photo_key, student_id)
            stored_key = self._keep_photo(rollback, photo_key)
            return self._append_photo(student, stored_key, face_ids, box)
        except Exception:
            rollback.undo()
            raise

    def delete(self, student_id):
        """Remove the faces, the photos and the record (in that order).

        The record goes last so that if a step fails, a retry still finds
        what is left to remove. Attendance rows keep their own copy of the
        name and are not touched.
        """
        student = self.require(student_id)
        self._faces.delete(student.get("face_ids") or [])
        self._photos.delete(student.get("photo_keys") or [])
        if not self.store.delete(student_id):
            raise UnknownStudent(f"There is no student with ID {student_id}.")

    # -- editing a person ------------------------------------------------------
    def update(self, student_id, full_name=None, email=None):
        """Rename (and/or set the email of) a person.

        Only the record changes: attendance rows keep the name they were
        taken under, and the faces are keyed by the ID, never the name.
        """
        self.require(student_id)
        item = self.store.update_details(student_id, full_name=full_name, email=email)
        if item is None:
            raise UnknownStudent(f"There is no student with ID {student_id}.")
        return item

    def photos(self, student_id):
        """Every photo of a person, main first: id, 5-minute link, face box."""
        item = self.require(student_id)
        return [{"photo_id": _photo_id(key), "photo_key": key, "main": i == 0,
                 "url": self._photos.presigned_get(key, self.LINK_SECONDS),
                 "face_box": _face_box(item, key)}
                for i, key in enumerate(item.get("photo_keys") or [])]

    def remove_photo(self, student_id, photo_id):
        """Remove one photo and its face; the last photo stays (409 ``last_photo``).

        The record is written first (conditional on its photos being as
        read), then the face leaves the collection and the file is deleted:
        once the record no longer lists the photo, nothing refers to them.
        """
        item = self.require(student_id)
        index = self._photo_index(item, photo_id)
        keys, faces = list(item["photo_keys"]), list(item.get("face_ids") or [])
        if len(keys) == 1:
            raise Conflict(f"This is {item['full_name']}'s only photo; a person keeps at "
                           "least one. Add another photo first, or replace this one.",
                           code="last_photo", details={"field": "photo_id"})
        removed_key, removed_face = keys.pop(index), faces.pop(index)
        boxes = [b for b in item.get("face_boxes") or [] if b.get("photo_key") != removed_key]
        updated = self._write_photos(item, keys, faces, boxes)
        self._faces.delete([removed_face])
        self._photos.delete([removed_key])
        return updated

    def replace_main_photo(self, student_id, photo_key):
        """A new main photo of the same person in place of the current one.

        The upload follows the added-photo rules (one usable face, the
        person's own); the old main photo and its face go once the record
        holds the new one. Any failure before that undoes the new photo.
        """
        item = self.require(student_id)
        self._photo_index(item, None)  # the photos and faces must line up
        rollback = Rollback(self._log)
        rollback.on_failure("delete upload", self._photos.delete, [photo_key])
        try:
            self._check_photo(photo_key)
            self._require_same_face(photo_key, item)
            face_ids, box = self._index(rollback, photo_key, student_id)
            stored_key = self._keep_photo(rollback, photo_key)
            keys, faces = list(item["photo_keys"]), list(item["face_ids"])
            old_key, old_face = keys[0], faces[0]
            keys[0], faces[0] = stored_key, face_ids[0]
            boxes = [b for b in item.get("face_boxes") or [] if b.get("photo_key") != old_key]
            if box:
                boxes.insert(0, _box_entry(stored_key, box))
            updated = self._write_photos(item, keys, faces, boxes)
        except Exception:
            rollback.undo()
            raise
        self._faces.delete([old_face] + face_ids[1:])
        self._photos.delete([old_key])
        return updated

    def make_main(self, student_id, photo_id):
        """One of the person's photos becomes the main one (first); the rest keep their order."""
        item = self.require(student_id)
        index = self._photo_index(item, photo_id)
        if index == 0:
            return item
        keys, faces = list(item["photo_keys"]), list(item["face_ids"])
        keys.insert(0, keys.pop(index))
        faces.insert(0, faces.pop(index))
        return self._write_photos(item, keys, faces, item.get("face_boxes") or [])

    def _photo_index(self, item, photo_id):
        """Where ``photo_id`` is in the record (404 if absent); checks the lists line up."""
        keys = list(item.get("photo_keys") or [])
        if len(keys) != len(item.get("face_ids") or []):
            raise Conflict(f"{item['full_name']}'s photos and faces do not line up, so "
                           "photos cannot be changed one by one. Delete the person and "
                           "register them again.", code="photos_out_of_step")
        if photo_id is None:
            return None
        for index, key in enumerate(keys):
            if _photo_id(key) == photo_id:
                return index
        raise NotFound(f"{item['full_name']} has no photo {photo_id}.",
                       code="unknown_photo", details={"field": "photo_id"})

    def _write_photos(self, item, keys, faces, boxes):
        try:
            return self.store.set_photos(item, keys, faces, boxes)
        except Changed:
            if self.get(item["student_id"]) is None:
                raise UnknownStudent(f"Student {item['student_id']} was deleted meanwhile.")
            raise Conflict(f"{item['full_name']}'s photos changed meanwhile. Reload the "
                           "page and try again.", code="photos_changed")

    # -- steps -------------------------------------------------------------------
    def _check_photo(self, photo_key):
        """Size, type and magic bytes of the upload, then its one usable face."""
        try:
            self._photos.inspect(photo_key, PHOTO_TYPES, self._max_photo_bytes)
        except UploadProblem as problem:
            raise Unusable(str(problem), code="bad_photo", details={"field": "photo_key"})
        size = image_size(self._photos.read(photo_key))
        if size is None:
            raise Unusable("The photo is damaged (its size cannot be read). "
                                "Save it again as JPEG or PNG and upload it.",
                                code="bad_photo", details={"field": "photo_key"})
        try:
            self._faces.check_photo(self._photos.bucket, photo_key, size)
        except FaceProblem as problem:
            raise _unprocessable(problem)
        return size

    def _refuse_registered_face(self, photo_key, student_id):
        """409 if this face is already registered under another student id."""
        for match in self._search(photo_key):
            other = match["student_id"]
            if other == student_id:
                continue
            owner = self.get(other)
            if owner is None:
                # A face without a record: left by a crash mid-rollback. It
                # names nobody, so it must not block a real registration.
                if self._log:
                    self._log.warning("face without a student record",
                                      extra={"face_id": match["face_id"]})
                continue
            raise Conflict(
                f"This face is already registered as {owner['full_name']} "
                f"(ID {other}). Each person is registered once; add photos to that "
                "student instead.", code="face_already_registered",
                details={"field": "photo_key", "student_id": other,
                         "full_name": owner["full_name"]})

    def _keep_if_oldest(self, item, stored_key):
        """409 (and the caller rolls back) if an older record holds the same face."""
        mine = _age_key(item)
        deadline = time.monotonic() + self.RACE_WAIT_SECONDS
        while True:
            unwritten, older = False, []
            for match in self._search(stored_key):
                other_id = match["student_id"]
                if other_id == item["student_id"] or match["face_id"] in item["face_ids"]:
                    continue
                other = self.get(other_id)
                if other is None:
                    unwritten = True  # racing and not written yet, or a crash's leftover
                elif _age_key(other) < mine:
                    older.append(other)
            if older:
                other = min(older, key=_age_key)
                if self._log:
                    self._log.warning("same face registered concurrently: the newer "
                                      "registration is undone",
                                      extra={"kept": other["student_id"],
                                             "undone": item["student_id"]})
                raise Conflict(
                    f"This face is already registered as {other['full_name']} "
                    f"(ID {other['student_id']}). Each person is registered once; add "
                    "photos to that student instead.", code="face_already_registered",
                    details={"field": "photo_key", "student_id": other["student_id"],
                             "full_name": other["full_name"]})
            if not unwritten or time.monotonic() >= deadline:
                return
            time.sleep(self.RACE_POLL_SECONDS)

    def _require_same_face(self, photo_key, student):
        """422 ``face_mismatch`` unless the photo matches the student's face."""
        own = set(student.get("face_ids") or [])
        matches = self._search(photo_key)
        if any(m["face_id"] in own or m["student_id"] == student["student_id"]
               for m in matches):
            return
        raise Unusable(
            f"The face in this photo does not match {student['full_name']}'s registered "
            "photo. Upload a photo of the same person.", code="face_mismatch",
            details={"field": "photo_key"})

    def _search(self, photo_key):
        try:
            return self._faces.search(self._photos.bucket, photo_key)
        except FaceProblem as problem:
            raise _unprocessable(problem)

    def _index(self, rollback, photo_key, student_id):
        try:
            face_ids, box = self._faces.index(self._photos.bucket, photo_key, student_id)
        except FaceProblem as problem:
            raise _unprocessable(problem)
        rollback.on_failure("delete faces", self._faces.delete, face_ids)
        return face_ids, box

    def _keep_photo(self, rollback, photo_key):
        """Copy the upload to its permanent key, then delete the upload."""
        stored_key = self.STUDENT_PREFIX + photo_key[len(self.UPLOAD_PREFIX):]
        # Stored with the type its bytes were checked to be (never the sender's).
        self._photos.copy(photo_key, stored_key, content_type=type_for_key(stored_key))
        rollback.on_failure("delete photo", self._photos.delete, [stored_key])
        self._photos.delete([photo_key])
        return stored_key

    def _append_photo(self, student, stored_key, face_ids, box=None):
        """Add the photo and faces to the record, if it exists and has room."""
        try:
            return self.store.append_photo(student["student_id"], stored_key, face_ids,
                                           self.MAX_PHOTOS, face_box=box)
        except NoRoom:
            current = self.get(student["student_id"])
            if current is None:
                raise UnknownStudent(f"Student {student['student_id']} was deleted meanwhile.")
            raise _too_many(current)


def _age_key(item):
    """Registrations order by this, oldest first (records from before
    ``registered_us`` use ``created_at``, to the second)."""
    micros = item.get("registered_us")
    if micros is None:
        try:
            stamp = datetime.datetime.fromisoformat(item.get("created_at") or "")
            micros = int(stamp.timestamp() * 1_000_000)
        except ValueError:
            micros = 0
    return (int(micros), item["student_id"])


def _box_entry(photo_key, box):
    """One ``face_boxes`` entry: the photo's key and its face box (Decimals)."""
    return {"photo_key": photo_key, **{k: to_dynamo(v) for k, v in box.items()}}


def _photo_id(key):
    return key.rsplit("/", 1)[-1]


def _face_box(item, photo_key):
    """The face box stored for ``photo_key`` as the API answers it, or None."""
    for entry in item.get("face_boxes") or []:
        if entry.get("photo_key") == photo_key:
            return {k: float(entry[k]) for k in ("left", "top", "width", "height")}
    return None


def _duplicate(student_id):
    return DuplicateStudentId(f"A student with ID {student_id} is already registered. "
                              "Check the ID, or add this photo to that student.",
                              details={"field": "student_id"})


def _too_many(student):
    return Conflict(f"{student['full_name']} already has {len(student['photo_keys'])} photos, "
                    f"the most allowed. Delete the student and register again to "
                    "change photos.", code="too_many_photos",
                    details={"field": "photo_key"})


def _unprocessable(problem):
    return Unusable(problem.message, code=problem.code, details={"field": "photo_key"})
