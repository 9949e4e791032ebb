"""Back up the one-machine stack's data directory, and restore it.

    python -m local.stack.backup backup  [--data-dir .rollcall] [FILE.tar]   (make backup)
    python -m local.stack.backup restore [--data-dir .rollcall] FILE.tar     (make restore)

A backup is one tar file: ``manifest.json`` (format :data:`FORMAT`, its
:data:`VERSION`, what wrote it, the moto version, the stage, when) and the
data directory's files under ``data/``: the AWS state (``moto/``: the
snapshot and the S3 bodies it names), the face engine's collections and jobs
(``faces/``), and any other part's files (converter jobs...). Logs, the built
site and the running stack's own files are left out.

While the stack runs, the moto server snapshots on request (``POST
/_rollcall/backup``): requests wait only while the state is pickled, as for
its periodic snapshots, and the copy is that one instant's state. The face
engine writes each collection and job as a whole file (renamed into place),
so each is copied whole; it is copied after the AWS state, so the only
difference between the two is what a registration or deletion in flight did
to the faces: a face indexed for a record not yet written, or faces deleted
of a person whose record was still there. Restore settles both the way the
app would (:func:`reconcile`): a face no record names is deleted, a record's
photo whose face is missing is indexed again. So a restored stack has no
face without its record and no record without its photo and faces.

With no stack running, the data directory is copied as it is (its lock is
held meanwhile, so no stack starts during the copy).

Restore unpacks into an empty (or missing) data directory, refuses an archive
a newer version wrote, then starts the AWS state and the face engine on the
restored directory for a moment to reconcile them, and stops them.
"""
import argparse
import contextlib
import datetime
import fcntl
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request

FORMAT = "rollcall-stack-backup"
#: Raise when the layout of the data directory changes in a way older code cannot read.
VERSION = 1
WRITTEN_BY = f"rollcall stack backup {VERSION}"
#: Not data: rebuilt or rewritten at every start.
SKIP_DIRS = {"logs", "site"}
SKIP_FILES = {".lock", "stack.json", "aws-config-none", "aws-credentials-none"}
HOST = "127.0.0.1"


class BackupError(RuntimeError):
    """The backup or restore cannot be done; the message says what to do."""


def _default_data_dir():
    from ops.stage_config import PROJECT_DIR
    return PROJECT_DIR / ".rollcall"


# -- backup -------------------------------------------------------------------------
def _running_stack(data_dir):
    """The running stack's state (``stack.json``), or None when none runs there."""
    path = data_dir / "stack.json"
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    try:
        urllib.request.urlopen(state["moto_url"] + "/_rollcall/state", timeout=5).read()
    except OSError:
        return None  # left behind by a stack that died
    return state


def _data_files(data_dir, skip_top=()):
    """(path, name in the archive) of every data file, temporary files aside."""
    for root, dirs, files in os.walk(data_dir):
        rel = pathlib.Path(root).relative_to(data_dir)
        if rel == pathlib.Path("."):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and d not in skip_top]
            files = [f for f in files if f not in SKIP_FILES]
        elif rel.parts[0] == "moto":
            dirs[:] = [d for d in dirs if not d.startswith("backup-")]
        dirs.sort()
        for name in sorted(files):
            if name.startswith("."):  # half-written temporary files
                continue
            yield pathlib.Path(root) / name, "data/" + (rel / name).as_posix()


def _add_file(tar, path, name):
    """Add one file as it is now (read once: a file renamed over meanwhile is
    either wholly the old or wholly the new one)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return False  # removed meanwhile (a finished job, an old journal)
    with handle:
        info = tar.gettarinfo(fileobj=handle, arcname=name)
        info.mode = 0o600
        tar.addfile(info, handle)
    return True


def backup(data_dir, out_path=None, out=sys.stdout):
    """Write one archive of ``data_dir``; answers its path."""
    data_dir = pathlib.Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise BackupError(f"there is no data directory {data_dir} (start the stack once "
                          "with make run, or give --data-dir)")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_path = pathlib.Path(out_path or f"rollcall-backup-{stamp}.tar").resolve()
    import moto
    manifest = {"format": FORMAT, "version": VERSION, "written_by": WRITTEN_BY,
                "moto": moto.__version__, "created_at": stamp}
    state = _running_stack(data_dir)
    part = out_path.with_name(out_path.name + ".part")
    with contextlib.ExitStack() as stack:
        if state is None:
            stack.enter_context(_locked(data_dir))
            manifest.update(stage=_stage_of(data_dir), taken="while the stack was stopped")
            moto_copy = None
        else:
            started = time.monotonic()
            request = urllib.request.Request(state["moto_url"] + "/_rollcall/backup",
                                             data=b"", method="POST")
            answer = json.loads(urllib.request.urlopen(request, timeout=600).read())
            moto_copy = pathlib.Path(answer["dir"])
            stack.callback(shutil.rmtree, moto_copy, True)
            print(f"AWS state snapshotted in {time.monotonic() - started:.2f} s", file=out)
            manifest.update(stage=state.get("stage", "dev"), taken="while the stack ran")
        with tarfile.open(part, "w") as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mode, info.mtime = len(data), 0o600, time.time()
            tar.addfile(info, io.BytesIO(data))
            count = 0
            if moto_copy is not None:
                for path, name in _data_files(moto_copy):
                    count += _add_file(tar, path, "data/moto/" + name[len("data/"):])
            for path, name in _data_files(data_dir,
                                          skip_top=("moto",) if moto_copy else ()):
                count += _add_file(tar, path, name)
        os.replace(part, out_path)
    print(f"wrote {out_path} ({count} files, {out_path.stat().st_size} bytes)", file=out)
    return out_path


@contextlib.contextmanager
def _locked(data_dir):
    """The data directory's lock (a starting stack takes it too)."""
    with open(data_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"a stack is starting or stopping on {data_dir}; try again "
                              "in a moment")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stage_of(data_dir):
    try:
        return json.loads((data_dir / "stack.json").read_text()).get("stage", "dev")
    except (OSError, ValueError):
        return "dev"


# -- restore ------------------------------------------------------------------------
def read_manifest(tar):
    try:
        manifest = json.load(tar.extractfile("manifest.json"))
    except (KeyError, ValueError) as error:
        raise BackupError(f"this is not a Rollcall stack backup ({error})")
    from ops.archive import checked_manifest
    return checked_manifest(manifest, FORMAT, VERSION, BackupError, "Rollcall stack backup")


def restore(archive, data_dir, out=sys.stdout, reconcile_parts=True):
    """Unpack ``archive`` into the empty ``data_dir`` and reconcile; answers the report."""
    data_dir = pathlib.Path(data_dir).resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore only into an empty data "
                          "directory (move the old one aside, or give --data-dir)")
    try:
        tar = tarfile.open(archive)
    except (OSError, tarfile.TarError) as error:
        raise BackupError(f"{archive} cannot be read as a backup ({error})")
    with tar:
        manifest = read_manifest(tar)
        import moto
        if manifest.get("moto") != moto.__version__:
            print(f"note: written with moto {manifest.get('moto')}, this is moto "
                  f"{moto.__version__}; if the AWS state does not load, install that moto",
                  file=out)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for member in tar.getmembers():
            if member.name == "manifest.json":
                continue
            relative = pathlib.PurePosixPath(member.name)
            if (not member.isfile() or relative.parts[0] != "data" or ".." in relative.parts
                    or relative.is_absolute()):
                raise BackupError(f"{archive} holds an unexpected entry {member.name!r}")
            target = data_dir.joinpath(*relative.parts[1:])
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
            os.chmod(target, 0o600)
    print(f"restored {archive} ({manifest.get('taken')}, {manifest.get('created_at')}) "
          f"into {data_dir}", file=out)
    report = {}
    if reconcile_parts:
        with running_parts(data_dir) as env:
            report = reconcile(manifest.get("stage", "dev"), env, out=out)
    return report


def _free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _environment(moto_url, faces_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL=moto_url,
               AWS_ENDPOINT_URL_REKOGNITION=faces_url,
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


@contextlib.contextmanager
def running_parts(data_dir, timeout=120):
    """The AWS state and the face engine of ``data_dir``, on free ports, for a moment.

    Yields the environment that points boto3 at them; stops them after
    (moto saves its state as it stops)."""
    from ops.stage_config import PROJECT_DIR
    ports = {"moto": _free_port(), "faces": _free_port()}
    urls = {name: f"http://{HOST}:{port}" for name, port in ports.items()}
    env = _environment(urls["moto"], urls["faces"])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_DIR),
                                                      os.environ.get("PYTHONPATH")]))
    commands = {
        "moto": ["local.stack.moto_state", "--host", HOST, "--port", ports["moto"],
                 "--state-dir", data_dir / "moto"],
        "faces": ["local.engine.rekognition_server", "--host", HOST, "--port",
                  ports["faces"], "--data-dir", data_dir / "faces"]}
    processes = []
    try:
        for name, command in commands.items():
            log = open(data_dir / f".restore-{name}.log", "wb")
            processes.append((subprocess.Popen([sys.executable, "-m", *map(str, command)],
                                               env=env, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=PROJECT_DIR), log))
        deadline = time.monotonic() + timeout
        for port in ports.values():
            while True:
                with socket.socket() as sock:
                    if sock.connect_ex((HOST, port)) == 0:
                        break
                if time.monotonic() > deadline or any(p.poll() is not None
                                                      for p, _ in processes):
                    raise BackupError("the restored AWS state or face collections could not "
                                      f"be started; see {data_dir}/.restore-*.log")
                time.sleep(0.2)
        yield env
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.terminate()
        for process, log in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
    for name in commands:
        (data_dir / f".restore-{name}.log").unlink(missing_ok=True)


@contextlib.contextmanager
def _environ(env):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def reconcile(stage, env, out=None):
    """Make faces and records agree (see the module docstring); answers what it did."""
    from chalicelib.clients import ClientFactory
    from chalicelib.dynamo import to_dynamo
    from chalicelib.faces import FaceCollection
    from ops.scanning import scan_all
    from chalicelib.settings import load_settings
    from ops.archive import index_photos, object_exists, stored_faces
    from ops.stage_config import stage_environment
    report = {"faces_deleted": 0, "photos_indexed": 0, "photos_missing": 0}
    with _environ(dict(stage_environment(stage), **env)):
        settings = load_settings()
        clients = ClientFactory(region=settings.region)
        rekognition = clients.client("rekognition")
        s3 = clients.client("s3")
        faces = FaceCollection(rekognition, settings.face_collection,
                               match_threshold=settings.match_threshold)
        table = clients.table(settings.students_table)
        records = {item["student_id"]: item for item in scan_all(table)}
        stored = {face["FaceId"]: face.get("ExternalImageId")
                  for face in stored_faces(rekognition, settings.face_collection)}
        named = {face_id: student_id for student_id, item in records.items()
                 for face_id in item.get("face_ids") or []}
        strays = [f for f, owner in stored.items() if named.get(f) != owner]
        if strays:
            faces.delete(strays)
            report["faces_deleted"] = len(strays)

        def present(key):
            if object_exists(s3, settings.photos_bucket, key):
                return True
            report["photos_missing"] += 1
            return False

        for student_id, item in records.items():
            keys = list(item.get("photo_keys") or [])
            have = [f for f in item.get("face_ids") or [] if stored.get(f) == student_id]
            if len(have) == len(item.get("face_ids") or []) and all(
                    object_exists(s3, settings.photos_bucket, k) for k in keys):
                continue
            # Settle this person from their photos: those there, each indexed anew.
            faces.delete(have)
            fields = index_photos(faces, settings.photos_bucket, student_id, keys,
                                  present=present)
            report["photos_indexed"] += len(fields["photo_keys"])
            if not fields["photo_keys"]:
                # Nothing left to recognise them by: the deletion in flight wins.
                table.delete_item(Key={"student_id": student_id})
                report.setdefault("records_deleted", []).append(student_id)
                continue
            table.update_item(Key={"student_id": student_id},
                              UpdateExpression="SET photo_keys = :k, face_ids = :f, "
                                               "face_boxes = :b",
                              ExpressionAttributeValues=to_dynamo({
                                  ":k": fields["photo_keys"], ":f": fields["face_ids"],
                                  ":b": fields["face_boxes"]}))
    if out is not None:
        print("faces and records agree: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v
                                                       in report.items()), file=out)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.stack.backup",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("ROLLCALL_DATA_DIR"),
                        help="the stack's data directory (default .rollcall)")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("backup", help="write one archive of the data directory")
    make.add_argument("file", nargs="?", help="default rollcall-backup-<UTC time>.tar")
    back = commands.add_parser("restore", help="restore an archive into an empty data dir")
    back.add_argument("file")
    args = parser.parse_args(argv)
    data_dir = pathlib.Path(args.data_dir or _default_data_dir())
    try:
        if args.command == "backup":
            backup(data_dir, args.file)
        else:
            restore(args.file, data_dir)
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
