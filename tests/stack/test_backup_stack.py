"""The one-machine stack's backup and restore, with real processes.

The AWS state server and the face engine run as the stack runs them (on a
temporary data directory); registrations go through the same chalicelib code
the API runs, in threads, while the backup is taken.
"""
import io
import json
import tarfile
import threading
import uuid
import zipfile

import pytest

from local.stack import backup as backup_module
from local.stack.backup import BackupError, backup, restore, running_parts
from ops.archive import object_exists, stored_faces

pytestmark = [pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]

PEOPLE = ["alex_lacamoire", "barack_obama", "joe_biden", "john_salley", "john_savage",
          "john_schneider", "kit_harington", "lin_manuel_miranda"]


def _services(env):
    """The app's object graph against the parts ``env`` points at (call inside _environ)."""
    from chalicelib.clients import ClientFactory
    from chalicelib.services import Services
    from chalicelib.settings import load_settings
    settings = load_settings()
    return Services(settings=settings, clients=ClientFactory(region=settings.region))


def _stage_env(env):
    from ops.stage_config import stage_environment
    return {**stage_environment("dev"), "SITE_ORIGIN": "http://127.0.0.1:8000", **env}


def _register(services, student_id, name, data):
    key = f"photos/uploads/{uuid.uuid4().hex}.jpg"
    services.clients.client("s3").put_object(Bucket=services.settings.photos_bucket, Key=key,
                                             Body=data, ContentType="image/jpeg")
    services.students.register(student_id, name, key)


def _state(services):
    """(records, faces by id -> external id, photo keys missing) of a running stack."""
    from chalicelib.dynamo import from_dynamo
    from ops.scanning import scan_all
    settings = services.settings
    records = {i["student_id"]: from_dynamo(i) for i in
               scan_all(services.clients.table(settings.students_table))}
    rekognition = services.clients.client("rekognition")
    faces = {f["FaceId"]: f["ExternalImageId"]
             for f in stored_faces(rekognition, settings.face_collection)}
    missing = [key for item in records.values() for key in item["photo_keys"]
               if not object_exists(services.clients.client("s3"), settings.photos_bucket, key)]
    return records, faces, missing


def _assert_consistent(records, faces, missing):
    named = {f: sid for sid, item in records.items() for f in item["face_ids"]}
    assert named == faces, "every face belongs to its record, every record has its faces"
    assert missing == [], "every record's photo is there"
    assert all(item["face_ids"] and item["photo_keys"] for item in records.values())


@pytest.fixture
def stack_dir(tmp_path, faces_dir):
    """A data directory with the AWS state and face engine running and provisioned."""
    data_dir = tmp_path / "live"
    data_dir.mkdir()
    with running_parts(data_dir) as env:
        with backup_module._environ(_stage_env(env)):
            from ops import provision
            provision.for_stage("dev").run()
            services = _services(env)
        # What the launcher writes for a running stack (the backup finds it so).
        (data_dir / "stack.json").write_text(json.dumps({
            "stage": "dev", "moto_url": env["AWS_ENDPOINT_URL"],
            "faces_url": env["AWS_ENDPOINT_URL_REKOGNITION"]}))
        yield data_dir, env, services


def test_a_backup_taken_during_registrations_restores_consistent(stack_dir, faces_dir,
                                                                 tmp_path):
    data_dir, env, services = stack_dir
    photos = {name: (faces_dir / "people" / name / "1.jpg").read_bytes() for name in PEOPLE}
    with backup_module._environ(_stage_env(env)):
        _register(services, "first", "First Person", photos[PEOPLE[0]])
        # Two states a crash or a backup can catch mid-flight: a registration that has
        # indexed its face but not yet written its record, and a deletion that has
        # removed the faces but not yet the record.
        services.faces.index(services.settings.photos_bucket,
                             services.students.get("first")["photo_keys"][0], "ghost")
        _register(services, "leaving", "Leaving Person", photos[PEOPLE[1]])
        services.faces.delete(services.students.get("leaving")["face_ids"])
        errors, started = [], threading.Event()

        def register_some(names):
            try:
                for name in names:
                    _register(services, name.replace("_", "-"), name.title(), photos[name])
                    started.set()
            except Exception as error:  # noqa: BLE001 - the test reports it
                errors.append(error)
        threads = [threading.Thread(target=register_some, args=(PEOPLE[i::2],))
                   for i in (2, 3)]
        for thread in threads:
            thread.start()
        started.wait(120)
        archive = backup(data_dir, tmp_path / "backup.tar", out=io.StringIO())
        for thread in threads:
            thread.join()
        assert errors == []
        live_records, _, _ = _state(services)
    assert len(live_records) == 2 + len(PEOPLE) - 2

    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        names = tar.getnames()
    assert manifest["version"] == backup_module.VERSION and manifest["written_by"]
    assert "data/moto/moto-state.pickle" in names
    assert any(n.startswith("data/faces/collections/") for n in names)
    assert not any(n.startswith(("data/logs", "data/stack.json")) for n in names)

    restored = tmp_path / "restored"
    out = io.StringIO()
    report = restore(archive, restored, out=out)
    assert report["faces_deleted"] >= 1 and report["photos_indexed"] >= 1
    with running_parts(restored) as env2, backup_module._environ(_stage_env(env2)):
        records, faces, missing = _state(_services(env2))
    _assert_consistent(records, faces, missing)
    assert {"first", "leaving"} <= set(records) and "ghost" not in faces.values()
    assert set(records) <= set(live_records)


def test_a_stopped_stack_is_copied_as_it_is_and_restored(tmp_path, faces_dir):
    data_dir = tmp_path / "live"
    data_dir.mkdir()
    with running_parts(data_dir) as env, backup_module._environ(_stage_env(env)):
        from ops import provision
        provision.for_stage("dev").run()
        services = _services(env)
        _register(services, "p-1", "Kit",
                  (faces_dir / "people" / "kit_harington" / "1.jpg").read_bytes())
        before = _state(services)
        # The school's archive from the running stack, as `local.stack cli` runs it.
        (data_dir / "stack.json").write_text(json.dumps({
            "stage": "dev", "moto_url": env["AWS_ENDPOINT_URL"],
            "faces_url": env["AWS_ENDPOINT_URL_REKOGNITION"]}))
        from local.stack import command
        school = tmp_path / "school.zip"
        assert command.main(["--data-dir", str(data_dir), "cli", "archive", "export",
                             str(school)]) == 0
        with zipfile.ZipFile(school) as archive:
            assert json.loads(archive.read("manifest.json"))["counts"]["people"] == 1
        (data_dir / "stack.json").unlink()
    (data_dir / "logs").mkdir()
    (data_dir / "logs" / "moto.log").write_text("noise")
    archive = backup(data_dir, tmp_path / "stopped.tar", out=io.StringIO())
    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("manifest.json"))["taken"] == \
            "while the stack was stopped"
        assert "data/logs/moto.log" not in tar.getnames()
    restore(archive, tmp_path / "restored", out=io.StringIO())
    with running_parts(tmp_path / "restored") as env2, \
            backup_module._environ(_stage_env(env2)):
        after = _state(_services(env2))
    assert after == before
    _assert_consistent(*after)


def test_restore_refuses_a_newer_archive_and_a_data_dir_in_use(tmp_path):
    newer = tmp_path / "newer.tar"
    with tarfile.open(newer, "w") as tar:
        data = json.dumps({"format": backup_module.FORMAT, "version": backup_module.VERSION + 1,
                           "written_by": "rollcall stack backup 99"}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BackupError, match="rollcall stack backup 99.*update Rollcall first"):
        restore(newer, tmp_path / "empty")
    assert not (tmp_path / "empty").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "moto").mkdir()
    with pytest.raises(BackupError, match="not empty"):
        restore(newer, used)
    assert backup_module.main(["--data-dir", str(tmp_path / "empty"), "restore",
                               str(newer)]) == 2
