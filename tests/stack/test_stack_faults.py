"""The one-machine stack under faults: crashes of every part, of one part, of the engine.

Real processes on free ports in a temporary data dir (see tests/stack_support.py).
"""
import os
import signal

import pytest
import requests

pytestmark = [pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]

from tests.support.stack import SiteClient, boto_client, make_stack, presigned_post, wait_for


class Api(SiteClient):
    """JSON calls to the stack's API as the site makes them, and a registration."""

    def __init__(self, stack):
        super().__init__(stack.api_url, stack.site_url)

    def register(self, student_id, name, photo_bytes, expect=201):
        answer = self.call("POST", "/uploads/photo", {"content_type": "image/jpeg"})
        sent = presigned_post(answer["upload"], photo_bytes, "photo.jpg", "image/jpeg",
                              origin=self.origin)
        assert sent.status_code in (200, 201, 204), sent.text
        return answer["photo_key"], self.call("POST", "/students", {
            "student_id": student_id, "full_name": name,
            "photo_key": answer["photo_key"]}, expect=expect)


def _kill_everything(stack):
    """SIGKILL every part (and anything it started) at the same moment: a power cut."""
    groups = [part.proc.pid for part in stack.parts if part.running()]
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for part in stack.parts:
        if part.proc is not None:
            part.proc.wait(10)


def test_a_registration_answered_201_survives_every_process_killed_at_once(tmp_path, faces_dir):
    data_dir = tmp_path / "data"
    stack = make_stack(data_dir)
    stack.start()
    try:
        admin = stack.first_admin
        api = Api(stack).sign_in(admin["email"], admin["password"])
        photo = (faces_dir / "people/barack_obama/1.jpg").read_bytes()
        photo_key, answer = api.register("S-0001", "Barack Obama", photo)
        assert answer["student"]["face_count"] == 1
        # No pause: the crash comes right after the answer.
        _kill_everything(stack)
    finally:
        stack.stop()  # releases the data dir; every part is already gone

    stack = make_stack(data_dir)
    stack.start()
    try:
        api = Api(stack).sign_in(admin["email"], admin["password"])
        students = api.call("GET", "/students")["students"]
        assert [s["student_id"] for s in students] == ["S-0001"]
        assert requests.get(students[0]["photo_url"], timeout=10).content == photo
        # The upload the registration moved away did not come back.
        s3 = boto_client("s3", stack.moto_url)
        env = stack.environment()
        left = s3.list_objects_v2(Bucket=env["PHOTOS_BUCKET"], Prefix=photo_key)
        assert left["KeyCount"] == 0
        # The face is there, and belongs to a student who exists.
        rekognition = boto_client("rekognition", stack.faces_url)
        faces = rekognition.list_faces(CollectionId=env["FACE_COLLECTION"])["Faces"]
        assert [f["ExternalImageId"] for f in faces] == ["S-0001"]
        _, refused = api.register("S-0002", "Someone Else",
                                  (faces_dir / "people/barack_obama/2.jpg").read_bytes(),
                                  expect=409)
        assert refused["error"]["details"]["student_id"] == "S-0001"
    finally:
        stack.stop()


def _children(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_engine_is_restarted_leaves_no_worker_and_its_session_ends_retryable(
        tmp_path, faces_dir):
    from tests.support.video_maker import make_video

    data_dir = tmp_path / "data"
    video = tmp_path / "long.mp4"
    make_video(str(video), [{"image": str(faces_dir / "people/rose_leslie/2.jpg"),
                             "label": "x", "start_s": 0.0, "end_s": 40.0, "x": 40, "y": 40,
                             "height": 120, "drift": 3}],
               size=(640, 360), fps=10, duration_s=40.0)
    stack = make_stack(data_dir, extra_env={"PROCESSING_CHECK_SECONDS": "2"})
    stack.start()
    try:
        admin = stack.first_admin
        api = Api(stack).sign_in(admin["email"], admin["password"])
        created = api.call("POST", "/sessions", {"title": "Long", "content_type": "video/mp4"},
                           expect=201)
        session_id = created["session"]["session_id"]
        sent = presigned_post(created["upload"], video.read_bytes(), "long.mp4", "video/mp4",
                              origin=stack.site_url)
        assert sent.status_code in (200, 201, 204), sent.text
        faces = next(part for part in stack.parts if part.name == "faces")
        engine = faces.proc.pid
        # Analysing: the engine has started its worker processes.
        workers = wait_for(lambda: _children(engine), 120, interval=0.2,
                           what="the engine's worker processes")
        os.kill(engine, signal.SIGKILL)
        # The launcher sees it, kills what it left (the workers) and starts it again.
        wait_for(lambda: faces.proc.pid != engine and faces.running(), 60,
                 what="the engine to be started again")
        wait_for(lambda: not any(_alive(pid) for pid in workers), 30,
                 what="the orphaned workers to be gone")
        assert all(part.running() for part in stack.parts if part.name != "provision")
        assert "faces stopped unexpectedly" in stack.out.text()

        def ended():
            session = api.call("GET", f"/sessions/{session_id}")["session"]
            return session if session["status"] != "PROCESSING" else None
        session = wait_for(ended, 120, interval=1, what="the session to leave PROCESSING")
        assert session["status"] == "FAILED" and session["error_kind"] == "retry", session
        # And it can be retried: the face search starts again.
        api.call("POST", f"/sessions/{session_id}/retry", expect=202)
    finally:
        stack.stop()
    assert not any(_alive(pid) for pid in workers)
