"""A school's portable archive: everything it entrusted, in one ZIP, anywhere.

    python -m ops.archive --stage prod export school.zip
    python -m ops.archive --stage prod import school.zip
    python -m local.stack cli archive export school.zip     (the one-machine stack)

The archive (format ``rollcall-archive``, version :data:`FORMAT_VERSION`)::

    manifest.json         {"format", "version", "written_by", "created_at",
                           "source": {"stage", "endpoint"}, "counts": {file: lines},
                           "files": {path: sha256}}
    users.jsonl           {email, role, disabled, created_at}: no password hash,
                          no sign-in counters (new one-time passwords on import)
    people.jsonl          the students table's items without face ids or boxes
                          (face vectors never travel: each engine makes its own)
    classes.jsonl         the classes table's items
    members.jsonl         teacher links and enrolments (rosters)
    sessions.jsonl        the sessions table's items (the recordings stay behind)
    attendance.jsonl      attendance rows, automatic evidence and corrections
    files/photos/<key>    every person's photos, under their key in the photos bucket
    files/crops/<key>     face crops from the videos bucket (``evidence/...``), if any

One JSON object per line, UTF-8. DynamoDB numbers are JSON numbers; a string
set is ``{"$set": [...]}`` and binary ``{"$b64": "..."}``.

Import loads an archive into a stack or stage (normally an empty one): users
get a generated one-time password each (shown once, they choose their own at
first sign-in); each person's photos are put back under their keys and indexed
into the target's face collection (IndexFaces, ``ExternalImageId`` = student
id, as registration does) before the record is written, so a record never
lacks its faces. Every write is conditional on the item being absent: an
import run twice, or again after it stopped half way, changes nothing that is
there and finishes what is not (a face left by an interrupted person is
deleted and made again). A missing or damaged photo, an unusable face, or a
bad line is reported and the rest is imported; a person none of whose photos
can be indexed is not imported (registered again, they find their registers).
"""
import argparse
import base64
import contextlib
import dataclasses
import datetime
import hashlib
import json
import mimetypes
import os
import pathlib
import re
import sys
import tempfile
import zipfile
from decimal import Decimal

from botocore.exceptions import ClientError

from chalicelib import passwords
from chalicelib.classes import STUDENT, is_class_id, roster_name
from chalicelib.clients import ClientFactory
from chalicelib.dynamo import from_dynamo, is_conditional_failure, to_dynamo
from chalicelib.faces import FaceCollection, FaceProblem
from chalicelib.schema import LISTED, table_specs
from chalicelib.sessions import SESSION_ID_PATTERN
from chalicelib.sessions import with_index_attributes as session_with_indexes
from chalicelib.settings import load_settings
from chalicelib.students import StudentStore, is_student_id
from chalicelib.users import EMAIL_PATTERN, ROLES, normalise_email
from ops.scanning import scan_all

FORMAT = "rollcall-archive"
FORMAT_VERSION = 1
#: The ``written_by`` of archives this code writes.
WRITTEN_BY = "rollcall archive 1"
#: What a user line holds; nothing else of an account leaves the stage.
USER_FIELDS = ("email", "role", "disabled", "created_at")
#: Per-engine face data, made again by the target's engine.
FACE_FIELDS = ("face_ids", "face_boxes")
PHOTOS_DIR = "files/photos/"
CROPS_DIR = "files/crops/"
CROP_PREFIX = "evidence/"
LINE_FILES = ("users", "people", "classes", "members", "sessions", "attendance")


class ArchiveError(RuntimeError):
    """The archive cannot be read at all (not a ZIP, another format, a newer version)."""


def checked_manifest(manifest, expected_format, newest_version, error, what):
    """``manifest`` when it is ``expected_format`` at ``newest_version`` or older;
    else ``error`` saying why (the stack's backups are read the same way)."""
    if manifest.get("format") != expected_format:
        raise error(f"this is not a {what} (format {manifest.get('format')!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or version > newest_version:
        raise error(f"this {what} is version {version!r}, written by "
                    f"{manifest.get('written_by')!r}; this Rollcall reads version "
                    f"{newest_version} and older: update Rollcall first")
    return manifest


# -- JSON lines -------------------------------------------------------------------
def _encode(value):
    if isinstance(value, Decimal):
        return from_dynamo(value)
    if isinstance(value, (set, frozenset)):
        return {"$set": sorted((_encode(v) if isinstance(v, (Decimal, bytes)) else v
                                for v in value), key=repr)}
    if isinstance(value, (bytes, bytearray)) or type(value).__name__ == "Binary":
        return {"$b64": base64.b64encode(bytes(getattr(value, "value", value))).decode()}
    raise TypeError(f"cannot archive a {type(value).__name__}")


def _decode_object(obj):
    if set(obj) == {"$set"}:
        return set(to_dynamo(obj["$set"]))
    if set(obj) == {"$b64"}:
        return base64.b64decode(obj["$b64"])
    return obj


def dump_line(item):
    return json.dumps(item, default=_encode, ensure_ascii=False, sort_keys=True)


def load_line(text):
    """One line as a DynamoDB-ready item (floats become Decimals)."""
    item = json.loads(text, object_hook=_decode_object)
    if not isinstance(item, dict):
        raise ValueError("a line must hold one JSON object")
    return to_dynamo(item)


# -- a stack or stage ---------------------------------------------------------------
@dataclasses.dataclass
class Target:
    """The tables, buckets and face collection of one stack or stage."""
    settings: object
    clients: object

    def table(self, name):
        return self.clients.table(name)

    @property
    def s3(self):
        return self.clients.client("s3")

    @property
    def rekognition(self):
        return self.clients.client("rekognition")

    @property
    def faces(self):
        return FaceCollection(self.rekognition, self.settings.face_collection,
                              match_threshold=self.settings.match_threshold)

    def tables(self):
        """Archive file name -> table name."""
        s = self.settings
        return {"users": s.users_table, "people": s.students_table, "classes": s.classes_table,
                "members": s.members_table, "sessions": s.sessions_table,
                "attendance": s.attendance_table}

    def keys(self, table_name):
        return [a for a, _, _ in table_specs(self.settings)[table_name]["keys"]]


def target_for_stage(stage):
    """The stage's resources from the environment (``AWS_ENDPOINT_URL`` = a local stack)."""
    from ops.stage_config import apply_stage_environment
    apply_stage_environment(stage)
    settings = load_settings()
    return Target(settings, ClientFactory(region=settings.region))


# -- export -------------------------------------------------------------------------
def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def export_archive(target, path, out=None, source=None):
    """Write ``target``'s data to the ZIP ``path`` (written aside, then renamed).

    The tables are read with Scan: an operator's tool, never a request path.
    Answers the manifest.
    """
    path = pathlib.Path(path)
    tables = target.tables()
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "written_by": WRITTEN_BY,
                "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "source": source or {"stage": target.settings.stage,
                                     "endpoint": os.environ.get("AWS_ENDPOINT_URL") or "aws"},
                "counts": {}, "files": {}}
    handle, temp = tempfile.mkstemp(prefix=path.name, suffix=".part", dir=path.parent or ".")
    os.close(handle)
    try:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            people = []
            for name, table_name in tables.items():
                lines = []
                for item in scan_all(target.table(table_name)):
                    if name == "users":
                        item = {k: item[k] for k in USER_FIELDS if k in item}
                    elif name == "people":
                        item = {k: v for k, v in item.items() if k not in FACE_FIELDS}
                        people.append(item)
                    lines.append(dump_line(item))
                lines.sort()
                data = "".join(line + "\n" for line in lines).encode("utf-8")
                archive.writestr(f"{name}.jsonl", data)
                manifest["counts"][name] = len(lines)
                manifest["files"][f"{name}.jsonl"] = _sha256(data)
            for person in people:
                for key in person.get("photo_keys") or []:
                    data = _read_object(target.s3, target.settings.photos_bucket, key)
                    if data is None:
                        _say(out, f"missing   photo {key} of {person['student_id']} "
                                  "(not in the photos bucket)")
                        continue
                    archive.writestr(PHOTOS_DIR + key, data, zipfile.ZIP_STORED)
                    manifest["files"][PHOTOS_DIR + key] = _sha256(data)
            crops = 0
            for key in _list_keys(target.s3, target.settings.videos_bucket, CROP_PREFIX):
                data = _read_object(target.s3, target.settings.videos_bucket, key)
                if data is not None:
                    archive.writestr(CROPS_DIR + key, data, zipfile.ZIP_STORED)
                    manifest["files"][CROPS_DIR + key] = _sha256(data)
                    crops += 1
            manifest["counts"]["photos"] = sum(1 for f in manifest["files"]
                                               if f.startswith(PHOTOS_DIR))
            manifest["counts"]["crops"] = crops
            archive.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    counts = manifest["counts"]
    _say(out, "wrote " + str(path) + ": " + ", ".join(f"{counts[k]} {k}" for k in (
        *LINE_FILES, "photos", "crops")))
    return manifest


def _read_object(s3, bucket, key):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NoSuchBucket"):
            return None
        raise


def _list_keys(s3, bucket, prefix):
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                yield entry["Key"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchBucket":
            raise


# -- import -------------------------------------------------------------------------
@dataclasses.dataclass
class ImportReport:
    """What an import did: per kind, how many were added and how many were there."""
    added: dict = dataclasses.field(default_factory=dict)
    present: dict = dataclasses.field(default_factory=dict)
    #: (where, what went wrong): what was not imported, or imported without something.
    problems: list = dataclasses.field(default_factory=list)
    #: email -> generated one-time password, for accounts added by this run.
    passwords: dict = dataclasses.field(default_factory=dict)

    def count(self, kind, added):
        book = self.added if added else self.present
        book[kind] = book.get(kind, 0) + 1

    def problem(self, where, what):
        self.problems.append((where, what))

    @property
    def changed(self):
        return sum(self.added.values())

    def lines(self):
        kinds = [*LINE_FILES, "photos", "crops"]
        yield "imported: " + ", ".join(f"{self.added.get(k, 0)} {k}" for k in kinds)
        there = [f"{self.present[k]} {k}" for k in kinds if self.present.get(k)]
        if there:
            yield "already there (left as they are): " + ", ".join(there)
        if self.passwords:
            yield "one-time passwords (shown once; each is changed at the first sign-in):"
            for email, password in sorted(self.passwords.items()):
                yield f"  {email}  {password}"
        if self.problems:
            yield f"{len(self.problems)} problem(s), the rest was imported:"
            for where, what in self.problems:
                yield f"  {where}: {what}"


class _Reader:
    """The archive's files, checked against the manifest's checksums."""

    def __init__(self, archive):
        self.archive = archive
        try:
            manifest = json.loads(archive.read("manifest.json"))
        except KeyError:
            raise ArchiveError("this ZIP has no manifest.json: it is not a Rollcall archive")
        except ValueError as error:
            raise ArchiveError(f"manifest.json cannot be read ({error})")
        self.manifest = checked_manifest(manifest, FORMAT, FORMAT_VERSION, ArchiveError,
                                         "Rollcall archive")
        self.names = set(archive.namelist())

    def file(self, name):
        """The file's bytes, or None if missing or not what the manifest says."""
        if name not in self.names:
            return None
        data = self.archive.read(name)
        expected = self.manifest.get("files", {}).get(name)
        if expected and expected != _sha256(data):
            return None
        return data

    def problem_with(self, name):
        return "missing from the archive" if name not in self.names else "damaged (checksum)"

    def lines(self, kind, report):
        """``(line number, item)`` of ``<kind>.jsonl``; unreadable lines reported."""
        data = self.file(f"{kind}.jsonl")
        if data is None:
            if f"{kind}.jsonl" in self.names:
                report.problem(f"{kind}.jsonl", "damaged (checksum); none of it was imported")
            return
        for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if not text.strip():
                continue
            try:
                yield number, load_line(text)
            except ValueError as error:
                report.problem(f"{kind}.jsonl line {number}", f"not a JSON object ({error})")


class Importer:
    """Loads an archive into ``target``; see the module docstring."""

    def __init__(self, target, out=None):
        self.target = target
        self.out = out
        self.report = ImportReport()
        self.existing_people = {}   # student id -> the target's record, kept as it was

    def run(self, path):
        try:
            archive = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as error:
            raise ArchiveError(f"{path} cannot be opened as a ZIP ({error})")
        with archive:
            reader = _Reader(archive)
            self._users(reader)
            people = self._people(reader)
            classes = self._plain(reader, "classes", self._check_class)
            self._plain(reader, "members", lambda item: self._check_member(item, classes),
                        adjust=self._named_as_in_target)
            sessions = self._plain(reader, "sessions", self._check_session)
            self._plain(reader, "attendance",
                        lambda item: self._check_row(item, sessions, people))
            self._crops(reader)
        return self.report

    # users: a new one-time password each
    def _users(self, reader):
        table = self.target.table(self.target.settings.users_table)
        for number, item in reader.lines("users", self.report):
            where = f"users.jsonl line {number}"
            email = normalise_email(str(item.get("email") or ""))
            if not re.fullmatch(EMAIL_PATTERN, email) or item.get("role") not in ROLES:
                self.report.problem(where, "not a user (an email and a role of "
                                           f"{', '.join(ROLES)} are needed)")
                continue
            password = passwords.generate_password()
            record = {"email": email, "role": item["role"],
                      "password_hash": passwords.hash_password(password),
                      "token_version": 1, "failed_attempts": 0, "must_change_password": True,
                      LISTED: "user"}
            record.update({k: item[k] for k in ("disabled", "created_at") if k in item})
            if self._put(table, record, "email"):
                self.report.passwords[email] = password
                self.report.count("users", True)
            else:
                self.report.count("users", False)

    # people: photos back, faces indexed, then the record
    def _people(self, reader):
        """Import every person; answers the ids of people the target now has."""
        settings = self.target.settings
        store = StudentStore(self.target.table(settings.students_table))
        faces = self.target.faces
        left_faces = None  # student id -> faces without a record, listed once when needed
        known = set()
        for number, item in reader.lines("people", self.report):
            student_id = item.get("student_id")
            where = f"person {student_id}" if isinstance(student_id, str) else \
                f"people.jsonl line {number}"
            keys = item.get("photo_keys") or []
            if (not is_student_id(student_id) or not isinstance(item.get("full_name"), str)
                    or not isinstance(keys, list)
                    or not all(isinstance(k, str) and k.startswith("photos/") for k in keys)):
                self.report.problem(where, "not a person (a student_id, a full_name and "
                                           "photo keys under photos/ are needed)")
                continue
            existing = store.get(student_id)
            if existing is not None:
                self.existing_people[student_id] = existing
                known.add(student_id)
                self.report.count("people", False)
                continue
            if left_faces is None:
                left_faces = self._faces_by_student()
            if left_faces.get(student_id):
                # An import that stopped between the faces and the record.
                faces.delete(left_faces.pop(student_id))
            record = {k: v for k, v in item.items() if k not in FACE_FIELDS}
            record.update(index_photos(
                faces, self.target.settings.photos_bucket, student_id, keys,
                present=lambda key: self._put_photo(reader, student_id, key),
                refused=lambda key, problem: self._photo_refused(student_id, key, problem)))
            for _ in record["photo_keys"]:
                self.report.count("photos", True)
            if not record["face_ids"]:
                # A record without a face could never be given one (a new photo must
                # match the registered face): register the person again instead.
                self.report.problem(where, "not imported: none of their photos could be "
                                           "indexed; register them again (their registers "
                                           "and enrolments are kept)")
                continue
            try:
                store.create(to_dynamo(record))
            except Exception:
                faces.delete(record["face_ids"])
                raise
            known.add(student_id)
            self.report.count("people", True)
        return known

    def _put_photo(self, reader, student_id, key):
        """Put one photo back from the archive: False (and a problem) if it is not there."""
        data = reader.file(PHOTOS_DIR + key)
        if data is None:
            self.report.problem(f"person {student_id}",
                                f"photo {key} {reader.problem_with(PHOTOS_DIR + key)}")
            return False
        self.target.s3.put_object(Bucket=self.target.settings.photos_bucket, Key=key,
                                  Body=data, ContentType=mimetypes.guess_type(key)[0]
                                  or "application/octet-stream")
        return True

    def _photo_refused(self, student_id, key, problem):
        """A photo put back whose face was not indexed goes again: no photo without a face."""
        self.target.s3.delete_object(Bucket=self.target.settings.photos_bucket, Key=key)
        self.report.problem(f"person {student_id}", f"photo {key} was not indexed: {problem}")

    def _faces_by_student(self):
        found = {}
        for face in stored_faces(self.target.rekognition, self.target.settings.face_collection):
            found.setdefault(face.get("ExternalImageId"), []).append(face["FaceId"])
        return found

    # classes, rosters, sessions, attendance: items as they were
    def _plain(self, reader, kind, check, adjust=None):
        """Put every valid item (after ``adjust``) absent from the target; answers
        the keys now there."""
        table_name = self.target.tables()[kind]
        keys = self.target.keys(table_name)
        table = self.target.table(table_name)
        there = set()
        for number, item in reader.lines(kind, self.report):
            if any(not isinstance(item.get(k), str) or not item.get(k) for k in keys):
                self.report.problem(f"{kind}.jsonl line {number}",
                                    f"has no {' and '.join(keys)}")
                continue
            problem = check(item)
            if problem:
                self.report.problem(f"{kind}.jsonl line {number}", problem)
                continue
            if kind == "sessions":
                item = session_with_indexes(item)
            if adjust is not None:
                item = adjust(item)
            added = self._put(table, item, keys[0])
            self.report.count(kind, added)
            there.add(item[keys[0]])
        return there

    @staticmethod
    def _check_class(item):
        if not is_class_id(item["class_id"]) or not isinstance(item.get("name"), str):
            return "not a class (a class_id and a name are needed)"
        return None

    def _named_as_in_target(self, item):
        """An enrolment of a person the target already had (not imported now)
        takes that person's name and name version: the archive's versions
        belong to another record, and roster entries are only written forward,
        so a version from elsewhere could keep a later rename out for good."""
        record = self.existing_people.get(item["member"][len(STUDENT):]) \
            if item["member"].startswith(STUDENT) else None
        return item if record is None else dict(item, **roster_name(record))

    @staticmethod
    def _check_member(item, classes):
        if item["class_id"] not in classes:
            return f"class {item['class_id']} is not in the archive"
        if not item["member"].startswith(("teacher#", STUDENT)):
            return f"member {item['member']!r} is neither a teacher nor a person"
        return None

    @staticmethod
    def _check_session(item):
        if not re.fullmatch(SESSION_ID_PATTERN, item["session_id"]):
            return "not a session id"
        if not isinstance(item.get("date"), str):
            return "a session needs its date"
        return None

    @staticmethod
    def _check_row(item, sessions, people):
        if item["session_id"] not in sessions:
            return f"session {item['session_id']} is not in the archive"
        if not is_student_id(item["student_id"]):
            return "not a student id"
        if not isinstance(item.get("status"), str):
            return "an attendance row needs its status"
        return None

    def _crops(self, reader):
        bucket = self.target.settings.videos_bucket
        for name in sorted(n for n in reader.names if n.startswith(CROPS_DIR)):
            key = name[len(CROPS_DIR):]
            if not key.startswith(CROP_PREFIX) or ".." in key:
                self.report.problem(name, "not a face crop key")
                continue
            if object_exists(self.target.s3, bucket, key):
                self.report.count("crops", False)
                continue
            data = reader.file(name)
            if data is None:
                self.report.problem(name, reader.problem_with(name))
                continue
            self.target.s3.put_object(Bucket=bucket, Key=key, Body=data,
                                      ContentType="image/jpeg")
            self.report.count("crops", True)

    def _put(self, table, item, key):
        """Put ``item`` unless its key is taken: True if it was added."""
        try:
            table.put_item(Item=item, ConditionExpression="attribute_not_exists(#key)",
                           ExpressionAttributeNames={"#key": key})
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True


def object_exists(s3, bucket, key):
    """True if ``key`` is in ``bucket`` (a HEAD request); other errors are raised."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def stored_faces(rekognition, collection_id):
    """Every face of a collection (``FaceId``, ``ExternalImageId``...), page by page."""
    request = {"CollectionId": collection_id, "MaxResults": 1000}
    while True:
        answer = rekognition.list_faces(**request)
        yield from answer.get("Faces", [])
        if not answer.get("NextToken"):
            return
        request["NextToken"] = answer["NextToken"]


def index_photos(faces, bucket, student_id, keys, present=None, refused=None):
    """Index the face of each photo ``keys`` (in ``bucket``) for ``student_id``, in order.

    ``present(key)`` says whether the photo is there to index (it may put it
    there first); ``refused(key, problem)`` hears of a photo whose face was not
    indexed (a :class:`FaceProblem`). Answers the face fields of a student
    record for the photos indexed: ``{"photo_keys", "face_ids", "face_boxes"}``.
    A person's record is made again from their photos this way on import
    (:class:`Importer`) and on a one-machine restore
    (:func:`local.stack.backup.reconcile`).
    """
    fields = {"photo_keys": [], "face_ids": [], "face_boxes": []}
    for key in keys:
        if present is not None and not present(key):
            continue
        try:
            face_ids, box = faces.index(bucket, key, student_id)
        except FaceProblem as problem:
            if refused is not None:
                refused(key, problem)
            continue
        fields["photo_keys"].append(key)
        fields["face_ids"].extend(face_ids)
        if box:
            fields["face_boxes"].append(dict(box, photo_key=key))
    return fields


def import_archive(target, path, out=None):
    """Import ``path`` into ``target``; answers the :class:`ImportReport`."""
    report = Importer(target, out).run(path)
    for line in report.lines():
        _say(out, line)
    return report


def _say(out, text):
    if out is not None:
        print(text, file=out)


# -- command line -----------------------------------------------------------------------
def add_arguments(parser):
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the stage's data to a ZIP archive")
    export.add_argument("file")
    load = commands.add_parser("import", help="load an archive into the stage")
    load.add_argument("file")


def run(args, target=None, out=sys.stdout, err=sys.stderr):
    """Run an ``export``/``import`` command (``args`` from :func:`add_arguments`)."""
    try:
        target = target or target_for_stage(args.stage)
        if args.command == "export":
            export_archive(target, args.file, out=out)
            return 0
        report = import_archive(target, args.file, out=out)
        return 1 if report.problems else 0
    except ArchiveError as error:
        print(f"error: {error}", file=err)
        return 2


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ops.archive",
                                     description="Export or import a school's archive.")
    parser.add_argument("--stage", default="dev", help="stage in .chalice/config.json")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
