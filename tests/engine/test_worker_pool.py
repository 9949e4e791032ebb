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


@pytest.mark.parametrize("niceness", ["0", "19"], ids=["as-the-engine", "in-the-background"])
def test_workers_exit_when_the_engine_is_killed(niceness):
    """Also lowered, in sessions of their own: the engine's process group is
    then not theirs, and only their watch on the parent brings them down."""
    engine = subprocess.Popen([sys.executable, "-c", ENGINE], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=str(ROOT),
                                       ROLLCALL_FACE_WORKER_NICENESS=niceness))
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


LOWERED = """
import os
from local.engine import video
pool = video.worker_pool(1)
pid = next(iter(pool._processes))
def group(p):
    # Empty for a process still in the kernel's default group (never in a new
    # session since boot, like PID 1 and what it starts: a CI runner's tests).
    try:
        words = open(f"/proc/{p}/autogroup").read().split()
    except OSError:
        return "none"
    return words[-1] if words else "none"
nice = os.getpriority(os.PRIO_PROCESS, pid)
# every thread of the worker (its watcher and OpenBLAS's pool too): all idle?
threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
idle = int(all(os.sched_getscheduler(t) == os.SCHED_IDLE
               and os.getpriority(os.PRIO_PROCESS, t) == nice for t in threads))
print(os.nice(0), nice, os.getsid(0), os.getsid(pid), group("self"), group(pid),
      int(os.sched_getscheduler(0) == os.SCHED_IDLE), idle if len(threads) > 1 else -1,
      flush=True)
video.shutdown_pool()
"""


def test_workers_run_in_the_background_when_asked():
    """ROLLCALL_FACE_WORKER_NICENESS: each worker is lowered, in a session of
    its own lowered too (under autogroup scheduling a session is what the
    kernel shares the CPU between), under SCHED_IDLE at the lowest niceness
    (preempted as soon as interactive work wakes), and the engine itself
    keeps its priority."""
    out = subprocess.run([sys.executable, "-c", LOWERED], cwd=ROOT, text=True,
                         capture_output=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT),
                                  ROLLCALL_FACE_WORKER_NICENESS="19"))
    assert out.returncode == 0, out.stderr
    engine_nice, worker_nice, engine_sid, worker_sid, engine_group, worker_group, \
        engine_idle, worker_idle = out.stdout.split()
    assert int(engine_nice) == os.nice(0)
    assert int(worker_nice) == 19
    assert worker_sid != engine_sid
    assert worker_idle == "1" and engine_idle == "0"
    # The worker's own session is a group wherever autogroups are on (CI's
    # runner included, though it is itself in the kernel's default group).
    if worker_group != "none":
        assert worker_group == "19"
    assert engine_group != "19"


def test_workers_keep_the_engines_priority_by_default():
    env = {k: v for k, v in os.environ.items() if k != "ROLLCALL_FACE_WORKER_NICENESS"}
    out = subprocess.run([sys.executable, "-c", LOWERED], cwd=ROOT, text=True,
                         capture_output=True, timeout=120, env=dict(env, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    engine_nice, worker_nice, engine_sid, worker_sid, _, _, engine_idle, worker_idle = \
        out.stdout.split()
    assert worker_nice == engine_nice and worker_sid == engine_sid
    assert worker_idle == "0" and engine_idle == "0"


def test_lowering_a_group_waits_its_turn(tmp_path, monkeypatch):
    """Unprivileged, a group's niceness may change only every ~100 ms machine-wide
    (EAGAIN): workers starting together must retry, not stay at full priority."""
    from local import priority

    group = tmp_path / "autogroup"
    tries = []

    def busy_twice(path, mode="r", *args, **kwargs):
        tries.append(path)
        if len(tries) <= 2:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return open(path, mode, *args, **kwargs)
    monkeypatch.setattr(priority, "open", busy_twice, raising=False)
    monkeypatch.setattr(priority.os, "nice", lambda increment: 19)   # this process stays
    monkeypatch.setattr(priority, "lower_threads", lambda level, idle: None)
    monkeypatch.setattr(priority.time, "sleep", lambda seconds: None)
    priority.run_in_background(19, autogroup=str(group))
    assert len(tries) == 3 and group.read_text() == "19"


THREADS = """
import cv2
from local.engine import video

if __name__ == "__main__":
    cv2.setNumThreads(2)
    pool = video.worker_pool(1)
    worker = pool.submit(eval, "(__import__('cv2').getNumThreads(), "
                               "__import__('local.engine.video', fromlist=['v'])._decode_threads)")
    worker = worker.result(timeout=120)
    video.shutdown_pool()
    print(worker[0], worker[1], cv2.getNumThreads(), video._decode_threads)
"""


def test_workers_run_opencv_and_ffmpeg_on_one_thread_each():
    """A worker per core is the parallelism: OpenCV's threads (MTCNN) and
    FFmpeg's (decoding) on top would only contend for the same cores; the
    process that starts the pool keeps its own."""
    out = subprocess.run([sys.executable, "-c", THREADS], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "2", "0"]


STOP_WHILE_STARTING = """
import threading, time
from local.engine import video

if __name__ == "__main__":
    outcome = []

    def start():
        try:
            video.worker_pool(2)
            outcome.append("pool")
        except video.VideoError:
            outcome.append("stopped")

    starting = threading.Thread(target=start)
    starting.start()
    while video._pool is None or len(video._pool._processes or {}) < 2:
        time.sleep(0.005)
    pids = [p.pid for p in video._pool._processes.values()]
    video.shutdown_pool()           # the workers are still loading their models
    starting.join(60)
    print(outcome, starting.is_alive(), *pids)
"""


def test_a_stop_while_workers_start_does_not_wait_for_them():
    """The pool's lock is held while new workers load their models (seconds
    on a busy machine): the endpoint's stop takes that lock too, so the start
    gives up on seeing the stop, and the workers are terminated."""
    out = subprocess.run([sys.executable, "-c", STOP_WHILE_STARTING], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("['stopped'] False "), out.stdout
    pids = out.stdout.split()[2:]
    deadline = time.monotonic() + 30
    while any(_alive(int(p)) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(int(p)) for p in pids)


NO_WEIGHTS = """
from local.engine import video

if __name__ == "__main__":
    outcome = []
    for _ in range(2):
        try:
            video.worker_pool(1)
            outcome.append("ready")
        except Exception as error:          # the workers' own error, as raised there
            outcome.append(type(error).__name__)
    print(outcome, video._pool is None)
"""


def test_a_pool_whose_workers_cannot_load_their_models_is_not_kept(tmp_path):
    """A worker that cannot start (here: MTCNN's weight files missing) fails
    the analysis that started the pool, and the next one tries afresh rather
    than taking the half-started pool as ready."""
    (tmp_path / "mtcnn").mkdir()
    (tmp_path / "mtcnn" / "__init__.py").write_text("")     # the package, without weights
    out = subprocess.run([sys.executable, "-c", NO_WEIGHTS], cwd=ROOT, capture_output=True,
                         text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "['ModelFormatError', 'ModelFormatError'] True"
