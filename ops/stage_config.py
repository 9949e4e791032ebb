"""Reading a stage's settings from ``.chalice/config.json``.

The Chalice config is the single source of resource names: Lambda gets them
from it at deploy, and provisioning, the CLI, the local stack and the tests
read them from it here, so the names can never drift apart.
"""
import json
import os
import pathlib

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent
CONFIG_PATH = PROJECT_DIR / ".chalice" / "config.json"


def load_config(path=CONFIG_PATH):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def stages(path=CONFIG_PATH):
    return sorted(load_config(path).get("stages", {}))


def stage_environment(stage, path=CONFIG_PATH):
    """The environment variables a stage's API function runs with."""
    config = load_config(path)
    if stage not in config.get("stages", {}):
        raise KeyError(f"unknown stage {stage!r}; known: {', '.join(stages(path))}")
    env = dict(config.get("environment_variables", {}))
    env.update(config["stages"][stage].get("environment_variables", {}))
    return env


def apply_stage_environment(stage, environ=None, path=CONFIG_PATH):
    """Put a stage's variables into ``environ`` (default ``os.environ``).

    Variables already set win, so the local stack and ops can override any
    name without editing the config.
    """
    environ = os.environ if environ is None else environ
    for key, value in stage_environment(stage, path).items():
        environ.setdefault(key, value)
    return environ
