"""The MediaConvert operations the app uses: CreateJob, GetJob, DescribeEndpoints.

Jobs are kept as JSON files in ``data_dir`` (written whole, then renamed), so
a restart finds them: a job that was waiting or running when the converter
stopped is started again from its source (still in S3), never left
PROGRESSING for ever. One job converts at a time (the face engine needs the
cores more); the rest wait in order. Each state change is announced as
MediaConvert's EventBridge event ("MediaConvert Job State Change") on an SQS
queue, which the local event bridge hands to the app's ``on_cw_event`` handler.
"""
import datetime
import json
import logging
import os
import pathlib
import queue
import re
import tempfile
import threading
import time
import uuid

from botocore.exceptions import ClientError

from local.convert.transcode import transcode
from local.convert.wire import MediaConvertError, bad_request

log = logging.getLogger("rollcall.converter")

_S3_URL = re.compile(r"s3://([^/]+)/(.+)")


def _now():
    return time.time()


class MediaConvertApi:
    def __init__(self, s3, sqs, *, data_dir=None, events_queue_url=None, endpoint_url="",
                 region="us-east-1", account="123456789012"):
        self.s3, self.sqs = s3, sqs
        self.events_queue_url = events_queue_url
        self.endpoint_url = endpoint_url
        self.region, self.account = region, account
        self._dir = pathlib.Path(data_dir) / "jobs" if data_dir else None
        self._jobs, self._tokens = {}, {}
        self._lock = threading.Lock()
        self._queue = queue.Queue()
        self._stopping = threading.Event()
        self._load()
        self._worker = threading.Thread(target=self._run, name="converter", daemon=True)
        self._worker.start()

    def close(self):
        self._stopping.set()
        self._queue.put(None)
        self._worker.join(timeout=10)

    # -- operations ----------------------------------------------------------------------
    def create_job(self, request):
        settings = request["Settings"]
        source, destination = _source_and_destination(settings)
        token = request.get("ClientRequestToken")
        with self._lock:
            if token and token in self._tokens:
                return {"Job": self._public(self._jobs[self._tokens[token]])}
            job_id = f"{int(_now() * 1000)}-{uuid.uuid4().hex[:6]}"
            job = {"Id": job_id, "Arn": f"arn:aws:mediaconvert:{self.region}:{self.account}"
                                         f":jobs/{job_id}",
                   "Status": "SUBMITTED", "CreatedAt": int(_now()), "Role": request["Role"],
                   "Settings": settings, "UserMetadata": request.get("UserMetadata") or {},
                   "ClientRequestToken": token, "Queue": request.get("Queue") or
                   f"arn:aws:mediaconvert:{self.region}:{self.account}:queues/Default",
                   "Timing": {"SubmitTime": int(_now())},
                   "_source": source, "_destination": destination}
            self._jobs[job_id] = job
            if token:
                self._tokens[token] = job_id
            self._save(job)
        self._queue.put(job_id)
        return {"Job": self._public(job)}

    def get_job(self, job_id):
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise MediaConvertError("NotFoundException", f"Job {job_id} not found", 404)
            return {"Job": self._public(job)}

    def describe_endpoints(self):
        return {"Endpoints": [{"Url": self.endpoint_url}]}

    # -- the worker ----------------------------------------------------------------------
    def _run(self):
        while not self._stopping.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._convert(job_id)
            except Exception:  # noqa: BLE001 - a job's failure must not stop the worker
                log.exception("conversion %s failed", job_id)

    def _convert(self, job_id):
        job = self._update(job_id, Status="PROGRESSING", JobPercentComplete=0,
                           Timing=dict(self._jobs[job_id]["Timing"], StartTime=int(_now())))
        self._announce(job, "PROGRESSING")
        bucket, key = job["_source"]
        out_bucket, out_key = job["_destination"]
        description = job["Settings"]["OutputGroups"][0]["Outputs"][0]["VideoDescription"]
        h264 = description["CodecSettings"].get("H264Settings") or {}
        fps = (h264.get("FramerateNumerator") or 15) / (h264.get("FramerateDenominator") or 1)
        with tempfile.TemporaryDirectory(prefix="rollcall-convert-") as work:
            source, target = pathlib.Path(work) / "source", pathlib.Path(work) / "video.mp4"
            try:
                self.s3.download_file(bucket, key, str(source))
            except ClientError as error:
                return self._fail(job_id, 1404, f"Failed to read s3://{bucket}/{key}: "
                                  f"{error.response['Error'].get('Message', 'not found')}")
            last_report = [0]

            def progress(percent):
                self._update(job_id, JobPercentComplete=percent)
                if percent - last_report[0] >= 25 and percent < 100:
                    last_report[0] = percent
                    self._announce(self._jobs[job_id], "STATUS_UPDATE")

            try:
                frames = transcode(source, target, width=description["Width"],
                                   height=description["Height"], fps=fps, progress=progress,
                                   should_stop=self._stopping.is_set)
            except RuntimeError:
                return None  # stopping: the job runs again on the next start
            except Exception as error:  # noqa: BLE001 - FFmpeg's errors are many
                return self._fail(job_id, 1010, f"Unable to decode the input: {error}")
            self.s3.upload_file(str(target), out_bucket, out_key,
                                ExtraArgs={"ContentType": "video/mp4"})
        details = [{"OutputDetails": [{
            "OutputFilePaths": [f"s3://{out_bucket}/{out_key}"],
            "DurationInMs": int(1000 * frames / fps),
            "VideoDetails": {"WidthInPx": description["Width"],
                             "HeightInPx": description["Height"]}}]}]
        job = self._update(job_id, Status="COMPLETE", JobPercentComplete=100,
                           OutputGroupDetails=details,
                           Timing=dict(self._jobs[job_id]["Timing"], FinishTime=int(_now())))
        self._announce(job, "COMPLETE")
        return job

    def _fail(self, job_id, code, message):
        job = self._update(job_id, Status="ERROR", ErrorCode=code, ErrorMessage=message,
                           Timing=dict(self._jobs[job_id]["Timing"], FinishTime=int(_now())))
        self._announce(job, "ERROR")

    # -- state ---------------------------------------------------------------------------
    def _update(self, job_id, **values):
        with self._lock:
            job = self._jobs[job_id]
            job.update(values)
            self._save(job)
            return dict(job)

    def _save(self, job):
        if self._dir is None:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=self._dir, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(job, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._dir / f"{job['Id']}.json")

    def _load(self):
        if self._dir is None or not self._dir.exists():
            return
        unfinished = []
        for path in sorted(self._dir.glob("*.json")):
            job = json.loads(path.read_text())
            self._jobs[job["Id"]] = job
            if job.get("ClientRequestToken"):
                self._tokens[job["ClientRequestToken"]] = job["Id"]
            if job["Status"] in ("SUBMITTED", "PROGRESSING"):
                unfinished.append(job["Id"])
        for job_id in unfinished:  # interrupted by a stop: converted again from the start
            log.info("conversion %s was interrupted; starting it again", job_id)
            self._queue.put(job_id)

    @staticmethod
    def _public(job):
        return {k: v for k, v in job.items() if not k.startswith("_") and k != "ClientRequestToken"}

    def _announce(self, job, status):
        """MediaConvert's EventBridge event for ``job`` onto the events queue."""
        if not self.events_queue_url:
            return
        detail = {"timestamp": int(_now() * 1000), "accountId": self.account,
                  "queue": job["Queue"], "jobId": job["Id"], "status": status,
                  "userMetadata": job.get("UserMetadata") or {}}
        if status == "STATUS_UPDATE":
            detail["jobProgress"] = {"jobPercentComplete": job.get("JobPercentComplete", 0)}
        if status == "COMPLETE":
            detail["outputGroupDetails"] = [{
                "outputDetails": [{
                    "outputFilePaths": d["OutputFilePaths"], "durationInMs": d["DurationInMs"],
                    "videoDetails": {"widthInPx": d["VideoDetails"]["WidthInPx"],
                                     "heightInPx": d["VideoDetails"]["HeightInPx"]}}
                    for d in group["OutputDetails"]],
                "type": "FILE_GROUP"} for group in job["OutputGroupDetails"]]
        if status == "ERROR":
            detail.update(errorCode=job.get("ErrorCode"), errorMessage=job.get("ErrorMessage"))
        event = {"version": "0", "id": str(uuid.uuid4()),
                 "detail-type": "MediaConvert Job State Change", "source": "aws.mediaconvert",
                 "account": self.account,
                 "time": datetime.datetime.now(datetime.timezone.utc).strftime(
                     "%Y-%m-%dT%H:%M:%SZ"),
                 "region": self.region, "resources": [job["Arn"]], "detail": detail}
        try:
            self.sqs.send_message(QueueUrl=self.events_queue_url, MessageBody=json.dumps(event))
        except Exception:  # noqa: BLE001 - GetJob still tells the state
            log.exception("could not announce job %s", job["Id"])


def _source_and_destination(settings):
    try:
        file_input = settings["Inputs"][0]["FileInput"]
        group = settings["OutputGroups"][0]
        destination = group["OutputGroupSettings"]["FileGroupSettings"]["Destination"]
        description = group["Outputs"][0]["VideoDescription"]
    except (KeyError, IndexError, TypeError):
        raise bad_request("Settings need one input (FileInput) and one file output group "
                          "with a VideoDescription") from None
    source, target = _S3_URL.fullmatch(file_input), _S3_URL.fullmatch(destination)
    if not source or not target:
        raise bad_request("FileInput and Destination must be s3:// URLs")
    codec = description.get("CodecSettings", {}).get("Codec")
    if codec != "H_264" or not description.get("Width") or not description.get("Height"):
        raise bad_request("This converter makes H_264 outputs with a Width and Height only")
    out_key = target.group(2) + ".mp4"
    return (source.group(1), source.group(2)), (target.group(1), out_key)
