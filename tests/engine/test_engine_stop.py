"""A stopped face engine exits promptly, whatever its face searches are doing.

A search blocked where the stop cannot reach it (here: S3 answers the size of
the video, then never sends it) must not keep the process alive; its job is
marked failed on the next start.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KEYS = dict(region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing")


class _StallingS3(BaseHTTPRequestHandler):
    """HEAD: a 4 KB MP4; GET: headers, then nothing until the test ends."""
    released = threading.Event()

    def _head(self):
        self.send_response(200)
        self.send_header("Content-Length", "4096")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        self.end_headers()

    def do_HEAD(self):
        self._head()

    def do_GET(self):
        self._head()
        self.wfile.flush()
        self.released.wait(300)

    def log_message(self, *args):
        pass


def _start_engine(data_dir, env):
    proc = subprocess.Popen([sys.executable, "-m", "local.engine.rekognition_server",
                             "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=ROOT)
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return proc, line.split()[-1]


def test_sigterm_ends_the_engine_while_a_search_is_stuck_reading_s3(tmp_path):
    _StallingS3.released.clear()
    s3 = ThreadingHTTPServer(("127.0.0.1", 0), _StallingS3)
    s3.daemon_threads = True
    threading.Thread(target=s3.serve_forever, daemon=True).start()
    env = dict(os.environ, PYTHONPATH=str(ROOT), AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3.server_address[1]}")
    engine = None
    try:
        engine, url = _start_engine(tmp_path / "faces", env)
        rk = boto3.client("rekognition", endpoint_url=url, **KEYS)
        rk.create_collection(CollectionId="stop")
        job_id = rk.start_face_search(Video={"S3Object": {"Bucket": "videos",
                                                          "Name": "class.mp4"}},
                                      CollectionId="stop")["JobId"]
        time.sleep(2)                           # the search is now waiting on S3
        engine.send_signal(signal.SIGTERM)
        assert engine.wait(timeout=45) == 0, "the engine did not exit"
        scratch = tmp_path / "faces" / "tmp"
        assert any(scratch.iterdir()), "the stuck search had started its download"
        engine, url = _start_engine(tmp_path / "faces", env)
        assert not scratch.exists() or not any(scratch.iterdir()), \
            "what the stopped search was reading is gone"
        job = boto3.client("rekognition", endpoint_url=url, **KEYS).get_face_search(
            JobId=job_id)
        assert job["JobStatus"] == "FAILED" and "stopped" in job["StatusMessage"], \
            json.dumps(job, default=str)
    finally:
        _StallingS3.released.set()
        if engine is not None and engine.poll() is None:
            engine.kill()
        s3.shutdown()
