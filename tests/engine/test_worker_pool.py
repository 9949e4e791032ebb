"""The face engine's video workers never outlive the process that started them.

A killed engine (``kill -9``, a crash) never tells its pool to stop; its
workers must notice and exit rather than hold their models' memory for ever.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

ENGINE = """
import time
from local.engine import video
pool = video.worker_pool(2)
print(" ".join(str(p.pid) for p in pool._processes.values()), flush=True)
time.sleep(600)
"""


def _alive(pid):
    """Running or sleeping (a zombie waiting for init to reap it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_workers_exit_when_the_engine_is_killed():
    engine = subprocess.Popen([sys.executable, "-c", ENGINE], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    workers = []
    try:
        workers = [int(pid) for pid in engine.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        engine.send_signal(signal.SIGKILL)
        engine.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "workers left running"
    finally:
        engine.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
