"""An HTTP endpoint that speaks AWS Elemental MediaConvert's REST-JSON protocol.

An unchanged boto3 ``mediaconvert`` client pointed at it (``endpoint_url`` or
``AWS_ENDPOINT_URL_MEDIACONVERT``) works: bodies are converted from and to the
wire's names by botocore's own model (:mod:`local.convert.wire`), errors come
back with ``x-amzn-ErrorType`` so boto3 raises its typed exceptions. Requests
are not signature-checked: a local stand-in, bound to 127.0.0.1.

    python -m local.convert.server --port 9011 --data-dir .rollcall/convert \\
        [--events-queue-url URL]
"""
import argparse
import json
import logging
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from botocore.config import Config

from local.convert.api import MediaConvertApi
from local.convert.wire import MediaConvertError, from_wire, service_model, to_wire
from local.serving import bind, serve_until_signalled

log = logging.getLogger("rollcall.converter")
MAX_BODY_BYTES = 1024 * 1024
_JOB = re.compile(r"/2017-08-29/jobs/([^/?]+)")


class _Handler(BaseHTTPRequestHandler):
    server_version = "RollcallConverter/1.0"
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self._answer(self._post)

    def do_GET(self):
        self._answer(self._get)

    def _post(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise MediaConvertError("BadRequestException", "The request is too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise MediaConvertError("BadRequestException", "The body is not JSON") from None
        path = self.path.split("?")[0]
        if path == "/2017-08-29/jobs":
            return 201, "CreateJob", self.server.api.create_job(
                from_wire(_input_shape("CreateJob"), body))
        if path == "/2017-08-29/endpoints":
            return 200, "DescribeEndpoints", self.server.api.describe_endpoints()
        raise MediaConvertError("NotFoundException", f"POST {path} is not served here", 404)

    def _get(self):
        match = _JOB.fullmatch(self.path.split("?")[0])
        if not match:
            raise MediaConvertError("NotFoundException", f"GET {self.path} is not served here",
                                    404)
        return 200, "GetJob", self.server.api.get_job(match.group(1))

    def _answer(self, handler):
        headers = {}
        try:
            status, operation, answer = handler()
            body = to_wire(service_model().operation_model(operation).output_shape, answer)
        except MediaConvertError as error:
            status, body = error.status, {"message": error.message}
            headers["x-amzn-ErrorType"] = error.code
        except Exception:  # noqa: BLE001 - answer 500, keep serving
            log.exception("request failed")
            status, body = 500, {"message": "Internal error in the converter"}
            headers["x-amzn-ErrorType"] = "InternalServerErrorException"
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)


def _input_shape(operation):
    return service_model().operation_model(operation).input_shape


class ConverterServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host="127.0.0.1", port=0, *, s3=None, sqs=None, data_dir=None,
                 events_queue_url=None, region="us-east-1"):
        super().__init__((host, port), _Handler)
        self.url = f"http://{host}:{self.server_address[1]}"
        config = Config(retries={"max_attempts": 3})
        self.api = MediaConvertApi(s3 or boto3.client("s3", region_name=region, config=config),
                                   sqs or boto3.client("sqs", region_name=region, config=config),
                                   data_dir=data_dir, events_queue_url=events_queue_url,
                                   endpoint_url=self.url, region=region)

    def server_close(self):
        self.api.close()
        super().server_close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.convert.server",
                                     description="The built-in MediaConvert endpoint.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9011)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--events-queue-url", default=None)
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = bind(lambda: ConverterServer(args.host, args.port, data_dir=args.data_dir,
                                          events_queue_url=args.events_queue_url,
                                          region=args.region), args.host, args.port)
    if server is None:
        return 1
    serve_until_signalled(server, f"listening on {server.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
