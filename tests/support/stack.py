"""Helpers to run the local stack (or parts of it) as real processes in tests.

    from tests.support.stack import running_stack
    with running_stack(tmp_path) as stack:        # free ports, tmp data dir
        requests.get(stack.api_url + "/health")

Everything binds 127.0.0.1 and every request goes there. Every wait here
has a timeout: a part that never answers fails the test, it never hangs the
run. The browser tests
of the site use :func:`running_stack` too; :func:`presigned_post` sends a
file the way the site's upload form does.
"""
import contextlib
import dataclasses
import io
import os
import pathlib
import socket
import subprocess
import sys
import time

import requests

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def free_port():
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def free_ports(names):
    """``{name: port}``, all different."""
    socks, ports = [], {}
    try:
        for name in names:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            socks.append(sock)
            ports[name] = sock.getsockname()[1]
    finally:
        for sock in socks:
            sock.close()
    return ports


def is_listening(port, host=HOST):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Poll ``predicate`` until it answers something true; that answer, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def presigned_post(upload, data, filename, content_type, origin=None):
    """POST a file to a presigned-POST ``upload`` ({url, fields}) as a browser form does."""
    headers = {"Origin": origin} if origin else {}
    files = {"file": (filename, io.BytesIO(data), content_type)}
    return requests.post(upload["url"], data=upload["fields"], files=files,
                         headers=headers, timeout=60)


def aws_env(endpoint_url):
    """Environment for a boto3 client talking to a local moto server."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") or k in ("AWS_CA_BUNDLE",)}
    env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
               AWS_ENDPOINT_URL=endpoint_url)
    return env


def boto_client(service, endpoint_url):
    import boto3
    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def _pdeathsig():
    from local.stack.processes import _SET_PDEATHSIG
    return _SET_PDEATHSIG


class MotoProcess:
    """``python -m local.stack.moto_state`` on a free port, state in ``state_dir``."""

    def __init__(self, state_dir, port=None, interval=0.5):
        self.state_dir = pathlib.Path(state_dir)
        self.port = port or free_port()
        self.interval = interval
        self.proc = None
        self.log = self.state_dir.parent / f"moto-{self.port}.log"

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def start(self, timeout=30):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.stack.moto_state", "--port", str(self.port),
             "--state-dir", str(self.state_dir), "--interval", str(self.interval)],
            cwd=PROJECT_DIR, stdout=self._log_handle, stderr=subprocess.STDOUT,
            preexec_fn=_pdeathsig())  # no orphan server if the test run dies
        wait_for(lambda: self.proc.poll() is not None or is_listening(self.port), timeout,
                 what="moto server")
        if self.proc.poll() is not None:
            raise RuntimeError(f"moto server exited: {self.log.read_text()}")
        return self

    def stop(self, timeout=30):
        """SIGTERM (a final snapshot) and wait; the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_handle.close()
        return self.proc.returncode

    def kill(self, timeout=30):
        """SIGKILL and wait (a process stuck in the kernel past ``timeout``: TimeoutExpired)."""
        self.proc.kill()
        self.proc.wait(timeout)
        self._log_handle.close()


@contextlib.contextmanager
def running_moto(state_dir, **kwargs):
    moto = MotoProcess(state_dir, **kwargs).start()
    try:
        yield moto
    finally:
        moto.stop()


class CapturedOutput:
    """A terminal stand-in: keeps what the stack printed, and copies it to a file."""

    def __init__(self, path):
        import threading
        self._lock = threading.Lock()
        self._chunks = []
        self._file = open(path, "a", encoding="utf-8")

    def write(self, text):
        with self._lock:
            self._chunks.append(text)
            self._file.write(text)

    def flush(self):
        with self._lock:
            self._file.flush()

    def text(self):
        with self._lock:
            return "".join(self._chunks)

    def close(self):
        with self._lock:
            self._file.close()


def make_stack(data_dir, **kwargs):
    """A :class:`local.stack.Stack` on free ports in ``data_dir`` (not started).

    What it prints is kept in ``stack.out.text()`` and in ``<data_dir>/terminal.txt``.
    """
    from local.stack.launcher import Ports, Stack

    data_dir = pathlib.Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("bridge_wait_seconds", 1)
    return Stack(data_dir, ports=Ports(**free_ports([f.name for f in dataclasses.fields(Ports)])),
                 out=CapturedOutput(data_dir / "terminal.txt"), **kwargs)


@contextlib.contextmanager
def running_stack(data_dir, **kwargs):
    """The whole stack as real processes on free ports; stopped on leaving.

    Yields the :class:`local.stack.Stack`: ``.site_url``, ``.api_url``,
    ``.first_admin`` ({email, password} on a fresh data dir), ``.add_user(email,
    password, role)``, ``.out.text()`` (what it printed).
    """
    stack = make_stack(data_dir, **kwargs)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


class SiteClient:
    """What the site's JavaScript does: JSON calls to the API from the site's origin."""

    def __init__(self, api_url, origin):
        self.api_url = api_url
        self.origin = origin
        self.token = None

    def call(self, method, path, body=None, expect=200):
        headers = {"Origin": self.origin}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        answer = requests.request(method, self.api_url + path, json=body, headers=headers,
                                  timeout=60)
        assert answer.status_code == expect, (method, path, answer.status_code, answer.text)
        # The API lets the site (and only the site) read its answers.
        assert answer.headers.get("Access-Control-Allow-Origin") == self.origin
        return answer.json() if answer.content else None

    def sign_in(self, email, password):
        self.token = self.call("POST", "/auth/login",
                               {"email": email, "password": password})["token"]
        return self

    def upload(self, upload, data, filename, content_type):
        # The site's XHR watches upload progress, which makes the browser preflight.
        preflight = requests.options(upload["url"], timeout=10, headers={
            "Origin": self.origin, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["Access-Control-Allow-Origin"] == self.origin
        answer = presigned_post(upload, data, filename, content_type, origin=self.origin)
        assert answer.status_code in (200, 201, 204), answer.text
        assert answer.headers.get("Access-Control-Allow-Origin") == self.origin
