"""The whole of Rollcall on one machine, driven over HTTP only, as the browser does.

Real processes on free ports in a temporary data dir: moto, the face
endpoint, provisioning, the event bridge, the API and the site. The test
signs in with the admin the first start printed, registers four people from
real photos through presigned uploads, uploads a generated video showing
three of them, waits for the attendance, then stops everything, starts
again (through ``python -m local.stack``, as ``make run`` does) on the same
data, finds it all again, and stops that with Ctrl-C (SIGINT).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from local.stack.command import main as stack_main
from local.stack.launcher import Stack
from local.stack.processes import StackError
from tests.support.stack import (PROJECT_DIR, SiteClient, is_listening, make_stack,
                                 wait_for)

pytestmark = pytest.mark.stack

# (student_id, full name, registration photo, photo shown in the video or None)
PEOPLE = [
    ("S-0001", "Barack Obama", "barack_obama/1.jpg", "barack_obama/2.jpg"),
    ("S-0002", "Rose Leslie", "rose_leslie/1.jpg", "rose_leslie/2.jpg"),
    ("S-0003", "Alex Lacamoire", "alex_lacamoire/1.jpg", "alex_lacamoire/2.jpg"),
    ("S-0004", "Joe Biden", "joe_biden/2.jpg", None),  # registered, not in the video
]
PROCESSING_TIMEOUT_S = 150
READY = re.compile(r"^stack +\| ready in [0-9.]+ s")


def _make_video(path, faces_dir):
    from tests.support.video_maker import make_video

    shown = [p for p in PEOPLE if p[3]]
    appearances = [{"image": str(faces_dir / "people" / photo), "label": student_id,
                    "start_s": 0.3 + 0.4 * i, "end_s": 4.5, "x": 20 + 210 * i, "y": 50,
                    "height": 100, "drift": 3}
                   for i, (student_id, _, _, photo) in enumerate(shown)]
    make_video(str(path), appearances, size=(640, 360), fps=10, duration_s=5.0)
    return path.read_bytes()


#: Row fields that are links signed at the time of asking (they differ on every read).
_SIGNED_LINKS = ("photo_url", "crops")


def _attendance(browser, session_id):
    detail = browser.call("GET", f"/sessions/{session_id}")
    return detail["session"], {row["student_id"]: {k: v for k, v in row.items()
                                                   if k not in _SIGNED_LINKS}
                               for row in detail["attendance"]}


def _ports_closed(ports):
    return not any(is_listening(port) for port in vars(ports).values())


@pytest.mark.engine
@pytest.mark.slow
def test_rollcall_end_to_end_and_after_a_restart(tmp_path, faces_dir):
    data_dir = tmp_path / "data"
    stack = make_stack(data_dir)
    stack.start()
    try:
        admin = stack.first_admin
        assert admin and admin["password"] in stack.out.text()
        browser = SiteClient(stack.api_url, stack.site_url)
        assert "apiBaseUrl" in requests.get(stack.site_url + "/config.js", timeout=10).text
        browser.sign_in(admin["email"], admin["password"])
        # The browser's preflight for an authorised JSON call from the site.
        preflight = requests.options(stack.api_url + "/students", timeout=10, headers={
            "Origin": stack.site_url, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == stack.site_url

        # Register four people, each photo sent straight to S3 with a presigned POST.
        photos = {}
        for student_id, full_name, photo, _ in PEOPLE:
            data = (faces_dir / "people" / photo).read_bytes()
            photos[student_id] = data
            answer = browser.call("POST", "/uploads/photo", {"content_type": "image/jpeg"})
            browser.upload(answer["upload"], data, "photo.jpg", "image/jpeg")
            student = browser.call("POST", "/students", {
                "student_id": student_id, "full_name": full_name,
                "photo_key": answer["photo_key"]}, expect=201)["student"]
            assert student["face_count"] == 1
        assert [s["student_id"] for s in browser.call("GET", "/students")["students"]] == \
            ["S-0003", "S-0001", "S-0004", "S-0002"]  # by name

        # A recorded class showing three of them.
        video = _make_video(tmp_path / "class.mp4", faces_dir)
        created = browser.call("POST", "/sessions", {
            "title": "Week 1 seminar", "course": "E2E-101", "date": "2026-11-20",
            "content_type": "video/mp4"}, expect=201)
        session_id = created["session"]["session_id"]
        browser.upload(created["upload"], video, "class.mp4", "video/mp4")

        def finished():
            session, _ = _attendance(browser, session_id)
            return session if session["status"] in ("COMPLETED", "FAILED") else None
        session = wait_for(finished, PROCESSING_TIMEOUT_S, interval=1,
                           what="the face search to finish")
        assert session["status"] == "COMPLETED", session["error"]
        session, rows = _attendance(browser, session_id)
        expected = {sid: ("PRESENT" if shown else "ABSENT") for sid, _, _, shown in PEOPLE}
        assert {sid: row["status"] for sid, row in rows.items()} == expected
        for sid, row in rows.items():
            if expected[sid] == "PRESENT":
                assert row["similarity"] >= 80 and row["sightings"] >= 2
                assert 0 <= row["first_seen_ms"] <= row["last_seen_ms"] <= 5000
        assert session["counts"]["present"] == 3 and session["counts"]["absent"] == 1

        # A second stack on the same data is refused while this one runs.
        other = make_stack(data_dir)
        with pytest.raises(StackError, match="another Rollcall stack is using"):
            other.start()
    finally:
        stack.stop()
    ports = stack.ports
    assert _ports_closed(ports), "a part still listens after stop()"
    assert len(stack.parts) == 7 and not any(part.running() for part in stack.parts)

    # Start again the way `make run` does, on the same data and ports.
    process = _start(data_dir, ports)
    output = []
    try:
        deadline = time.monotonic() + 120
        for line in process.stdout:
            output.append(line)
            if READY.search(line) or time.monotonic() > deadline:
                break
        assert any(READY.search(line) for line in output), "".join(output)
        printed = "".join(output)
        assert admin["password"] not in printed
        assert "admin account(s): " + admin["email"] in printed
        assert f"local.stack --data-dir {data_dir} cli user set-password {admin['email']}" \
            in printed

        browser = SiteClient(f"http://127.0.0.1:{ports.api}", f"http://127.0.0.1:{ports.site}")
        browser.sign_in(admin["email"], admin["password"])
        students = browser.call("GET", "/students")["students"]
        assert sorted(s["student_id"] for s in students) == sorted(photos)
        for student in students:  # the photos themselves came back from disk
            assert requests.get(student["photo_url"], timeout=10).content == \
                photos[student["student_id"]]
        sessions = browser.call("GET", "/sessions")["sessions"]
        assert [(s["session_id"], s["status"]) for s in sessions] == [(session_id, "COMPLETED")]
        again, rows_again = _attendance(browser, session_id)
        assert rows_again == rows and again["counts"] == session["counts"]
        # The face collection came back too: Obama's face is still known.
        answer = browser.call("POST", "/uploads/photo", {"content_type": "image/jpeg"})
        browser.upload(answer["upload"], (faces_dir / "people/barack_obama/4.jpg").read_bytes(),
                       "photo.jpg", "image/jpeg")
        refused = browser.call("POST", "/students", {
            "student_id": "S-0099", "full_name": "Someone Else",
            "photo_key": answer["photo_key"]}, expect=409)
        assert refused["error"]["code"] == "face_already_registered"
        assert refused["error"]["details"]["student_id"] == "S-0001"
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = process.communicate(timeout=90)
        output.append(rest)
    assert process.returncode == 0, "".join(output)
    assert _ports_closed(ports), "a part still listens after Ctrl-C"

    # Logs of every part are on disk, and no password is in any of them.
    logs = {path.name: path.read_text() for path in (data_dir / "logs").iterdir()}
    assert {"stack.log", "moto.log", "faces.log", "provision.log", "bridge.log", "api.log",
            "site.log"} <= set(logs)
    assert "saved the AWS state" in logs["moto.log"]
    assert not any(admin["password"] in text for text in logs.values())


# -- failing at once, saying what to do -------------------------------------------------
def test_a_taken_port_fails_at_once_and_says_what_to_do(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = make_stack(tmp_path / "data")
        stack.ports.api = taken.getsockname()[1]
        with pytest.raises(StackError) as error:
            stack.start()
    message = str(error.value)
    assert f"port {stack.ports.api}" in message and "--api-port" in message
    assert "ROLLCALL_API_PORT" in message
    assert stack.parts == []  # nothing was started
    assert not any(is_listening(port) for port in
                   (stack.ports.site, stack.ports.moto, stack.ports.faces))


def test_a_missing_part_fails_at_once_and_says_what_to_do(tmp_path):
    stack = make_stack(tmp_path / "data", faces_module="local.no_such_face_endpoint")
    with pytest.raises(StackError, match=r"local\.no_such_face_endpoint.*\n.*make install"):
        stack.start()
    assert stack.parts == []


def test_command_line_rejects_bad_settings_with_a_message(tmp_path, capsys, monkeypatch):
    def start(stack):
        # A setting let through would run the stack until Ctrl-C: fail instead.
        raise AssertionError("the bad setting was not refused: the stack was started")
    monkeypatch.setattr(Stack, "start", start)
    monkeypatch.setenv("ROLLCALL_SITE_PORT", "not-a-port")
    assert stack_main(["--data-dir", str(tmp_path)]) == 2
    assert "ROLLCALL_SITE_PORT must be a port number" in capsys.readouterr().err
    monkeypatch.delenv("ROLLCALL_SITE_PORT")
    assert stack_main(["--data-dir", str(tmp_path), "--api-port", "80"]) == 2
    assert "--api-port must be between 1024 and 65535" in capsys.readouterr().err
    assert stack_main(["--data-dir", str(tmp_path), "cli", "user", "list"]) == 1
    assert re.search(r"no Rollcall stack is running on .*make run", capsys.readouterr().err)


def test_unreadable_saved_state_stops_the_start_and_says_what_to_do(tmp_path):
    stack = make_stack(tmp_path / "data")
    (tmp_path / "data" / "moto").mkdir(parents=True)
    (tmp_path / "data" / "moto" / "moto-state.pickle").write_bytes(b"not a snapshot")
    with pytest.raises(StackError, match=r"(?s)moto stopped while starting.*move the folder"):
        stack.start()
    # Whatever had started (moto and the face endpoint) was stopped again.
    assert {part.name for part in stack.parts} == {"moto", "faces"}
    assert not any(part.running() for part in stack.parts)
    assert _ports_closed(stack.ports)


def _start(data_dir, ports):
    """``python -m local.stack`` as ``make run`` runs it (no ROLLCALL_* from our env)."""
    argv = [sys.executable, "-m", "local.stack", "--data-dir", str(data_dir)]
    for name, port in vars(ports).items():
        argv += [f"--{name}-port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLCALL_")}
    return subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _launch(data_dir, ports):
    """:func:`_start`, with its output as a line queue."""
    import queue
    import threading

    process = _start(data_dir, ports)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    return process, lines


def _read_until(lines, pattern, timeout):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except Exception:
            continue
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def test_sigterm_while_starting_stops_what_had_started(tmp_path):
    stack = make_stack(tmp_path / "data")  # for its free ports
    process, lines = _launch(tmp_path / "data", stack.ports)
    _read_until(lines, r"^moto +\| listening on", 60)
    process.terminate()
    assert process.wait(120) == 0  # a bound, not a speed check: the machine may be busy
    assert _ports_closed(stack.ports)


@pytest.mark.slow
def test_a_part_that_dies_is_started_again(tmp_path):
    stack = make_stack(tmp_path / "data")
    process, lines = _launch(tmp_path / "data", stack.ports)
    try:
        _read_until(lines, READY.pattern, 120)
        state = json.loads((tmp_path / "data" / "stack.json").read_text())
        assert set(state["parts"]) == {"moto", "faces", "convert", "bridge", "api", "site"}
        os.kill(state["parts"]["api"], signal.SIGKILL)
        printed = _read_until(lines, r"api stopped unexpectedly.*starting it again", 60)
        api = f"http://127.0.0.1:{stack.ports.api}/health"

        def answers():
            try:
                return requests.get(api, timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_for(answers, 60, what="the API to answer again")
        again = json.loads((tmp_path / "data" / "stack.json").read_text())
        assert again["parts"]["api"] != state["parts"]["api"]
        assert process.poll() is None  # the rest kept running
        process.send_signal(signal.SIGINT)
        code = process.wait(90)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0
    assert "stopping everything" not in printed
    assert _ports_closed(stack.ports)
    assert not (tmp_path / "data" / "stack.json").exists()


def test_a_part_that_keeps_dying_stops_the_whole_stack(tmp_path, monkeypatch):
    from local.stack import launcher

    stack = make_stack(tmp_path / "data")
    part = launcher.Part("api", ["true"], {}, tmp_path, stack.out)
    part.start()
    part.proc.wait(10)
    part.wait_output()
    now = time.monotonic()
    stack.restarts["api"] = [now - 1] * launcher.MAX_RESTARTS
    with pytest.raises(StackError, match="api stopped 6 times within 300 s"):
        stack.restart(part)
