"""The face engine yields the CPU to the API and moto: its part (and whatever it
starts) runs at a lower priority (local.stack.processes.Part ``nice``)."""
import io
import os
import sys

import pytest

from local.stack import launcher
from local.stack.processes import Part

pytestmark = pytest.mark.stack

_SHOW_NICENESS = ("import os, subprocess, sys; print('part', os.nice(0)); "
                  "subprocess.run([sys.executable, '-c', 'import os; print(\"child\", os.nice(0))'])")


def _autogroup_nice(pid="self"):
    """The niceness of the process's session as a scheduling group, or None
    where the kernel has no autogroups."""
    try:
        with open(f"/proc/{pid}/autogroup") as handle:
            return int(handle.read().split()[-1])
    except OSError:
        return None


def _niceness_of(tmp_path, nice):
    out = io.StringIO()
    part = Part("probe", [sys.executable, "-c", _SHOW_NICENESS], dict(os.environ), tmp_path,
                out, nice=nice)
    part.start()
    part.proc.wait(30)
    part.wait_output()
    part._log.close()
    return {line.split()[-2]: int(line.split()[-1]) for line in out.getvalue().splitlines()
            if line.split()[-2:-1] in (["part"], ["child"])}


def test_a_part_and_its_children_run_at_the_niceness_asked(tmp_path):
    base = os.nice(0)
    assert _niceness_of(tmp_path, 0) == {"part": base, "child": base}
    lowered = _niceness_of(tmp_path, launcher.ENGINE_NICENESS)
    assert lowered == {"part": min(19, base + launcher.ENGINE_NICENESS),
                       "child": min(19, base + launcher.ENGINE_NICENESS)}
    assert launcher.ENGINE_NICENESS > 0


def _niceness_of_process(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[16])


def test_the_stack_runs_the_face_engine_below_the_api_and_moto(tmp_path):
    from tests.support.stack import running_stack

    with running_stack(tmp_path / "data") as stack:
        parts = [part for part in stack.parts if part.running()]
        nice = {part.name: _niceness_of_process(part.proc.pid) for part in parts}
        groups = {part.name: _autogroup_nice(part.proc.pid) for part in parts}
    base = os.nice(0)
    assert nice["faces"] == min(19, base + launcher.ENGINE_NICENESS)
    assert nice["api"] == nice["moto"] == base
    if _autogroup_nice() is not None:
        # each part is a session of its own, scheduled as one group: the
        # engine's must be lowered too, or the kernel shares the CPU equally
        assert groups["faces"] == min(19, launcher.ENGINE_NICENESS)
        assert groups["api"] == groups["moto"] == 0


def test_a_lowered_part_lowers_its_session_as_a_scheduling_group(tmp_path):
    """Under autogroup scheduling a part's niceness alone would not rank it
    below the other parts (each is its own session)."""
    if _autogroup_nice() is None:
        pytest.skip("this kernel has no autogroup scheduling (/proc/self/autogroup): "
                    "niceness alone applies, tested above")
    out = io.StringIO()
    part = Part("probe", [sys.executable, "-c",
                          "print('group', open('/proc/self/autogroup').read().split()[-1])"],
                dict(os.environ), tmp_path, out, nice=7)
    part.start()
    part.proc.wait(30)
    part.wait_output()
    part._log.close()
    assert "group 7" in out.getvalue()
