"""Runtime settings, read from the environment in exactly one place.

The same variables are set by `.chalice/config.json` on Lambda (rendered
with every name of the stage by ``make deploy`` / ``make package``), by the
one-machine stack locally, and by the test fixtures. Lambda code reads
nothing else: no operator module, no config file.
"""
import dataclasses
import os
from typing import Mapping, Optional

import pytz

from chalicelib.errors import ConfigurationError

# (setting name, environment variable) for values that have no sane default.
_REQUIRED = (
    ("users_table", "USERS_TABLE"),
    ("students_table", "STUDENTS_TABLE"),
    ("sessions_table", "SESSIONS_TABLE"),
    ("attendance_table", "ATTENDANCE_TABLE"),
    ("classes_table", "CLASSES_TABLE"),
    ("members_table", "MEMBERS_TABLE"),
    ("photos_bucket", "PHOTOS_BUCKET"),
    ("videos_bucket", "VIDEOS_BUCKET"),
    ("face_collection", "FACE_COLLECTION"),
    ("token_secret_parameter", "TOKEN_SECRET_PARAMETER"),
)

#: The names app.py gives its event sources when it is imported (Chalice reads
#: the decorators then, to wire the S3, SNS, EventBridge and SQS triggers).
EVENT_SOURCE_VARIABLES = ("VIDEOS_BUCKET", "COMPLETION_TOPIC", "ROLLCALL_STAGE",
                          "EVIDENCE_QUEUE")

#: The longest a sign-in token may live; the issue caps it at 12 hours.
MAX_TOKEN_TTL_SECONDS = 12 * 3600


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the app is configured with. Immutable once read."""

    stage: str
    users_table: str
    students_table: str
    sessions_table: str
    attendance_table: str
    classes_table: str
    #: Class memberships: teachers and enrolled people.
    members_table: str
    photos_bucket: str
    videos_bucket: str
    face_collection: str
    token_secret_parameter: str
    #: SNS topic name Rekognition announces job completion on; empty = poll.
    completion_topic: str = ""
    #: IAM role name Rekognition assumes to publish to the topic.
    rekognition_role: str = ""
    #: IAM role name MediaConvert assumes to convert recordings; empty = no conversion
    #: (a recording Rekognition cannot read then fails with a sentence saying so).
    conversion_role: str = ""
    site_origin: str = "http://127.0.0.1:8000"
    time_zone: str = "UTC"
    match_threshold: float = 80.0
    min_sightings: int = 2
    token_ttl_seconds: int = 8 * 3600
    max_video_bytes: int = 2 * 1024 ** 3
    max_photo_bytes: int = 5 * 1024 ** 2
    region: str = "us-east-1"
    #: Private bucket the static site is published to (CloudFront serves it).
    site_bucket: str = ""
    #: A session PROCESSING longer than this has its job looked at (lost or failed: FAILED).
    processing_check_seconds: int = 900
    #: SQS queue the completion asks for the face crops on (chalicelib/evidence.py).
    evidence_queue: str = ""
    #: Days a video is kept after its session completed (0 = as long as the session).
    video_retention_days: int = 30
    #: Days face crops are kept after completion (0 = as long as the session).
    crop_retention_days: int = 0

    @property
    def tz(self):
        return pytz.timezone(self.time_zone)


def event_source_name(variable, environ=None):
    """The value of ``variable`` (one of :data:`EVENT_SOURCE_VARIABLES`), needed at
    import time; a :class:`ConfigurationError` naming it when it is unset."""
    env = os.environ if environ is None else environ
    value = env.get(variable)
    if not value:
        raise ConfigurationError(
            f"{variable} is not set: app.py names its event sources from the environment "
            f"when it is imported. Deploy or package with `make deploy` / `make package` "
            f"(they render .chalice/config.json with every name of the stage), or set "
            f"{variable} (as the one-machine stack and the tests do from the stage's config).")
    return value


def _number(environ, name, default, kind, low, high):
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a {kind.__name__}, got {raw!r}")
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {raw}")
    return value


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``).

    Raises :class:`ConfigurationError` naming every missing variable at once,
    so a misconfigured deployment is fixed in one go.
    """
    env = os.environ if environ is None else environ
    missing = [var for _, var in _REQUIRED if not env.get(var)]
    if missing:
        raise ConfigurationError(
            "missing environment variable(s): " + ", ".join(missing)
            + " (set them in .chalice/config.json for the stage)"
        )
    time_zone = env.get("TIME_ZONE") or "UTC"
    if time_zone not in pytz.all_timezones_set:
        raise ConfigurationError(f"TIME_ZONE {time_zone!r} is not a known time zone")
    return Settings(
        stage=env.get("ROLLCALL_STAGE", "dev"),
        completion_topic=env.get("COMPLETION_TOPIC", ""),
        rekognition_role=env.get("REKOGNITION_ROLE", ""),
        conversion_role=env.get("CONVERSION_ROLE", ""),
        site_origin=env.get("SITE_ORIGIN") or Settings.site_origin,
        time_zone=time_zone,
        match_threshold=_number(env, "MATCH_THRESHOLD", 80.0, float, 0.0, 100.0),
        min_sightings=_number(env, "MIN_SIGHTINGS", 2, int, 1, 10_000),
        token_ttl_seconds=_number(env, "TOKEN_TTL_SECONDS", 8 * 3600, int, 60,
                                  MAX_TOKEN_TTL_SECONDS),
        max_video_bytes=_number(env, "MAX_VIDEO_BYTES", 2 * 1024 ** 3, int,
                                1024, 5 * 1024 ** 3),
        max_photo_bytes=_number(env, "MAX_PHOTO_BYTES", 5 * 1024 ** 2, int,
                                1024, 15 * 1024 ** 2),
        site_bucket=env.get("SITE_BUCKET", ""),
        processing_check_seconds=_number(env, "PROCESSING_CHECK_SECONDS", 900, int, 1,
                                         7 * 24 * 3600),
        evidence_queue=env.get("EVIDENCE_QUEUE", ""),
        video_retention_days=_number(env, "VIDEO_RETENTION_DAYS", 30, int, 0, 3650),
        crop_retention_days=_number(env, "CROP_RETENTION_DAYS", 0, int, 0, 3650),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        **{field: env[var] for field, var in _REQUIRED},
    )
