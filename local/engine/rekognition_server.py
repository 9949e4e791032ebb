"""An HTTP endpoint that speaks Amazon Rekognition's JSON protocol.

An unchanged boto3 client pointed at it (``endpoint_url=server.url`` or
``AWS_ENDPOINT_URL_REKOGNITION``) works: requests are ``POST /`` with
``X-Amz-Target: RekognitionService.<Operation>`` and an
``application/x-amz-json-1.1`` body; errors come back as HTTP 400
``{"__type": "<ErrorName>", "message": ...}`` so boto3 raises its typed
exceptions (``client.exceptions.ResourceNotFoundException`` ...). Requests
are not signature-checked: this is a local stand-in, bound to 127.0.0.1.

Run it alone::

    python -m local.engine.rekognition_server --host 127.0.0.1 --port 9010 --data-dir .rollcall/faces

It prints ``listening on http://127.0.0.1:9010`` once ready and stops cleanly
on SIGINT or SIGTERM. Images and videos are read from S3 and completion
messages published to SNS through boto3 clients, which honour
AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL_SNS (moto server on
one machine).
"""
import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from local.engine.rekognition_api import MAX_VIDEO_BYTES, RekognitionApi
from local.engine.service_model import RekognitionError
from local.engine.video import VideoSettings

log = logging.getLogger("rollcall.face_engine")

# A 5 MB image is about 7 MB of base64; anything much larger is refused
# before it is read.
MAX_BODY_BYTES = 8 * 1024 * 1024
_TARGET_PREFIX = "RekognitionService."


class _Handler(BaseHTTPRequestHandler):
    server_version = "RollcallFaceEngine/1.0"
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        target = self.headers.get("X-Amz-Target", "")
        operation = target[len(_TARGET_PREFIX):] if target.startswith(_TARGET_PREFIX) else ""
        try:
            if self.path not in ("/", ""):
                raise RekognitionError("UnknownOperationException",
                                       f"POST {self.path}: the endpoint answers POST / only", 404)
            if not operation:
                raise RekognitionError("UnknownOperationException",
                                       "X-Amz-Target must be RekognitionService.<Operation>")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True       # the unread body must not be parsed
                raise RekognitionError("ImageTooLargeException",
                                       f"The request is {length} bytes; the limit is "
                                       f"{MAX_BODY_BYTES}", 400)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise RekognitionError("SerializationException",
                                       "The request body is not valid JSON") from None
            answer, status = self.server.api.handle(operation, body), 200
        except RekognitionError as exc:
            answer, status = {"__type": exc.code, "message": exc.message}, exc.status
        except Exception:
            log.exception("%s failed (request %s)", operation or "request", request_id)
            answer = {"__type": "InternalServerError",
                      "message": f"Internal error in the face engine (request {request_id})"}
            status = 500
        self._send(status, answer, request_id)
        # Operation, status and time only: never bodies (photos) or headers (signatures).
        log.info("%s %s %d %.0f ms", request_id[:8], operation or "-", status,
                 (time.monotonic() - started) * 1000)

    def do_GET(self):
        if self.path == "/ping":
            self._send(200, {"status": "ok"}, str(uuid.uuid4()))
        else:
            self._send(404, {"__type": "UnknownOperationException",
                             "message": "The endpoint answers POST / (and GET /ping)"},
                       str(uuid.uuid4()))

    def _send(self, status, payload, request_id):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", request_id)
        if status >= 400 and "__type" in payload:
            self.send_header("x-amzn-ErrorType", payload["__type"])
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # the default writes every request to stderr
        log.debug("http: " + fmt, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class RekognitionServer:
    """The endpoint in a background thread: ``RekognitionServer().start().url``.

    ``s3_client``/``sns_client`` default to boto3 clients (honouring the
    AWS_ENDPOINT_URL* variables); ``data_dir=None`` keeps collections and jobs
    in memory, a directory persists them across restarts. ``workers`` is the
    number of processes a video is analysed with (default: ROLLCALL_FACE_WORKERS,
    else the CPU count); the other ROLLCALL_FACE_* variables tune the video
    analysis (see :class:`local.engine.video.VideoSettings`). ``max_jobs``
    face searches run at once (default: ROLLCALL_FACE_MAX_JOBS, else 2); the
    others wait in order and report their place in ``StatusMessage``.
    ``image_workers`` image requests are analysed at once, each on a model
    set of its own (default: as many as video workers, at least 1), and the
    faces of the last ``photo_cache_size`` distinct photos are kept
    (default: ROLLCALL_FACE_PHOTO_CACHE, else 16).
    """

    def __init__(self, host="127.0.0.1", port=0, data_dir=None, s3_client=None,
                 sns_client=None, workers=None, region=None, video_settings=None,
                 max_video_bytes=MAX_VIDEO_BYTES, max_jobs=None, image_workers=None,
                 photo_cache_size=None):
        import boto3
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get(
            "AWS_DEFAULT_REGION") or "us-east-1"
        self.host = host
        self.port = port
        self.data_dir = data_dir
        s3_client = s3_client or boto3.client("s3", region_name=self.region)
        sns_client = sns_client or boto3.client("sns", region_name=self.region)
        if video_settings is None:
            video_settings = VideoSettings.from_env(workers=workers)
        self.api = RekognitionApi(s3_client, sns_client, data_dir=data_dir,
                                  video_settings=video_settings, region=self.region,
                                  max_video_bytes=max_video_bytes, max_jobs=max_jobs,
                                  image_workers=image_workers,
                                  photo_cache_size=photo_cache_size)
        self._httpd = None
        self._thread = None

    def start(self):
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.api = self.api
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="rekognition-endpoint", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.api.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Rekognition-compatible face engine endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", default=None,
                        help="keep collections and jobs here (default: in memory)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes per video analysis, and photos analysed at "
                             "once (default: CPU count)")
    parser.add_argument("--max-jobs", type=int, default=None,
                        help="face searches run at once (default: 2)")
    args = parser.parse_args(argv)
    from local.engine import resnet
    resnet.one_blas_thread()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.data_dir:
        os.makedirs(args.data_dir, exist_ok=True)
    server = RekognitionServer(args.host, args.port, args.data_dir, workers=args.workers,
                               max_jobs=args.max_jobs)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    server.start()
    print(f"listening on {server.url}", flush=True)
    stopping.wait()
    server.stop()
    from local.engine.video import shutdown_pool
    shutdown_pool()
    server.api.wait_for_jobs(timeout=JOBS_STOP_WAIT_S)
    return 0


#: How long a stopping endpoint gives its running face searches to end.
JOBS_STOP_WAIT_S = 15.0


if __name__ == "__main__":
    code = main()
    # Not a normal interpreter exit, which joins every job thread for as long
    # as it takes: a face search blocked where the stop cannot reach it (an S3
    # read, a segment a terminated worker held) would keep the process alive.
    # Its job is marked failed on the next start, and every acknowledged
    # write is on disk already (fsynced before its answer).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
