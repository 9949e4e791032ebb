"""Classes, their teachers and their rosters.

Class item (the classes table, key ``class_id``)::

    {class_id, name, term, teachers: [email, ..], schedule: {start_time, length_minutes},
     late_threshold_minutes, archived, enrolled, created_at, updated_at,
     listed: "class", name_key}

Memberships (the members table, key ``(class_id, member)``)::

    {class_id, member: "teacher#<email>"}
    {class_id, member: "student#<student_id>", student_id, full_name, name_key,
     name_version, enrolled_at, enrolled_by}

Invariants:

* The class item's ``teachers`` is the truth of who teaches it: access checks
  read it (one consistent GetItem). The ``teacher#`` rows mirror it for "a
  teacher's classes" (the ``by_member`` index). A change writes in the order
  that fails closed: links of removed teachers go first, then the class, then
  links of added teachers; saving the same teachers again repairs any gap.
* An enrolment is one transaction: the entry's conditional put, and a check
  that the person's record still has the name version the entry copies (so
  an entry is never written with a name its record no longer has; a rename
  or deletion in between makes it read the record again). Two concurrent
  adds of one person answer "added" once and "already enrolled" once;
  ``enrolled`` on the class is counted by the write that won.
* A roster entry's ``full_name``/``name_key`` copy the person's record (the
  truth), with the record's ``name_version`` (see chalicelib/students.py).
  Entries are written only under the condition that the version they carry is
  older, so an entry never goes back to an older name whatever order writes
  land in. A rename writes the record first (bumping the version in the same
  write), then the entries, then marks the record's ``roster_name_version``;
  of two concurrent renames the one holding the later version writes it on
  every entry, so entries end on the record's final name. A rename cut short
  (an error, a timeout) leaves the record marked behind, and the next request
  that reads or writes that person (GET or PATCH of it, an enrolment of it)
  finishes it: :meth:`Classes.catch_up_rosters`, idempotent and cheap (no
  call) when nothing is behind.
* An enrolment racing a rename: if the enrolment's transaction comes first,
  the rename's record write follows it and the rename's listing of entries
  includes the new one; if the rename's record write comes first, the
  transaction's check fails and the enrolment copies the new name. (The
  listing reads the by_member index, which DynamoDB updates within a moment,
  not in the same instant: an entry written in that moment before a
  rename's listing may be missed until the person's next rename.)
* A class with sessions is not deleted (archive it); deleting removes its
  memberships first, then the class.
"""
import csv
import random
import re
import time
import uuid

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import names
from chalicelib.dynamo import (batch_delete, batch_get, conditional_update, from_dynamo,
                               is_conditional_failure, query_all, utc_now)
from chalicelib.errors import Conflict, InvalidInput, NotFound, WrongState
from chalicelib.logs import get_logger
from chalicelib.paging import page_sorted, query_page
from chalicelib.schema import CLASSES_BY_NAME_INDEX, LISTED, MEMBERS_BY_MEMBER_INDEX
from chalicelib.students import (STUDENT_ID_PATTERN, is_student_id, name_version,
                                 rosters_behind)
from chalicelib.users import normalise_email

CLASS_ID_PATTERN = r"[0-9a-f]{32}"
DEFAULT_LATE_MINUTES = 10
MAX_LATE_MINUTES = 240
MAX_TEACHERS = 20
#: Lines one roster import may hold (the JSON body limit allows about this many).
MAX_IMPORT_LINES = 5000
TEACHER, STUDENT = "teacher#", "student#"

#: Fields of ``PATCH /classes/{id}`` a class's own teacher may change; the rest are admins'.
TEACHER_FIELDS = frozenset({"schedule", "late_threshold_minutes"})

ADDED, ALREADY, UNKNOWN, INVALID, HEADER = (
    "added", "already_enrolled", "unknown_id", "invalid", "header")


def is_class_id(value):
    return bool(re.fullmatch(CLASS_ID_PATTERN, value or ""))


def public_class(item):
    item = from_dynamo(item)
    return {"class_id": item["class_id"], "name": item["name"], "term": item.get("term"),
            "teachers": sorted(item.get("teachers") or []),
            "schedule": item.get("schedule"),
            "late_threshold_minutes": int(item.get("late_threshold_minutes",
                                                   DEFAULT_LATE_MINUTES)),
            "archived": bool(item.get("archived")), "enrolled": int(item.get("enrolled", 0)),
            "created_at": item.get("created_at"), "updated_at": item.get("updated_at")}


def public_enrolment(item):
    item = from_dynamo(item)
    return {"student_id": item["student_id"], "full_name": item.get("full_name"),
            "enrolled_at": item.get("enrolled_at"), "enrolled_by": item.get("enrolled_by")}


_ID_HEADERS = ("student_id", "student id", "id", "student", "studentid")


def parse_id_list(text, column=None):
    """``[(line number, value, student_id or None, result or None)]`` for each
    non-blank line: one ID a line, or a CSV column (by header or number;
    without either, a header named like "student id", else the first column).

    A line that is not a possible ID is INVALID; a detected header is HEADER.
    """
    lines = text.splitlines()
    if len([ln for ln in lines if ln.strip()]) > MAX_IMPORT_LINES:
        raise InvalidInput(f"A roster import holds at most {MAX_IMPORT_LINES} lines; split it.",
                         code="invalid_field", details={"field": "text"})
    rows = [(number, next(csv.reader([line]), [])) for number, line in enumerate(lines, 1)
            if line.strip()]
    index, header_line = 0, None
    if rows:
        first = [cell.strip().casefold() for cell in rows[0][1]]
        if isinstance(column, int):
            index = column - 1
        elif isinstance(column, str):
            if column.strip().casefold() not in first:
                raise InvalidInput(f"No column is named '{column}' in the first line.",
                                 code="invalid_field", details={"field": "column"})
            index, header_line = first.index(column.strip().casefold()), rows[0][0]
        else:
            found = next((i for i, cell in enumerate(first) if cell in _ID_HEADERS), None)
            if found is not None:
                index, header_line = found, rows[0][0]
    parsed = []
    for number, cells in rows:
        value = cells[index].strip() if index < len(cells) else ""
        if number == header_line:
            parsed.append((number, value, None, HEADER))
        elif re.fullmatch(STUDENT_ID_PATTERN, value):
            parsed.append((number, value, value, None))
        else:
            parsed.append((number, value, None, INVALID))
    return parsed


# -- stores ----------------------------------------------------------------------
class ClassStore:
    """The classes table."""

    KEY_ATTRIBUTES = ("class_id", LISTED, "name_key")

    def __init__(self, table, now=utc_now):
        self._table = table
        self._now = now

    def create(self, item):
        now = self._now()
        item = dict(item, created_at=now, updated_at=now, archived=False, enrolled=0,
                    listed="class", name_key=names.sort_key(item["name"], item["class_id"]))
        self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(class_id)")
        return item

    def get(self, class_id):
        if not is_class_id(class_id):
            return None
        return self._table.get_item(Key={"class_id": class_id}, ConsistentRead=True).get("Item")

    def get_many(self, class_ids):
        return {item["class_id"]: item
                for item in batch_get(self._table, [{"class_id": c} for c in set(class_ids)])}

    def update(self, class_id, values):
        """SET ``values`` (None answers: the class is gone)."""
        values = dict(values, updated_at=self._now())
        if "name" in values:
            values["name_key"] = names.sort_key(values["name"], class_id)
        return conditional_update(self._table, {"class_id": class_id}, values, None)

    def count_enrolled(self, class_id, change):
        self._table.update_item(Key={"class_id": class_id},
                                UpdateExpression="ADD enrolled :n",
                                ConditionExpression=Attr("class_id").exists(),
                                ExpressionAttributeValues={":n": change})

    def page(self, *, limit, cursor, archived=False):
        """Classes by name, a page at a time (archived ones only when asked)."""
        query = {"IndexName": CLASSES_BY_NAME_INDEX,
                 "KeyConditionExpression": Key(LISTED).eq("class")}
        if not archived:
            query["FilterExpression"] = Attr("archived").ne(True)
        return query_page(self._table, limit=limit, cursor=cursor,
                          key_attributes=self.KEY_ATTRIBUTES, fixed={LISTED: "class"}, **query)

    def delete(self, class_id):
        self._table.delete_item(Key={"class_id": class_id})


class RecordChanged(Exception):
    """The person's record was renamed or deleted since it was read."""


class Memberships:
    """The members table: teacher links and enrolments (see the module docstring).

    ``students_table``: the name of the students table, whose records an
    enrolment checks in the same transaction."""

    def __init__(self, table, students_table, now=utc_now):
        self._table = table
        self._students_table = students_table
        self._now = now

    # teachers
    def link_teacher(self, class_id, email):
        self._table.put_item(Item={"class_id": class_id, "member": TEACHER + email})

    def unlink_teacher(self, class_id, email):
        self._table.delete_item(Key={"class_id": class_id, "member": TEACHER + email})

    def class_ids_of_teacher(self, email):
        """The ids of the classes ``email`` teaches (the by_member index)."""
        return [item["class_id"] for item in query_all(
            self._table, IndexName=MEMBERS_BY_MEMBER_INDEX,
            KeyConditionExpression=Key("member").eq(TEACHER + normalise_email(email)))]

    # people
    def enrol(self, class_id, student, by):
        """True if ``student`` (its record as read) was enrolled now, False if
        already enrolled; :class:`RecordChanged` if the record no longer has the
        name version read (renamed or deleted meanwhile): read it again."""
        entry = {"class_id": class_id, "member": STUDENT + student["student_id"],
                 "student_id": student["student_id"], **roster_name(student),
                 "enrolled_at": self._now(), "enrolled_by": by}
        try:
            # The table's client takes plain values (boto3 types them, as for the table).
            self._table.meta.client.transact_write_items(TransactItems=[
                {"Put": {"TableName": self._table.name,
                         "Item": entry,
                         # "member" is a DynamoDB reserved word: named through #member.
                         "ConditionExpression": "attribute_not_exists(#member)",
                         "ExpressionAttributeNames": {"#member": "member"}}},
                {"ConditionCheck": {
                    "TableName": self._students_table,
                    "Key": {"student_id": student["student_id"]},
                    "ConditionExpression": ("attribute_exists(student_id) AND "
                                            "(attribute_not_exists(name_version) OR "
                                            "name_version = :v)"),
                    "ExpressionAttributeValues": {":v": entry["name_version"]}}}])
        except ClientError as error:
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons") or []]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return False
            if reasons[1:2] == ["ConditionalCheckFailed"] or "TransactionConflict" in reasons:
                raise RecordChanged(student["student_id"])
            raise
        return True

    def set_name(self, class_id, student):
        """Put ``student``'s name (its record as read) on one roster entry, unless
        the entry already carries that version of the name or a later one, or
        is gone (unenrolled meanwhile: nothing to do)."""
        values = roster_name(student)
        try:
            self._table.update_item(
                Key={"class_id": class_id, "member": STUDENT + student["student_id"]},
                UpdateExpression=("SET full_name = :full_name, name_key = :name_key, "
                                  "name_version = :name_version"),
                ConditionExpression=("attribute_exists(#member) AND "
                                     "(attribute_not_exists(name_version) OR "
                                     "name_version < :name_version)"),
                ExpressionAttributeNames={"#member": "member"},
                ExpressionAttributeValues={f":{k}": v for k, v in values.items()})
        except ClientError as error:
            if not is_conditional_failure(error):
                raise

    def rename_student(self, student):
        """Every roster entry of the person takes ``student``'s name, unless it
        already carries that version or a later one."""
        for class_id in self.class_ids_of_student(student["student_id"]):
            self.set_name(class_id, student)

    def unenrol(self, class_id, student_id):
        """True if the person was enrolled (and is not now)."""
        try:
            self._table.delete_item(Key={"class_id": class_id, "member": STUDENT + student_id},
                                    ConditionExpression="attribute_exists(#member)",
                                    ExpressionAttributeNames={"#member": "member"})
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def roster(self, class_id):
        """Every enrolment of a class (all pages)."""
        return list(query_all(self._table, KeyConditionExpression=(
            Key("class_id").eq(class_id) & Key("member").begins_with(STUDENT))))

    def enrolled(self, class_ids, student_ids):
        """The (class_id, student_id) pairs among these that are enrolments."""
        keys = [{"class_id": c, "member": STUDENT + s} for c in set(class_ids)
                for s in set(student_ids)]
        return {(item["class_id"], item["member"][len(STUDENT):])
                for item in batch_get(self._table, keys)}

    def class_ids_of_student(self, student_id):
        return [item["class_id"] for item in query_all(
            self._table, IndexName=MEMBERS_BY_MEMBER_INDEX,
            KeyConditionExpression=Key("member").eq(STUDENT + student_id))]

    def delete_class(self, class_id):
        keys = [{"class_id": item["class_id"], "member": item["member"]}
                for item in query_all(self._table,
                                      KeyConditionExpression=Key("class_id").eq(class_id),
                                      ProjectionExpression="class_id, #m",
                                      ExpressionAttributeNames={"#m": "member"})]
        batch_delete(self._table, keys)


def roster_name(student):
    """What a roster entry copies of a person's record."""
    return {"full_name": student.get("full_name") or student["student_id"],
            "name_key": names.sort_key(student.get("full_name") or "", student["student_id"]),
            "name_version": name_version(student)}


# -- the service -------------------------------------------------------------------
class Classes:
    """Classes, teachers and rosters; who may do what is checked by the caller
    (:class:`chalicelib.access.Access`) before any of these run."""

    def __init__(self, store, members, students, users, sessions_of_class):
        self.store = store
        self.members = members
        self._students = students  # get(student_id), get_many(ids)
        self._users = users  # UserStore
        # class_id -> True if any session belongs to the class (one keyed read).
        self._has_sessions = sessions_of_class

    def require(self, class_id):
        item = self.store.get(class_id)
        if item is None:
            raise NotFound("There is no such class (it may have been deleted).",
                           code="class_not_found")
        return item

    def create(self, *, name, term, teachers, schedule, late_threshold_minutes):
        self._check_teachers(teachers)
        item = self.store.create({"class_id": uuid.uuid4().hex, "name": name, "term": term,
                                  "teachers": teachers, "schedule": schedule,
                                  "late_threshold_minutes": late_threshold_minutes})
        for email in teachers:
            self.members.link_teacher(item["class_id"], email)
        return public_class(item)

    def change(self, class_id, changes):
        item = self.require(class_id)
        before = set(item.get("teachers") or [])
        if "teachers" in changes:
            self._check_teachers(changes["teachers"])
            for email in before - set(changes["teachers"]):
                self.members.unlink_teacher(class_id, email)  # revoke first
        updated = self.store.update(class_id, changes)
        if updated is None:
            raise NotFound("There is no such class (it may have been deleted).",
                           code="class_not_found")
        for email in changes.get("teachers", ()):
            self.members.link_teacher(class_id, email)  # idempotent: repairs a gap
        return public_class(updated)

    def delete(self, class_id):
        self.require(class_id)
        if self._has_sessions(class_id):
            raise WrongState("This class has sessions, so it cannot be deleted (its attendance "
                           "would be lost). Archive it instead, or delete its sessions first.",
                           code="class_has_sessions")
        self.members.delete_class(class_id)
        self.store.delete(class_id)

    def _check_teachers(self, emails):
        for email in emails:
            if self._users.get(email) is None:
                raise InvalidInput(f"There is no account {email}. Add it on the Users page "
                                 "first.", code="unknown_teacher", details={"field": "teachers"})

    # -- lists -------------------------------------------------------------------
    def page_all(self, *, limit, cursor, archived=False):
        items, next_cursor = self.store.page(limit=limit, cursor=cursor, archived=archived)
        return [public_class(i) for i in items], next_cursor

    def page_of_teacher(self, email, *, limit, cursor, archived=False):
        """A teacher's classes by name (they are few: read whole, answered in pages)."""
        classes = self.store.get_many(self.members.class_ids_of_teacher(email)).values()
        # The class's own list of teachers is the truth; a stale link shows nothing.
        mine = [c for c in classes if normalise_email(email) in (c.get("teachers") or [])
                and (archived or not c.get("archived"))]
        page, next_cursor = page_sorted(mine, lambda c: c["name_key"], limit=limit,
                                        cursor=cursor)
        return [public_class(c) for c in page], next_cursor

    # -- rosters -----------------------------------------------------------------
    def roster_page(self, class_id, *, limit, cursor):
        items = self.members.roster(class_id)
        page, next_cursor = page_sorted(items, lambda e: e["name_key"], limit=limit,
                                        cursor=cursor)
        return [public_enrolment(e) for e in page], next_cursor

    def enrol(self, class_item, student_id, by):
        """``(result, the person's record or None)``: ADDED, ALREADY or UNKNOWN."""
        self._refuse_archived(class_item)
        if not is_student_id(student_id):
            return UNKNOWN, None
        added, student = self._enrol_current(class_item["class_id"], student_id, by)
        if student is None:
            return UNKNOWN, None
        if added:
            self.store.count_enrolled(class_item["class_id"], 1)
        return (ADDED if added else ALREADY), student

    #: How often an enrolment reads the record again when a rename lands between
    #: its read and its write, before it gives up (409).
    ENROL_ATTEMPTS = 5

    def _enrol_current(self, class_id, student_id, by, student=None):
        """``(added, record)``: enrol the person under the name their record has
        at the moment of the write (``student``: the record if already read).
        ``(None, None)`` if there is no such person."""
        for attempt in range(self.ENROL_ATTEMPTS):
            if student is None:
                student = self._students.get(student_id)
                if student is None:
                    return None, None
            try:
                added = self.members.enrol(class_id, student, by)
            except RecordChanged:
                student = None
                time.sleep(random.uniform(0.01, 0.03) * (attempt + 1))  # a rival's turn
                continue
            self.repair_rosters(student)  # an earlier rename of theirs cut short
            return added, student
        raise Conflict(f"{student_id} changed several times while being enrolled (renamed, or "
                       "enrolled elsewhere at the same moment). "
                       "Try again.", code="student_changed")

    def catch_up_rosters(self, student):
        """Bring the person's roster entries to the name of ``student`` (the
        record as just read or written), if a rename may not have reached them.

        A rename calls it with the record it wrote; any request that reads the
        person calls it to finish a rename that was cut short. No call is made
        unless the record is behind; running it twice, or beside a rename,
        changes nothing more (entry writes never go back to an older version,
        and the mark only ever rises)."""
        if student is None or not rosters_behind(student):
            return
        self.members.rename_student(student)
        self._students.mark_rosters_named(student["student_id"], name_version(student))

    def repair_rosters(self, student):
        """:meth:`catch_up_rosters` on the way through another request (a read,
        an enrolment): a failed write is logged, not the request's failure; the
        next request for the person tries again."""
        try:
            self.catch_up_rosters(student)
        except (ClientError, BotoCoreError) as error:
            code = (error.response.get("Error", {}).get("Code")
                    if isinstance(error, ClientError) else type(error).__name__)
            get_logger().warning("roster names not caught up", extra={
                "student_id": student["student_id"], "error": code})

    def unenrol(self, class_item, student_id):
        self._refuse_archived(class_item)
        if not (is_student_id(student_id)
                and self.members.unenrol(class_item["class_id"], student_id)):
            raise NotFound(f"{student_id} is not enrolled in this class.",
                           code="not_enrolled")
        self.store.count_enrolled(class_item["class_id"], -1)

    def import_ids(self, class_item, text, column, by):
        """One result per non-blank line: added, already enrolled, unknown ID, invalid."""
        self._refuse_archived(class_item)
        parsed = parse_id_list(text, column)
        wanted = {sid for _, _, sid, _ in parsed if sid}
        known = {s["student_id"]: s for s in self._students.get_many(wanted)}
        already = {sid for _, sid in self.members.enrolled([class_item["class_id"]], known)}
        results = []
        try:
            self._import_lines(class_item, parsed, known, already, by, results)
        finally:
            # what was added is counted, even if a later line stopped the import
            added = sum(1 for r in results if r["result"] == ADDED)
            if added:
                self.store.count_enrolled(class_item["class_id"], added)
        summary = {kind: sum(1 for r in results if r["result"] == kind)
                   for kind in (ADDED, ALREADY, UNKNOWN, INVALID)}
        return {"results": results, "summary": summary}

    def _import_lines(self, class_item, parsed, known, already, by, results):
        for number, value, student_id, result in parsed:
            if result is None:
                if student_id not in known:
                    result = UNKNOWN
                elif student_id in already:
                    result = ALREADY
                else:
                    enrolled, known[student_id] = self._enrol_current(
                        class_item["class_id"], student_id, by, known[student_id])
                    if known[student_id] is None:  # deleted meanwhile
                        del known[student_id]
                        result = UNKNOWN
                    elif enrolled:
                        result = ADDED
                    else:  # enrolled by someone else meanwhile
                        result = ALREADY
                    already.add(student_id)
            results.append({"line": number, "value": value, "result": result,
                            "full_name": (known[student_id].get("full_name")
                                          if student_id in known else None)})

    def roster_for_completion(self, class_id):
        """The enrolled people as stored now (current names), for a session's rows."""
        ids = [e["student_id"] for e in self.members.roster(class_id)]
        return self._students.get_many(ids)

    @staticmethod
    def _refuse_archived(class_item):
        if class_item.get("archived"):
            raise WrongState("This class is archived; its roster can no longer change.",
                           code="class_archived")
