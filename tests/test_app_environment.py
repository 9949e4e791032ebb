"""app.py reads its names from the environment only, as on Lambda.

Its event sources (the videos bucket, the completion topic, the stage for
MediaConvert's events, the evidence queue) are named when it is imported;
Lambda's zip holds no ``ops``, so app.py never falls back to reading the
stage's config: a missing name stops the import with a sentence naming it.
"""
import subprocess
import sys

import pytest

from chalicelib.errors import ConfigurationError
from chalicelib.settings import EVENT_SOURCE_VARIABLES, event_source_name
from ops.stage_config import PROJECT_DIR, stage_environment

_IMPORT = ("import sys, app\n"
           "print(sorted(m for m in sys.modules if m == 'ops' or m.startswith('ops.')))\n")


def _import_app(env):
    base = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([sys.executable, "-c", _IMPORT], cwd=PROJECT_DIR,
                          env=dict(base, **env), capture_output=True, text=True, timeout=120)


def test_with_the_stages_names_app_imports_without_any_operator_module():
    done = _import_app(stage_environment("dev"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("missing", EVENT_SOURCE_VARIABLES)
def test_a_missing_name_stops_the_import_and_says_which_and_how(missing):
    env = {k: v for k, v in stage_environment("dev").items() if k != missing}
    done = _import_app(env)
    assert done.returncode != 0
    assert f"{missing} is not set" in done.stderr
    assert "make deploy" in done.stderr and "make package" in done.stderr


def test_the_event_source_names_are_read_from_the_environment_given():
    assert event_source_name("VIDEOS_BUCKET", {"VIDEOS_BUCKET": "b"}) == "b"
    with pytest.raises(ConfigurationError, match="COMPLETION_TOPIC is not set"):
        event_source_name("COMPLETION_TOPIC", {"COMPLETION_TOPIC": ""})


def test_every_stage_names_every_event_source():
    """What `make deploy` / `make package` render for each stage sets them all."""
    from ops.stage_config import stages
    for stage in stages():
        env = stage_environment(stage, account="123456789012")
        assert all(env.get(name) for name in EVENT_SOURCE_VARIABLES), stage
