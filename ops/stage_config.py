"""Reading a stage's settings from ``.chalice/config.json``.

The Chalice config is the single source of resource names: Lambda gets them
from it at deploy (through the project :mod:`ops.chalice_project` renders),
and provisioning, the CLI, the local stack and the tests read them from it
here, so the names can never drift apart.

A stage need not name its resources. A name the stage leaves out is derived
from the stage (``rollcall-<stage>-users``) and, for S3 buckets, whose names
are global, also from the AWS account (``rollcall-<stage>-<account>-photos``),
so a new account deploys with no file edited. A name the stage sets wins.

Options that only the operator tools read (never Lambda) live in the stage's
``"rollcall"`` object: ``site_domain`` and ``site_certificate_arn`` (a custom
domain for the site), ``table_kms_encryption`` (DynamoDB encrypted with a KMS
key, which KMS charges for, instead of the default AWS-owned key),
``noncurrent_version_days`` (how long an overwritten or deleted photo or face
crop stays restorable; default 30).
"""
import json
import os
import pathlib
import re

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent
CONFIG_PATH = PROJECT_DIR / ".chalice" / "config.json"

#: Resource names Lambda may run without, which a deployed stage still has.
OPTIONAL_NAME_VARIABLES = ("COMPLETION_TOPIC", "REKOGNITION_ROLE", "CONVERSION_ROLE",
                           "SITE_BUCKET", "EVIDENCE_QUEUE")
#: The origin examples used to ship with; never a real one.
PLACEHOLDER_ORIGINS = ("https://rollcall.example.org",)
#: Host names reserved for documentation and tests (RFC 2606, RFC 6761).
_RESERVED_HOST = re.compile(r"(^|\.)(example\.(com|net|org)|example|test|invalid|localhost)$")


class StageError(RuntimeError):
    """A stage cannot be resolved or deployed as configured; the message says why."""


def load_config(path=CONFIG_PATH):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def stages(path=CONFIG_PATH):
    return sorted(load_config(path).get("stages", {}))


def _stage_section(stage, path):
    config = load_config(path)
    if stage not in config.get("stages", {}):
        raise KeyError(f"unknown stage {stage!r}; known: {', '.join(stages(path))}")
    return config, config["stages"][stage]


def configured_environment(stage, path=CONFIG_PATH):
    """The variables the config itself sets for ``stage`` (nothing derived)."""
    config, section = _stage_section(stage, path)
    env = dict(config.get("environment_variables", {}))
    env.update(section.get("environment_variables", {}))
    return env


def stage_options(stage, path=CONFIG_PATH):
    """The operator-only options of ``stage`` (its ``"rollcall"`` object)."""
    _, section = _stage_section(stage, path)
    return dict(section.get("rollcall", {}))


def _name_variables():
    """Every resource-name variable Lambda needs, from the settings module."""
    from chalicelib.settings import _REQUIRED
    return [var for _, var in _REQUIRED] + list(OPTIONAL_NAME_VARIABLES)


def derived_name(stage, variable, account=None):
    """The name ``variable`` gets when the stage does not set it.

    Tables, the collection and the topic are per account and region, so the
    stage is enough; buckets are global, so their names carry the account.
    Answers None for a bucket when ``account`` is None.
    """
    special = {
        "TOKEN_SECRET_PARAMETER": f"/rollcall/{stage}/token-secret",
        "FACE_COLLECTION": f"rollcall-{stage}-faces",
        "COMPLETION_TOPIC": f"rollcall-{stage}-face-search-done",
        "REKOGNITION_ROLE": f"rollcall-{stage}-rekognition-publish",
        "EVIDENCE_QUEUE": f"rollcall-{stage}-evidence",
        "CONVERSION_ROLE": f"rollcall-{stage}-mediaconvert",
    }
    if variable in special:
        return special[variable]
    base = variable.lower().rsplit("_", 1)[0].replace("_", "-")
    if variable.endswith("_BUCKET"):
        return None if account is None else f"rollcall-{stage}-{account}-{base}"
    if variable.endswith("_TABLE"):
        return f"rollcall-{stage}-{base}"
    raise KeyError(f"no rule derives a name for {variable}")


def needs_account(stage, path=CONFIG_PATH, environ=None):
    """Whether resolving ``stage`` needs the AWS account (a bucket left unnamed)."""
    env = configured_environment(stage, path)
    environ = {} if environ is None else environ
    return any(var.endswith("_BUCKET") and not env.get(var) and not environ.get(var)
               for var in _name_variables())


def stage_environment(stage, path=CONFIG_PATH, account=None):
    """The environment variables a stage's API function runs with.

    The config's variables, then a derived name for every resource name the
    stage leaves out (see :func:`derived_name`); without ``account``, bucket
    names the stage leaves out stay unset.
    """
    env = configured_environment(stage, path)
    env.setdefault("ROLLCALL_STAGE", stage)
    for variable in _name_variables():
        if not env.get(variable):
            name = derived_name(stage, variable, account)
            if name is not None:
                env[variable] = name
    return env


def current_account(session=None):
    """The account id of the current credentials (STS GetCallerIdentity)."""
    from botocore.exceptions import BotoCoreError, ClientError
    session = aws_session(session)
    try:
        return session.client("sts").get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as error:
        raise StageError(f"cannot tell which AWS account the credentials belong to "
                         f"({error}): set AWS_PROFILE or the AWS_ACCESS_KEY_ID variables")



def apply_stage_environment(stage, environ=None, path=CONFIG_PATH, account=None):
    """Put a stage's variables into ``environ`` (default ``os.environ``).

    Variables already set win, so the local stack and ops can override any
    name without editing the config. The account is asked of STS only when a
    bucket name must be derived and is not already in ``environ``.
    """
    environ = os.environ if environ is None else environ
    if account is None and needs_account(stage, path, environ):
        account = current_account()
    for key, value in stage_environment(stage, path, account).items():
        environ.setdefault(key, value)
    return environ


def check_site_origin(origin):
    """Refuse an origin a deployed site cannot have; answer it normalised.

    A deployed stage's browsers come over HTTPS from a real host: the
    documentation placeholder, a reserved test domain, a loopback address or
    plain HTTP would leave every browser refused by CORS.
    """
    from urllib.parse import urlsplit
    value = (origin or "").strip().rstrip("/")
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if value in PLACEHOLDER_ORIGINS or _RESERVED_HOST.search(host):
        raise StageError(f"SITE_ORIGIN {origin!r} is a placeholder: remove it from the stage "
                         "in .chalice/config.json to use the site's CloudFront address, or "
                         "set the real HTTPS origin the site is served from")
    if parts.scheme != "https" or not host or parts.path or parts.query or parts.fragment:
        raise StageError(f"SITE_ORIGIN {origin!r} must be an https://host origin "
                         "(no path), the address browsers load the site from")
    if host in ("127.0.0.1", "::1") or host.startswith("127."):
        raise StageError(f"SITE_ORIGIN {origin!r} is a local address; a deployed stage "
                         "needs the address browsers reach it at")
    return value


def session_region(session):
    """The region a boto3 session resolved (environment or profile); never a guess.

    ``chalice deploy`` deploys to that region; provisioning elsewhere would
    leave the Lambdas without their tables, so with none set this stops.
    """
    # botocore reads AWS_DEFAULT_REGION and the profile; AWS_REGION is the
    # newer SDKs' name (and Lambda's), honoured here too.
    region = session.region_name or os.environ.get("AWS_REGION")
    if not region:
        raise StageError("no AWS region is set: set AWS_REGION (or AWS_DEFAULT_REGION), "
                         "or 'region' in your AWS profile, to the region to deploy to")
    return region


def aws_session(session=None):
    """``session`` (default: a new boto3 one) bound to :func:`session_region`'s region."""
    import boto3
    session = session or boto3.session.Session()
    region = session_region(session)
    if session.region_name != region:
        session = boto3.session.Session(region_name=region,
                                        profile_name=session.profile_name
                                        if session.profile_name != "default" else None)
    return session
