"""Students: the roster table, and registering people with their photos.

Stored item (the students table, key ``student_id``)::

    {student_id, full_name, photo_keys: [..], face_ids: [..], created_at}

``created_at`` is ISO 8601 UTC. The face's ``ExternalImageId`` in the
Rekognition collection IS the ``student_id``: the allowed student_id charset
``[A-Za-z0-9_.\\-:]`` is exactly ExternalImageId's, so the mapping is the
identity and a face match (e.g. from ``GetFaceSearch``) names its student
directly. The name is never used as the external id: names repeat and may
hold any Unicode.
"""
import datetime
import unicodedata

from botocore.exceptions import ClientError

from chalicelib.dynamo import from_dynamo, scan_all

#: 1 to 64 characters: exactly Rekognition's ExternalImageId alphabet.
STUDENT_ID_PATTERN = r"[A-Za-z0-9_.\-:]{1,64}"
MAX_NAME_LENGTH = 200


def _is_conditional_failure(error):
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def name_sort_key(item):
    """Sort by name ignoring case and accents ("Émile" beside "Emile"), then id."""
    folded = unicodedata.normalize("NFKD", item["full_name"]).casefold()
    base = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return (base, folded, item["student_id"])


def utc_now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class DuplicateStudent(Exception):
    """A record with that student_id already exists (the conditional put said so)."""


class StudentStore:
    """The students table. Every write that must not clobber is conditional."""

    def __init__(self, table):
        self._table = table

    def get(self, student_id):
        """The stored item, or None."""
        item = self._table.get_item(Key={"student_id": student_id},
                                    ConsistentRead=True).get("Item")
        return from_dynamo(item) if item else None

    def list_all(self):
        """Every student item (every scan page), sorted by name."""
        return sorted((from_dynamo(item) for item in scan_all(self._table)),
                      key=name_sort_key)

    def create(self, item):
        """Put a new record; :class:`DuplicateStudent` if the id is taken.

        The conditional write is what decides a duplicate id (two concurrent
        registrations of one id cannot both succeed); nothing is scanned.
        """
        try:
            self._table.put_item(Item=item,
                                 ConditionExpression="attribute_not_exists(student_id)")
        except ClientError as error:
            if _is_conditional_failure(error):
                raise DuplicateStudent(item["student_id"])
            raise
        return item

    def delete(self, student_id):
        """Delete the record; False if there was none."""
        try:
            self._table.delete_item(Key={"student_id": student_id},
                                    ConditionExpression="attribute_exists(student_id)")
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True


class Students:
    """The student service: the store plus registration, photos and deletion.

    ``services().students`` is one of these. Other parts rely on
    :meth:`get` and :meth:`list_all` answering stored items (see the module
    docstring for their shape).
    """

    def __init__(self, store, faces, photos, *, max_photo_bytes, logger=None):
        self.store = store
        self._faces = faces
        self._photos = photos
        self._max_photo_bytes = max_photo_bytes
        self._log = logger

    def get(self, student_id):
        """The stored item ``{student_id, full_name, photo_keys, face_ids, created_at}`` or None."""
        return self.store.get(student_id)

    def list_all(self):
        """Every stored student item, all pages, sorted by name."""
        return self.store.list_all()
