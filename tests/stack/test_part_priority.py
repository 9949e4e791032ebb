"""Analysing a video yields the CPU: on the one-machine stack the face
engine's video workers run at the lowest priority, and so do their sessions
as scheduling groups (local/priority.py), while the API, moto and the
engine's own process (its photo answers: registrations) keep theirs."""
import os

import pytest

from local.stack import launcher

pytestmark = pytest.mark.stack


def _niceness_of_process(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[16])


def _environment_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as handle:
        return dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)


def test_the_stack_runs_the_video_workers_below_everything_else(tmp_path):
    from tests.support.stack import running_stack

    with running_stack(tmp_path / "data") as stack:
        parts = {part.name: part.proc.pid for part in stack.parts if part.running()}
        nice = {name: _niceness_of_process(pid) for name, pid in parts.items()}
        faces_env = _environment_of(parts["faces"])
    base = os.nice(0)
    # photo answers are interactive: the engine itself is not lowered
    assert nice["faces"] == nice["api"] == nice["moto"] == base
    assert faces_env[b"ROLLCALL_FACE_WORKER_NICENESS"] == str(launcher.BACKGROUND_NICENESS).encode()
    assert launcher.BACKGROUND_NICENESS == 19
