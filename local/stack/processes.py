"""The launcher's children: one process each, its output prefixed to the terminal and
kept in a log file, never outliving the launcher (a parent-death signal and its own
process group, so what it starts goes with it; the face engine's video workers, in
sessions of their own when lowered, leave when their parent does), and the checks
that a port answers.
"""

import collections
import ctypes
import datetime
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from ops.stage_config import PROJECT_DIR

HOST = "127.0.0.1"
LOG_ROTATE_BYTES = 20 * 1024 * 1024


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


def port_is_free(port, host=HOST):
    """True if a server could bind ``port`` now (as ours do: with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _listening(port, host=HOST):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return 200 <= answer.status < 300
    except (urllib.error.URLError, OSError):
        return False


def _parent_death_signal():
    """In the child: get SIGTERM if the launcher dies without stopping us (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


_SET_PDEATHSIG = _parent_death_signal() if sys.platform.startswith("linux") else None


class Part:
    """One child process; its output goes to the terminal (prefixed) and to a log file."""

    def __init__(self, name, argv, env, log_dir, out, ready_line=None, width=9):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = pathlib.Path(log_dir) / f"{name}.log"
        self.out = out
        self.ready_line = ready_line
        self.prefix = f"{name:<{width}}| "
        self.proc = None
        self.tail = collections.deque(maxlen=40)
        self.ready = threading.Event()
        self._reader = None
        self._out_lock = threading.Lock()

    def start(self):
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()
        self.ready = threading.Event()
        # One previous generation is kept, so logs do not grow without end.
        if self.log_path.exists() and self.log_path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(self.log_path, self.log_path.with_name(self.log_path.name + ".1"))
        self._log = open(self.log_path, "a", encoding="utf-8")
        self._log.write(f"--- {datetime.datetime.now().isoformat(timespec='seconds')} "
                        f"starting: {' '.join(self.argv[1:])}\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            self.argv, cwd=PROJECT_DIR, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C reaches the launcher only, which stops the
            # parts in order (moto last, so the final state is saved).
            start_new_session=True, preexec_fn=self._in_child)
        self._reader = threading.Thread(target=self._pump, name=f"log-{self.name}",
                                        daemon=True)
        self._reader.start()
        return self

    def _in_child(self):
        if _SET_PDEATHSIG is not None:
            _SET_PDEATHSIG()

    def _pump(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
            self._log.write(line + "\n")
            self._log.flush()
            with self._out_lock:
                try:
                    self.out.write(self.prefix + line + "\n")
                    self.out.flush()
                except ValueError:
                    pass  # the terminal stream was closed under us
            if self.ready_line and self.ready_line in line:
                self.ready.set()
        self.proc.stdout.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def failure(self, what):
        lines = "\n".join("    " + line for line in list(self.tail)[-15:])
        return StackError(f"{what}; its last output (all of it in {self.log_path}):\n{lines}")

    def wait_ready(self, check, timeout):
        """Until ``check()`` (and the ready line, if any) holds; StackError if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                self.wait_output()
                raise self.failure(f"{self.name} stopped while starting "
                                   f"(exit code {self.proc.returncode})")
            if (self.ready_line is None or self.ready.is_set()) and check():
                return
            time.sleep(0.1)
        raise self.failure(f"{self.name} did not answer within {timeout} s")

    def wait_output(self, timeout=5):
        if self._reader:
            self._reader.join(timeout)

    def kill_group(self):
        """SIGKILL whatever is left of the part's process group (its children).

        The part is its group's leader (its own session), and what it starts
        stays in the group unless it makes its own session."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after ``timeout`` s; the exit code. Children
        the part left behind are killed too."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
                self.proc.wait()
        self.kill_group()
        self.wait_output()
        self._log.close()
        return self.proc.returncode


# -- the stack -----------------------------------------------------------------------
