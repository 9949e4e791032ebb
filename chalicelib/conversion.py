"""Converting recordings Rekognition cannot read into H.264 MP4 (MediaConvert).

Rekognition Video reads H.264 in MP4 or MOV only; phones record HEVC, screen
recorders VP9 or AV1. :class:`Converter` is the only code that speaks to AWS
Elemental MediaConvert (on one machine, the built-in converter behind the
same API). It is given a boto3 ``mediaconvert`` client and never changes a
session itself: :mod:`chalicelib.sessions` starts it and reads its result.

* Output: ``converted/<session_id>/video.mp4`` in the videos bucket, outside
  ``videos/`` so its creation is no upload event. H.264 (QVBR), the source's
  picture size up to 1080p (portrait up to 1080 wide), the source's frame rate
  but at least 15 fps and at most 30: faces stay sharp, files stay small.
* Idempotency: ``ClientRequestToken`` = ``<session id>-<attempt>``, so a
  repeated upload event gets the same job back instead of a second job.
* Completion: MediaConvert's "Job State Change" event (EventBridge), or
  ``GetJob`` when the session is looked at; both give a :class:`ConversionResult`.
"""
import dataclasses
import re

from botocore.exceptions import ClientError

CONVERTED_PREFIX = "converted/"
#: Faces need at least this many frames a second; more than 30 adds nothing.
MIN_FPS, MAX_FPS = 15, 30
#: The longest side / shortest side the output keeps (1080p).
MAX_LONG_SIDE, MAX_SHORT_SIDE = 1920, 1080
#: QVBR quality 1-10: 8 keeps small faces' detail at about a third of the source's size.
QVBR_QUALITY = 8
MAX_BITRATE = 8_000_000

SUBMITTED, PROGRESSING, COMPLETE, CANCELED, ERROR = (
    "SUBMITTED", "PROGRESSING", "COMPLETE", "CANCELED", "ERROR")
FINISHED = (COMPLETE, CANCELED, ERROR)


class ConversionProblem(Exception):
    """The conversion could not be started; ``str()`` is for the teacher."""


@dataclasses.dataclass
class ConversionResult:
    job_id: str
    status: str                 # one of SUBMITTED .. ERROR
    percent: int | None = None  # while PROGRESSING, when MediaConvert says
    output_key: str | None = None
    message: str = ""
    session_id: str | None = None
    attempt: int | None = None

    @property
    def finished(self):
        return self.status in FINISHED


def converted_key(session_id):
    return f"{CONVERTED_PREFIX}{session_id}/video.mp4"


def output_size(width, height):
    """The output picture size: the source's, scaled down to fit 1080p, even sides."""
    long_side, short_side = max(width, height), min(width, height)
    scale = min(1.0, MAX_LONG_SIDE / long_side, MAX_SHORT_SIDE / short_side)
    return (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))


def output_fps(fps):
    """Whole frames a second: the source's, kept within 15..30 (15 when unknown)."""
    if not fps:
        return MIN_FPS
    return int(min(MAX_FPS, max(MIN_FPS, round(fps))))


def request_token(session_id, attempt):
    return f"{session_id}-{attempt}"


class Converter:
    """``role_arn``, or ``role_name`` and an ``sts`` client to find the account with;
    ``stage`` goes into each job's metadata, which the completion rule matches on."""

    def __init__(self, mediaconvert, *, bucket, role_arn=None, role_name=None, sts=None,
                 stage=None, queue_arn=None):
        self._mediaconvert = mediaconvert
        self._role_arn, self._role_name, self._sts = role_arn, role_name, sts
        self.bucket = bucket
        self.stage = stage
        self.queue_arn = queue_arn

    @property
    def role_arn(self):
        if self._role_arn is None:
            account = self._sts.get_caller_identity()["Account"]
            self._role_arn = f"arn:aws:iam::{account}:role/{self._role_name}"
        return self._role_arn

    def job_settings(self, source_key, session_id, info):
        """CreateJob's ``Settings`` for converting ``source_key`` (of :class:`VideoInfo`)."""
        width, height = output_size(info.width, info.height)
        fps = output_fps(info.fps)
        destination = f"s3://{self.bucket}/{converted_key(session_id)[:-len('.mp4')]}"
        return {
            "TimecodeConfig": {"Source": "ZEROBASED"},
            "Inputs": [{
                "FileInput": f"s3://{self.bucket}/{source_key}",
                "TimecodeSource": "ZEROBASED",
                # Phones store portrait video sideways with a rotation flag.
                "VideoSelector": {"Rotate": "AUTO"},
            }],
            "OutputGroups": [{
                "Name": "H.264 for face search",
                "OutputGroupSettings": {"Type": "FILE_GROUP_SETTINGS",
                                        "FileGroupSettings": {"Destination": destination}},
                "Outputs": [{
                    "ContainerSettings": {"Container": "MP4", "Mp4Settings": {
                        "MoovPlacement": "PROGRESSIVE_DOWNLOAD"}},
                    "VideoDescription": {
                        "Width": width, "Height": height,
                        "ScalingBehavior": "DEFAULT",
                        "CodecSettings": {"Codec": "H_264", "H264Settings": {
                            "RateControlMode": "QVBR",
                            "QvbrSettings": {"QvbrQualityLevel": QVBR_QUALITY},
                            "MaxBitrate": MAX_BITRATE,
                            "FramerateControl": "SPECIFIED",
                            "FramerateNumerator": fps, "FramerateDenominator": 1,
                            "FramerateConversionAlgorithm": "DUPLICATE_DROP",
                            "SceneChangeDetect": "TRANSITION_DETECTION",
                        }},
                    },
                }],
            }],
        }

    def start(self, *, source_key, session_id, attempt, info):
        """Start (or find again, same token) the job; its id."""
        request = {"Role": self.role_arn,
                   "Settings": self.job_settings(source_key, session_id, info),
                   "UserMetadata": {"session_id": session_id, "attempt": str(attempt),
                                    **({"stage": self.stage} if self.stage else {})},
                   "ClientRequestToken": request_token(session_id, attempt),
                   "StatusUpdateInterval": "SECONDS_10"}
        if self.queue_arn:
            request["Queue"] = self.queue_arn
        try:
            return self._mediaconvert.create_job(**request)["Job"]["Id"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("TooManyRequestsException", "InternalServerErrorException",
                        "ServiceUnavailableException"):
                raise ConversionProblem("The video converter is busy. Retry this session in "
                                        "a few minutes.") from error
            raise

    def read(self, job_id):
        """What GetJob says of ``job_id`` now."""
        job = self._mediaconvert.get_job(Id=job_id)["Job"]
        metadata = job.get("UserMetadata") or {}
        output_key = None
        if job["Status"] == COMPLETE:
            # GetJob names no output file; it is the destination plus the container's
            # extension, as MediaConvert writes it (the event names it outright).
            groups = (job.get("Settings") or {}).get("OutputGroups") or [{}]
            destination = (groups[0].get("OutputGroupSettings", {})
                           .get("FileGroupSettings", {}).get("Destination"))
            output_key = self._key_of(f"{destination}.mp4") if destination else None
        return ConversionResult(
            job_id=job["Id"], status=job["Status"], percent=job.get("JobPercentComplete"),
            output_key=output_key, message=job.get("ErrorMessage") or "",
            session_id=metadata.get("session_id"),
            attempt=_int_or_none(metadata.get("attempt")))

    def _key_of(self, s3_url):
        match = re.fullmatch(rf"s3://{re.escape(self.bucket)}/(.+)", s3_url or "")
        return match.group(1) if match else None


def parse_job_event(detail, bucket):
    """MediaConvert's "Job State Change" event ``detail`` as a :class:`ConversionResult`,
    or None if it is not about one of our jobs' end or progress."""
    if not isinstance(detail, dict) or not detail.get("jobId"):
        return None
    status = detail.get("status")
    if status == "STATUS_UPDATE":
        status = PROGRESSING
    if status not in (SUBMITTED, PROGRESSING, COMPLETE, CANCELED, ERROR, "INPUT_INFORMATION"):
        return None
    if status == "INPUT_INFORMATION":
        status = PROGRESSING
    metadata = detail.get("userMetadata") or {}
    outputs = [path for group in detail.get("outputGroupDetails") or []
               for output in group.get("outputDetails") or []
               for path in output.get("outputFilePaths") or []]
    key = None
    if outputs:
        match = re.fullmatch(rf"s3://{re.escape(bucket)}/(.+)", outputs[0])
        key = match.group(1) if match else None
    percent = (detail.get("jobProgress") or {}).get("jobPercentComplete")
    return ConversionResult(job_id=detail["jobId"], status=status, percent=percent,
                            output_key=key, message=detail.get("errorMessage") or "",
                            session_id=metadata.get("session_id"),
                            attempt=_int_or_none(metadata.get("attempt")))


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
