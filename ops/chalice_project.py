"""The Chalice project a stage is deployed (or packaged) from, with every name resolved.

``.chalice/config.json`` may leave resource names out (see
:mod:`ops.stage_config`) and ``.chalice/policy.template.json`` names
resources by variable (``${PHOTOS_BUCKET}``). Before ``chalice deploy`` or
``chalice package`` runs, :func:`render_project` writes a copy of the project
under ``build/chalice/<stage>/`` whose config sets every name for the stage and
whose ``policy-<stage>.json`` is the template filled with those same names:
one source of truth, so the Lambdas' environment and their IAM policy cannot
disagree. ``.chalice/deployed`` is shared with the source project, so
``chalice url``/``delete`` and ``make publish`` see what was deployed.
"""
import hashlib
import json
import os
import pathlib
import re
import shutil

from ops.stage_config import PROJECT_DIR, StageError, load_config

POLICY_TEMPLATE = PROJECT_DIR / ".chalice" / "policy.template.json"
BUILD_ROOT = PROJECT_DIR / "build" / "chalice"
#: How an account is named when there is none (``chalice package``): Terraform
#: fills it in at apply time from the data source Chalice's output defines.
TERRAFORM_ACCOUNT = "${data.aws_caller_identity.chalice.account_id}"
#: What Lambda's zip is made of; nothing else of the project is copied.
APP_FILES = ("app.py", "requirements.txt")
APP_DIRS = ("chalicelib", "vendor")

_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def render_policy(env, template_path=POLICY_TEMPLATE):
    """The IAM policy document with every ``${VARIABLE}`` replaced from ``env``.

    Raises :class:`StageError` naming any variable ``env`` lacks, so a
    policy never reaches IAM with a hole in an ARN.
    """
    text = pathlib.Path(template_path).read_text(encoding="utf-8")
    missing = sorted({name for name in _VARIABLE.findall(text) if not env.get(name)})
    if missing:
        raise StageError("the IAM policy template names unset variable(s): "
                         + ", ".join(missing))
    policy = json.loads(text)

    def fill(value):
        if isinstance(value, str):
            return _VARIABLE.sub(lambda match: env[match.group(1)], value)
        if isinstance(value, list):
            return [fill(item) for item in value]
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        return value
    return fill(policy)


def render_config(stage, env, project_dir=PROJECT_DIR):
    """``.chalice/config.json`` with ``stage``'s environment fully resolved.

    Only ``stage`` is kept, and without its operator-only ``"rollcall"``
    options (Lambda never reads them).
    """
    config = load_config(pathlib.Path(project_dir) / ".chalice" / "config.json")
    section = dict(config["stages"][stage])
    section.pop("rollcall", None)
    section["environment_variables"] = dict(sorted(env.items()))
    config["stages"] = {stage: section}
    return config


def render_project(stage, env, out_dir=None, project_dir=PROJECT_DIR, deployed_dir=None):
    """Write the deployable project for ``stage`` into ``out_dir``; answer its path.

    ``env`` is the stage's resolved environment (every name set). The folder
    is rebuilt each time, except ``.chalice/deployed`` (a link to the source
    project's, or ``deployed_dir``) and ``.chalice/deployments`` (Chalice's
    package cache).
    """
    project_dir = pathlib.Path(project_dir)
    out_dir = pathlib.Path(out_dir or BUILD_ROOT / stage)
    policy = render_policy(env, project_dir / ".chalice" / "policy.template.json")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in APP_FILES:
        if (out_dir / name).exists():
            (out_dir / name).unlink()
        if (project_dir / name).is_file():
            shutil.copy2(project_dir / name, out_dir / name)
    for name in APP_DIRS:
        shutil.rmtree(out_dir / name, ignore_errors=True)
        if (project_dir / name).is_dir():
            shutil.copytree(project_dir / name, out_dir / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    chalice_dir = out_dir / ".chalice"
    chalice_dir.mkdir(exist_ok=True)
    for stale in chalice_dir.glob("*.json"):
        stale.unlink()
    _write_json(chalice_dir / "config.json", render_config(stage, env, project_dir))
    _write_json(chalice_dir / f"policy-{stage}.json", policy)
    deployed = pathlib.Path(deployed_dir or project_dir / ".chalice" / "deployed").resolve()
    deployed.mkdir(parents=True, exist_ok=True)
    link = chalice_dir / "deployed"
    if link.is_symlink() and link.resolve() != deployed:
        link.unlink()
    if not link.is_symlink():
        shutil.rmtree(link, ignore_errors=True)
        os.symlink(deployed, link)
    return out_dir


def project_digest(out_dir):
    """A digest of everything a deploy of ``out_dir`` ships: code, config, policy."""
    out_dir = pathlib.Path(out_dir)
    digest = hashlib.sha256()
    paths = [out_dir / name for name in APP_FILES]
    for name in APP_DIRS:
        paths += sorted((out_dir / name).rglob("*")) if (out_dir / name).is_dir() else []
    paths += sorted((out_dir / ".chalice").glob("*.json"))
    for path in paths:
        if path.is_file():
            digest.update(path.relative_to(out_dir).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _write_json(path, value):
    pathlib.Path(path).write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
