"""A school's archive: export from one world, import into a fresh one.

People are registered with real photos by the built-in face engine (the
``face_rekognition`` fixture) and re-indexed by it on import; the second world
is the same process's moto after a reset, with the engine's collection made
again, so nothing of the first survives except the ZIP.
"""
import io
import json
import uuid
import zipfile

import pytest
from moto import mock_aws

from chalicelib import passwords
from chalicelib.attendance import Decision, Evidence
from chalicelib.dynamo import from_dynamo
from ops.scanning import scan_all
from chalicelib.statuses import AttendanceStatus
from ops import archive as archive_module
from ops.archive import (FORMAT_VERSION, PHOTOS_DIR, ArchiveError, Target, export_archive,
                         import_archive)
from ops.provision import Provisioner

pytestmark = pytest.mark.engine

PEOPLE = {"p-1": ("Barack Obama", ["barack_obama/1.jpg", "barack_obama/2.jpg"]),
          "p-2": ("Kit Harington", ["kit_harington/1.jpg"]),
          "p-3": ("Joe Biden", ["joe_biden/1.jpg"])}


def _upload(services, data):
    key = f"photos/uploads/{uuid.uuid4().hex}.jpg"
    services.clients.client("s3").put_object(Bucket=services.settings.photos_bucket, Key=key,
                                             Body=data, ContentType="image/jpeg")
    return key


@pytest.fixture
def school(services, engine, faces_dir):
    """Accounts, three people (one with two photos), a class with its roster, two
    sessions with automatic rows and a teacher's correction, and a face crop."""
    services.users.add("admin@example.org", "admin password 12", "admin")
    services.users.add("tom@example.org", "teacher password 1", "teacher")
    for student_id, (name, photos) in PEOPLE.items():
        services.students.register(student_id, name,
                                   _upload(services, (faces_dir / "people" / photos[0]).read_bytes()))
        for extra in photos[1:]:
            services.students.add_photo(
                student_id, _upload(services, (faces_dir / "people" / extra).read_bytes()))
    made = services.classes.create(name="Maths 7B", term="2026 autumn",
                                   teachers=["tom@example.org"], schedule="Mon 9:00",
                                   late_threshold_minutes=10)
    members = services.clients.table(services.settings.members_table)
    for student_id in ("p-1", "p-2"):
        # What Memberships.enrol writes (its condition names the reserved word
        # "member", which DynamoDB refuses; reported, not this test's subject).
        members.put_item(Item={"class_id": made["class_id"], "member": "student#" + student_id,
                               "student_id": student_id, "full_name": PEOPLE[student_id][0],
                               "enrolled_at": "2026-11-01T08:00:00+00:00",
                               "enrolled_by": "admin@example.org"})
    roster = [{"student_id": s, "full_name": PEOPLE[s][0]} for s in ("p-1", "p-2")]
    for day, class_id in (("2026-11-02", made["class_id"]), ("2026-11-03", None)):
        session = services.session_store.create({
            "session_id": uuid.uuid4().hex, "title": f"Lesson {day}", "course": "Maths",
            "date": day, "video_key": "videos/x/video.mp4", "class_id": class_id,
            "start_offset_seconds": None})
        decision = Decision(evidence={"p-1": Evidence(seen={1000: 95.5, 3000: 91.25})})
        services.attendance.record_automatic(session["session_id"], roster, decision, 2)
        services.attendance.correct(session["session_id"], "p-2", AttendanceStatus.EXCUSED,
                                    "dentist", "tom@example.org")
    services.clients.client("s3").put_object(
        Bucket=services.settings.videos_bucket, Key="evidence/abc/p-1-0.jpg", Body=b"crop",
        ContentType="image/jpeg")
    return services


def _world(target):
    """Everything a school keeps, as comparable data (face data aside)."""
    state = {}
    for name, table in target.tables().items():
        items = [from_dynamo(i) for i in scan_all(target.table(table))]
        if name == "users":
            items = [{k: i.get(k) for k in ("email", "role", "disabled", "created_at")}
                     for i in items]
        if name == "people":
            # (an imported record's name starts a version above any the target
            # gave out, and its rosters are caught up at the first request)
            items = [{k: v for k, v in i.items()
                      if k not in ("face_ids", "face_boxes", "name_version",
                                   "roster_name_version")}
                     for i in items]
        state[name] = sorted(items, key=lambda i: json.dumps(i, sort_keys=True))
    s3 = target.s3
    for label, bucket, prefix in (("photos", target.settings.photos_bucket, "photos/"),
                                  ("crops", target.settings.videos_bucket, "evidence/")):
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        state[label] = {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                        for o in listing}
    return state


def _faces(target):
    found = {}
    for face in target.rekognition.list_faces(
            CollectionId=target.settings.face_collection, MaxResults=1000)["Faces"]:
        found.setdefault(face["ExternalImageId"], set()).add(face["FaceId"])
    return found


def _fresh_world(services, engine):
    """Reset moto, drop the engine's collection, provision the stage again: empty."""
    mock_aws().reset()
    engine.delete_collection(CollectionId=services.settings.face_collection)
    Provisioner(services.settings, services.clients).run()
    return Target(services.settings, services.clients)


@pytest.mark.slow
def test_export_then_import_into_a_fresh_world_gives_the_same_school(school, engine, tmp_path):
    source = Target(school.settings, school.clients)
    before = _world(source)
    assert len(before["photos"]) == 4 and len(before["attendance"]) == 4
    path = tmp_path / "school.zip"
    manifest = export_archive(source, path)
    assert manifest["counts"] == {"users": 2, "people": 3, "classes": 1, "members": 3,
                                  "sessions": 2, "attendance": 4, "photos": 4, "crops": 1}
    with zipfile.ZipFile(path) as archive:
        users = archive.read("users.jsonl").decode()
        assert "password_hash" not in users and "token_version" not in users
        assert "face_ids" not in archive.read("people.jsonl").decode()

    target = _fresh_world(school, engine)
    assert _world(target)["people"] == []
    out = io.StringIO()
    report = import_archive(target, path, out=out)
    assert report.problems == []
    after = _world(target)
    for kind in ("people", "classes", "members", "sessions", "attendance", "users",
                 "photos", "crops"):
        assert after[kind] == before[kind], kind
    # Registers field by field, corrections included.
    rows = {(r["session_id"], r["student_id"]): r for r in after["attendance"]}
    corrected = [r for r in rows.values() if r["student_id"] == "p-2"]
    assert {r["status"] for r in corrected} == {"EXCUSED"}
    assert {r["reason"] for r in corrected} == {"dentist"}
    # Every photo was indexed by this world's engine under its person's id.
    faces = _faces(target)
    assert {k: len(v) for k, v in faces.items()} == {"p-1": 2, "p-2": 1, "p-3": 1}
    for student in after["people"]:
        record = from_dynamo(target.table(target.settings.students_table).get_item(
            Key={"student_id": student["student_id"]})["Item"])
        assert set(record["face_ids"]) == faces[student["student_id"]]
        assert len(record["face_boxes"]) == len(record["photo_keys"])
    match = target.faces.search(target.settings.photos_bucket,
                                after["people"][0]["photo_keys"][0])
    assert match[0]["student_id"] == after["people"][0]["student_id"]
    # New one-time passwords, printed once, that work and must be changed.
    assert set(report.passwords) == {"admin@example.org", "tom@example.org"}
    for email, password in report.passwords.items():
        assert password in out.getvalue()
        user = target.table(target.settings.users_table).get_item(Key={"email": email})["Item"]
        assert passwords.verify_password(user["password_hash"], password)
        assert user["must_change_password"] is True

    # Importing again changes nothing and shows no password.
    again = import_archive(target, path, out=io.StringIO())
    assert again.changed == 0 and again.passwords == {} and again.problems == []
    assert _world(target) == after
    assert _faces(target) == faces


def _rewrite(path, out_path, drop=(), append=None):
    """A copy of the archive without ``drop`` and with lines appended to files
    (their checksums updated, as a hand-edited archive would be)."""
    append = append or {}
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out_path, "w") as copy:
        manifest = json.loads(source.read("manifest.json"))
        for name in source.namelist():
            if name in drop or name == "manifest.json":
                continue
            data = source.read(name) + "".join(l + "\n" for l in append.get(name, [])).encode()
            manifest["files"][name] = archive_module._sha256(data)
            copy.writestr(name, data)
        copy.writestr("manifest.json", json.dumps(manifest))


def test_a_missing_photo_and_bad_rows_are_reported_and_the_rest_imported(school, engine,
                                                                         tmp_path):
    source = Target(school.settings, school.clients)
    before = _world(source)
    path = tmp_path / "school.zip"
    export_archive(source, path)
    p1 = next(p for p in before["people"] if p["student_id"] == "p-1")
    p3 = next(p for p in before["people"] if p["student_id"] == "p-3")
    missing = [PHOTOS_DIR + p1["photo_keys"][1], PHOTOS_DIR + p3["photo_keys"][0]]
    broken = tmp_path / "broken.zip"
    _rewrite(path, broken, drop=missing, append={
        "people.jsonl": ["{not json", json.dumps({"student_id": "bad id!", "full_name": "X"})],
        "attendance.jsonl": [json.dumps({"session_id": "f" * 32, "student_id": "p-1",
                                         "status": "PRESENT"})]})
    target = _fresh_world(school, engine)
    report = import_archive(target, broken, out=io.StringIO())
    problems = "\n".join(f"{where}: {what}" for where, what in report.problems)
    assert p1["photo_keys"][1] in problems and p3["photo_keys"][0] in problems
    assert "person p-3: not imported: none of their photos could be indexed" in problems
    assert "people.jsonl line 4: not a JSON object" in problems
    assert "not a person" in problems
    assert f"session {'f' * 32} is not in the archive" in problems
    assert len(report.problems) == 6
    after = _world(target)
    # Everything else arrived: p-1 with the photo that was there, every session and row
    # (p-3's too: registered again, they find them).
    assert sorted(p["student_id"] for p in after["people"]) == ["p-1", "p-2"]
    imported_p1 = next(p for p in after["people"] if p["student_id"] == "p-1")
    assert imported_p1["photo_keys"] == p1["photo_keys"][:1]
    for kind in ("classes", "members", "sessions", "attendance", "users", "crops"):
        assert after[kind] == before[kind], kind
    assert {k: len(v) for k, v in _faces(target).items()} == {"p-1": 1, "p-2": 1}


@pytest.mark.slow
def test_an_interrupted_import_finishes_on_the_next_run_without_stray_faces(
        school, engine, tmp_path, monkeypatch):
    source = Target(school.settings, school.clients)
    before = _world(source)
    path = tmp_path / "school.zip"
    export_archive(source, path)
    target = _fresh_world(school, engine)
    real_create = archive_module.StudentStore.create
    calls = []

    def crash_on_second(self, item):
        calls.append(item["student_id"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, after the faces, before the record
        return real_create(self, item)
    monkeypatch.setattr(archive_module.StudentStore, "create", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        import_archive(target, path)
    monkeypatch.setattr(archive_module.StudentStore, "create", real_create)
    report = import_archive(target, path, out=io.StringIO())
    assert report.problems == []
    assert report.present.get("people") == 1 and report.added.get("people") == 2
    after = _world(target)
    assert after["people"] == before["people"] and after["attendance"] == before["attendance"]
    assert {k: len(v) for k, v in _faces(target).items()} == {"p-1": 2, "p-2": 1, "p-3": 1}


def test_an_archive_from_a_newer_version_or_not_an_archive_is_refused(aws, settings, clients,
                                                                      tmp_path):
    newer = tmp_path / "newer.zip"
    with zipfile.ZipFile(newer, "w") as archive:
        archive.writestr("manifest.json", json.dumps({
            "format": "rollcall-archive", "version": FORMAT_VERSION + 1,
            "written_by": "rollcall archive 9"}))
    target = Target(settings, clients)
    with pytest.raises(ArchiveError, match="rollcall archive 9.*update Rollcall first"):
        import_archive(target, newer)
    other = tmp_path / "other.zip"
    other.write_bytes(b"not a zip")
    with pytest.raises(ArchiveError, match="cannot be opened"):
        import_archive(target, other)


def test_values_travel_exactly():
    from decimal import Decimal
    item = {"a": Decimal("91.25"), "n": Decimal("3"), "s": {"x", "y"}, "b": b"\x00\x01",
            "nested": [{"v": Decimal("0.1")}], "text": "Émile \u2014 ok"}
    assert archive_module.load_line(archive_module.dump_line(item)) == item


def test_the_cli_writes_and_reads_an_archive_of_the_stage(provisioned, settings, tmp_path):
    from ops import cli
    table = provisioned.table(settings.classes_table)
    table.put_item(Item={"class_id": "c" * 32, "name": "Choir", "listed": "class",
                         "name_key": "choir#" + "c" * 32})
    path = tmp_path / "stage.zip"
    out = io.StringIO()
    assert cli.run(["archive", "export", str(path)], out=out) == 0
    assert "1 classes" in out.getvalue()
    table.delete_item(Key={"class_id": "c" * 32})
    out = io.StringIO()
    assert cli.run(["archive", "import", str(path)], out=out) == 0
    assert "imported: 0 users, 0 people, 1 classes" in out.getvalue()
    assert table.get_item(Key={"class_id": "c" * 32})["Item"]["name"] == "Choir"
    err = io.StringIO()
    (tmp_path / "bad.zip").write_bytes(b"nope")
    assert cli.run(["archive", "import", str(tmp_path / "bad.zip")], err=err) == 2
    assert "cannot be opened as a ZIP" in err.getvalue()


def test_an_enrolment_of_a_person_the_target_has_takes_the_targets_name(
        school, engine, faces_dir, tmp_path):
    """The target already had p-1 (another record, another name): the archive's
    roster entry takes that record's name and name version, so the target's
    next rename reaches it (entries are only ever written forward)."""
    source = Target(school.settings, school.clients)
    path = tmp_path / "school.zip"
    export_archive(source, path)
    target = _fresh_world(school, engine)
    school.students.register("p-1", "Barack H. Obama", _upload(
        school, (faces_dir / "people" / "barack_obama" / "1.jpg").read_bytes()))
    theirs = school.students.get("p-1")
    report = import_archive(target, path, out=io.StringIO())
    assert report.present.get("people") == 1
    members = school.clients.table(school.settings.members_table)
    (class_id,) = {m["class_id"] for m in _world(target)["members"]}
    entry = members.get_item(Key={"class_id": class_id, "member": "student#p-1"})["Item"]
    assert entry["full_name"] == "Barack H. Obama"
    assert int(entry["name_version"]) == int(theirs["name_version"])


def test_an_imported_person_renames_what_a_deleted_record_of_the_id_left_on_rosters(
        school, engine, faces_dir, tmp_path):
    """The target once had p-1 (another name, enrolled in a class of its own)
    and deleted the record, which leaves its roster entries. The archive's p-1
    starts at a name version above the one those entries carry, so the first
    request for the person puts the archive's name on them (entries are only
    ever written forward: with the archive's older version they would keep the
    deleted record's name for good)."""
    path = tmp_path / "school.zip"
    export_archive(Target(school.settings, school.clients), path)
    target = _fresh_world(school, engine)
    school.students.register("p-1", "Someone Else", _upload(
        school, (faces_dir / "people" / "barack_obama" / "1.jpg").read_bytes()))
    own = school.classes.create(name="Their class", term=None, teachers=[], schedule=None,
                                late_threshold_minutes=10)
    school.classes.enrol(school.classes.require(own["class_id"]), "p-1", "admin@example.org")
    school.students.delete("p-1")
    members = school.clients.table(school.settings.members_table)
    key = {"class_id": own["class_id"], "member": "student#p-1"}
    left = members.get_item(Key=key)["Item"]
    assert left["full_name"] == "Someone Else"

    import_archive(target, path, out=io.StringIO())
    record = school.students.get("p-1")
    assert record["full_name"] == PEOPLE["p-1"][0]
    assert int(record["name_version"]) > int(left["name_version"])
    school.classes.repair_rosters(record)          # what reading the person does
    entry = members.get_item(Key=key)["Item"]
    assert entry["full_name"] == PEOPLE["p-1"][0]
    assert int(entry["name_version"]) == int(record["name_version"])
