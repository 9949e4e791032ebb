"""The whole of Rollcall on one machine: ``make run`` (``python -m local.stack``).

Starts, all on 127.0.0.1, each part as its own process:

=========  ==========================================  ====================
part       what                                        default port
=========  ==========================================  ====================
moto       S3, DynamoDB, SQS, SNS, SSM, IAM, STS;      8002
           state kept in ``<data>/moto``
faces      the Rekognition-compatible face endpoint;   8003
           collections in ``<data>/faces``
convert    the MediaConvert-compatible converter;      8004
           jobs in ``<data>/convert``
provision  ``ops.provision`` (idempotent), once
bridge     S3/SNS events -> the app's handlers
api        the Chalice app (as ``chalice local``)      8001
site       the built browser app with its config.js    8000
=========  ==========================================  ====================

On the first start it creates an admin account and prints its email and a
generated password, once. Every part's output goes to the terminal prefixed
by its name and to ``<data>/logs/<part>.log``. Ctrl-C or SIGTERM stops every
part (the AWS state is saved as moto stops).

A part that stops on its own is started again (after 1, 2, 4... s; at most
:data:`MAX_RESTARTS` times in :data:`RESTART_WINDOW_S`, then everything
stops, saying why). Each part runs in its own process group, and whatever
it started (the face engine's worker processes) is killed with it: a part
that died never leaves an orphan behind. Ports and the data directory
come from flags or ``ROLLCALL_*`` variables (see ``--help``).

Tests use :class:`Stack` directly (see ``tests/support/stack.py``).

``python -m local.stack cli user set-password EMAIL`` runs the user CLI
(``ops.cli``) against a running stack.
"""
import collections
import dataclasses
import fcntl
import importlib.util
import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time

from local import priority
from local.stack.processes import (HOST, Part, StackError, _http_ok, _listening,
                                    port_is_free)
from ops.stage_config import PROJECT_DIR, stage_environment

DEFAULT_DATA_DIR = PROJECT_DIR / ".rollcall"
DEFAULT_ADMIN_EMAIL = "admin@rollcall.local"
REGION = "us-east-1"
#: A part that stops on its own is restarted at most this often in this window.
MAX_RESTARTS, RESTART_WINDOW_S = 5, 300.0
#: Niceness of the face engine's video workers, and of their sessions as
#: scheduling groups (local/priority.py): while a video is analysed, the site's
#: requests to the API and moto, and the engine's photo answers (a
#: registration), get the CPU first and the analysis takes what is left (all
#: of it when nobody is using the site).
BACKGROUND_NICENESS = 19
#: Parts that run for as long as the stack does (provisioning runs once).
LONG_RUNNING = ("moto", "faces", "convert", "bridge", "api", "site")

#: Python modules each part needs, with the package that provides them.
REQUIRED_MODULES = {
    "moto": "moto[server]", "flask": "moto[server]", "flask_cors": "moto[server]",
    "chalice": "chalice", "boto3": "boto3", "jinja2": "Jinja2", "sass": "libsass",
    "dlib": "dlib-bin", "face_recognition_models": "face-recognition-models",
    "threadpoolctl": "threadpoolctl", "numpy": "numpy", "cv2": "opencv-python-headless",
    "av": "av", "mtcnn": "mtcnn", "joblib": "joblib", "lz4": "lz4",
}
#: Modules of this repository each part runs.
#: The bridge's queue for the app's MediaConvert job-state handler (see bridge.Route).
CONVERSION_EVENTS_QUEUE = "rollcall-local-events-on_conversion_event"

REQUIRED_PARTS = ("local.stack.moto_state", "local.engine.rekognition_server",
                  "local.convert.server", "local.stack.bridge",
                  "local.stack.api_server", "local.stack.site_server", "ops.provision")


@dataclasses.dataclass
class Ports:
    site: int = 8000
    api: int = 8001
    moto: int = 8002
    faces: int = 8003
    convert: int = 8004

    @classmethod
    def from_env(cls, environ=os.environ):
        defaults = cls()
        values = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(f"ROLLCALL_{field.name.upper()}_PORT")
            values[field.name] = _port(raw, f"ROLLCALL_{field.name.upper()}_PORT") \
                if raw else getattr(defaults, field.name)
        return cls(**values)


def _port(raw, what):
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise StackError(f"{what} must be a port number (1024-65535), got {raw!r}")
    if not 1024 <= port <= 65535:
        raise StackError(f"{what} must be between 1024 and 65535, got {port}")
    return port


# -- checks -------------------------------------------------------------------------
def missing_tools(parts=REQUIRED_PARTS):
    """Descriptions of what is not installed (empty when all is there)."""
    missing = []
    for module, package in REQUIRED_MODULES.items():
        if importlib.util.find_spec(module) is None:
            missing.append(f"the Python package {package} (module {module})")
    for module in parts:
        if importlib.util.find_spec(module) is None:
            missing.append(f"the module {module} (part of this repository)")
    return missing


class Stack:
    """Every part of Rollcall, started in order; :meth:`stop` ends them all."""

    def __init__(self, data_dir=DEFAULT_DATA_DIR, ports=None, stage="dev", out=None,
                 admin_email=DEFAULT_ADMIN_EMAIL, start_timeout=180, bridge_wait_seconds=5,
                 faces_module="local.engine.rekognition_server", extra_env=None):
        self.data_dir = pathlib.Path(data_dir).resolve()
        self.ports = ports or Ports()
        self.stage = stage
        self.out = out or sys.stdout
        self.admin_email = admin_email
        self.start_timeout = start_timeout
        self.bridge_wait_seconds = bridge_wait_seconds
        self.faces_module = faces_module
        self.first_admin = None
        self.parts = []
        self._lock_file = None
        self._log = None
        self.extra_env = dict(extra_env or {})
        self.restarts = collections.defaultdict(list)  # part name -> monotonic times
        self.gave_up = None  # the StackError that stopped the supervisor
        self._supervising = threading.Event()
        self._supervisor = None

    # -- URLs --------------------------------------------------------------------
    @property
    def site_url(self):
        return f"http://{HOST}:{self.ports.site}"

    @property
    def api_url(self):
        return f"http://{HOST}:{self.ports.api}"

    @property
    def moto_url(self):
        return f"http://{HOST}:{self.ports.moto}"

    @property
    def faces_url(self):
        return f"http://{HOST}:{self.ports.faces}"

    @property
    def convert_url(self):
        return f"http://{HOST}:{self.ports.convert}"

    @property
    def log_dir(self):
        return self.data_dir / "logs"

    def say(self, message):
        """A launcher message: terminal and stack.log (never a secret)."""
        for line in message.splitlines() or [""]:
            self.out.write(f"{'stack':<9}| {line}\n")
            if self._log:
                self._log.write(line + "\n")
        self.out.flush()
        if self._log:
            self._log.flush()

    def environment(self):
        """The environment of every part: local endpoints, fake credentials, the stage."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(stage_environment(self.stage))
        env.update({
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
            # Never the user's ~/.aws: no profile or endpoint there can send data to AWS.
            "AWS_CONFIG_FILE": str(self.data_dir / "aws-config-none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.data_dir / "aws-credentials-none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_REKOGNITION": self.faces_url,
            "AWS_ENDPOINT_URL_MEDIACONVERT": self.convert_url,
            "SITE_ORIGIN": self.site_url,
            "ROLLCALL_STAGE": self.stage,
            "PYTHONUNBUFFERED": "1",
            priority.WORKER_NICENESS_ENV: str(BACKGROUND_NICENESS),
            # Stuck sessions are checked after a minute here (the bridge runs the watchdog).
            "PROCESSING_CHECK_SECONDS": os.environ.get("PROCESSING_CHECK_SECONDS", "60"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_DIR),
                                                        os.environ.get("PYTHONPATH")])),
        })
        env.update(self.extra_env)
        return env

    # -- start ---------------------------------------------------------------------
    def check(self):
        """Fail at once, saying what to do, if a tool is missing or a port is taken."""
        missing = missing_tools([m if m != "local.engine.rekognition_server" else self.faces_module
                                 for m in REQUIRED_PARTS])
        if missing:
            raise StackError("cannot start: missing " + "; ".join(missing) + ".\n"
                             "Run `make install` (it installs requirements-dev.txt into "
                             ".venv) and start with `make run`, or pull the latest code.")
        by_port = {}
        for name, port in dataclasses.asdict(self.ports).items():
            if port in by_port:
                raise StackError(f"the {name} and {by_port[port]} ports are both {port}; "
                                 "give each part its own port")
            by_port[port] = name
        for name, port in dataclasses.asdict(self.ports).items():
            if not port_is_free(port):
                raise StackError(
                    f"port {port} (for the {name}) is already in use on {HOST}. Stop what "
                    f"listens there (`ss -ltnp 'sport = :{port}'` shows it; maybe another "
                    f"`make run`), or choose another port: --{name}-port N or "
                    f"ROLLCALL_{name.upper()}_PORT=N.")

    def _lock_data_dir(self):
        # Photos, videos and names live here: readable by this user only.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_file = open(self.data_dir / ".lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise StackError(f"another Rollcall stack is using {self.data_dir}; stop it "
                             "first (Ctrl-C in its terminal) or choose another --data-dir")

    def _part(self, name, module, *args, ready_line="listening on"):
        part = Part(name, [sys.executable, "-m", module, *map(str, args)],
                    self.environment(), self.log_dir, self.out, ready_line=ready_line)
        self.parts.append(part)
        return part.start()

    def start(self):
        """Start every part; returns when each answers. StackError (all stopped) if not."""
        self.check()
        self._lock_data_dir()
        self.parts = []
        self.first_admin = None
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_dir / "stack.log", "a", encoding="utf-8")
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_parts(self):
        started = time.monotonic()
        timeout = self.start_timeout
        self.say(f"starting Rollcall ({self.stage}) with its data in {self.data_dir}")
        moto = self._part("moto", "local.stack.moto_state", "--host", HOST, "--port",
                          self.ports.moto, "--state-dir", self.data_dir / "moto")
        faces = self._part("faces", self.faces_module, "--host", HOST, "--port",
                           self.ports.faces, "--data-dir", self.data_dir / "faces")
        moto.wait_ready(lambda: _listening(self.ports.moto), timeout)
        faces.wait_ready(lambda: _listening(self.ports.faces), timeout)
        # Its end events go on the queue the bridge hands to on_conversion_event.
        convert = self._part("convert", "local.convert.server", "--host", HOST, "--port",
                             self.ports.convert, "--data-dir", self.data_dir / "convert",
                             "--events-queue-name", CONVERSION_EVENTS_QUEUE)
        convert.wait_ready(lambda: _listening(self.ports.convert), timeout)
        self._provision()
        self._ensure_admin()
        bridge = self._part("bridge", "local.stack.bridge", "--stage", self.stage,
                            "--wait-seconds", self.bridge_wait_seconds, ready_line="ready:")
        api = self._part("api", "local.stack.api_server", "--host", HOST, "--port", self.ports.api,
                         "--stage", self.stage)
        site = self._part("site", "local.stack.site_server", "--host", HOST, "--port",
                          self.ports.site, "--api-url", self.api_url,
                          "--out", self.data_dir / "site")
        bridge.wait_ready(lambda: True, timeout)
        api.wait_ready(lambda: _http_ok(self.api_url + "/health"), timeout)
        site.wait_ready(lambda: _http_ok(self.site_url + "/config.js"), timeout)
        self._write_state_file()
        self._supervising.set()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor",
                                            daemon=True)
        self._supervisor.start()
        self.say(f"ready in {time.monotonic() - started:.1f} s: open {self.site_url} "
                 f"(API {self.api_url}); Ctrl-C stops everything")

    def _provision(self):
        part = self._part("provision", "ops.provision", "--stage", self.stage,
                          ready_line=None)
        try:
            code = part.proc.wait(self.start_timeout)
        except subprocess.TimeoutExpired:
            part.stop(5)
            raise part.failure(f"provisioning took longer than {self.start_timeout} s")
        part.wait_output()
        if code != 0:
            raise part.failure(f"provisioning failed (exit code {code})")

    def _users(self):
        import boto3

        from chalicelib.users import UserStore
        env = self.environment()
        session = boto3.session.Session(aws_access_key_id="local",
                                        aws_secret_access_key="local", region_name=REGION)
        table = session.resource("dynamodb", endpoint_url=self.moto_url).Table(
            env["USERS_TABLE"])
        return UserStore(table)

    def add_user(self, email, password, role="teacher"):
        """Make an account in the running stack (what the CLI does; tests use it)."""
        return self._users().add(email, password, role)

    def _ensure_admin(self):
        """On the first start, an admin with a generated password (shown once)."""
        from chalicelib.passwords import generate_password

        users = self._users()
        admins = [u["email"] for u in users.list() if u.get("role") == "admin"]
        if admins:
            self.say(f"admin account(s): {', '.join(admins)} (the password was shown on the "
                     "first start only). To set a new one while this runs:\n"
                     f"  {self.cli_hint('user set-password ' + admins[0])}")
            return
        password = generate_password()
        users.add(self.admin_email, password, "admin")
        self.first_admin = {"email": self.admin_email, "password": password}
        # Terminal only: the password never goes into a log file.
        self.out.write(
            "\n"
            "  ============================================================\n"
            "  Rollcall's first admin account (shown this once, write it down):\n"
            f"    site:     {self.site_url}\n"
            f"    email:    {self.admin_email}\n"
            f"    password: {password}\n"
            "  ============================================================\n\n")
        self.out.flush()
        if self._log:
            self._log.write(f"created the first admin {self.admin_email} "
                            "(password shown on the terminal only)\n")

    def cli_hint(self, command):
        data = "" if self.data_dir == DEFAULT_DATA_DIR.resolve() else \
            f" --data-dir {shlex.quote(str(self.data_dir))}"
        return f".venv/bin/python -m local.stack{data} cli {command}"

    def _write_state_file(self):
        state = {"pid": os.getpid(), "stage": self.stage, "site_url": self.site_url,
                 "api_url": self.api_url, "moto_url": self.moto_url,
                 "faces_url": self.faces_url,
                 "convert_url": self.convert_url,
                 "parts": {part.name: part.proc.pid for part in self.parts if part.running()}}
        (self.data_dir / "stack.json").write_text(json.dumps(state, indent=2))

    # -- running and stopping --------------------------------------------------------
    def failed_part(self):
        """The first long-running part that has stopped on its own, or None."""
        for part in self.parts:
            if part.name != "provision" and not part.running():
                return part
        return None

    def _supervise(self):
        """Restart parts that stop on their own, with backoff, until :meth:`stop`."""
        while self._supervising.is_set():
            for part in list(self.parts):
                if part.name not in LONG_RUNNING or part.running() or \
                        not self._supervising.is_set():
                    continue
                try:
                    self.restart(part)
                except StackError as error:
                    self.gave_up = error
                    self.say(str(error))
                    self._supervising.clear()
                    return
            time.sleep(0.2)

    def restart(self, part):
        """Start a part that stopped again, after a backoff; StackError when it keeps
        stopping (more than MAX_RESTARTS times in RESTART_WINDOW_S)."""
        code = part.proc.returncode
        part.kill_group()  # its children (engine workers) go with it
        part.wait_output()
        now = time.monotonic()
        recent = [t for t in self.restarts[part.name] if now - t < RESTART_WINDOW_S]
        if len(recent) >= MAX_RESTARTS:
            raise part.failure(f"{part.name} stopped {len(recent) + 1} times within "
                               f"{RESTART_WINDOW_S:.0f} s (exit code {code}); stopping "
                               "everything")
        delay = min(30.0, 2.0 ** len(recent))
        self.say(f"{part.name} stopped unexpectedly (exit code {code}; log in "
                 f"{part.log_path}); starting it again in {delay:.0f} s")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if not self._supervising.is_set():
                return
            time.sleep(0.1)
        recent.append(time.monotonic())
        self.restarts[part.name] = recent
        part.start()
        self._write_state_file()

    def stop(self):
        """Stop every part, newest first (moto last, so it saves the final state)."""
        self._supervising.clear()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(60)
        (self.data_dir / "stack.json").unlink(missing_ok=True)
        for part in reversed(self.parts):
            was_running = part.running()
            code = part.stop()
            if was_running and code not in (0, None, -signal.SIGTERM):
                self.say(f"{part.name} exited with code {code}; see {part.log_path}")
        if self._log:
            self.say("stopped")
            self._log.close()
            self._log = None
        if self._lock_file:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


# -- command line ---------------------------------------------------------------------
