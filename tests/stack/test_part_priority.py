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
        nice = {part.name: _niceness_of_process(part.proc.pid) for part in stack.parts
                if part.running()}
    base = os.nice(0)
    assert nice["faces"] == min(19, base + launcher.ENGINE_NICENESS)
    assert nice["api"] == nice["moto"] == base
