"""The stack's API server (local.stack.api_server): kept-alive connections that
answer at once, one JSON log line per request."""
import http.client
import json
import os
import socket
import threading

import pytest

import app as app_module
from tests.support.stack import free_port

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def api_server():
    """One server for the module (make_server re-classes the app: once a process),
    everything it changes in this process put back afterwards."""
    from botocore import handlers, parsers

    from chalicelib import clients
    from local.stack.api_server import make_server

    saved = (dict(os.environ), app_module.app.__class__, parsers.PROTOCOL_PARSERS["json"],
             clients._BOTO_CONFIG, list(handlers.BUILTIN_HANDLERS),
             http.client.parse_headers)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    app_module.reset_services(None)
    port = free_port()
    server = make_server("127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, port
    server.shutdown()
    server.server.server_close()
    app_module.reset_services(None)
    environ, app_module.app.__class__, parsers.PROTOCOL_PARSERS["json"], \
        clients._BOTO_CONFIG, handlers.BUILTIN_HANDLERS[:], http.client.parse_headers = saved
    os.environ.clear()
    os.environ.update(environ)


def test_one_kept_alive_connection_answers_request_after_request(api_server, capfd):
    server, port = api_server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):
        connection.request("GET", "/health")
        answer = connection.getresponse()
        assert answer.status == 200 and json.loads(answer.read()) == {"status": "ok"}
        assert not answer.will_close
        connection.request("GET", "/auth/me")  # no token: refused, with the error body
        answer = connection.getresponse()
        assert answer.status == 401
        assert json.loads(answer.read())["error"]["code"] == "missing_token"
    connection.close()
    out, err = capfd.readouterr()
    # The app's JSON line for each request, and no second (http.server) line.
    assert sum('"message": "request"' in line for line in out.splitlines()) == 6
    assert "GET /health HTTP/1.1" not in out + err


def test_answers_go_out_without_waiting_for_nagle(api_server):
    """Head and body in one buffered write, on a socket with Nagle's algorithm off
    (two small writes waited for the client's delayed ACK: 40 ms an answer)."""
    server, port = api_server
    handler = server.server.RequestHandlerClass.func
    assert handler.disable_nagle_algorithm and handler.wbufsize > 0
    accepted = []
    real_setup = handler.setup

    def setup(self):
        real_setup(self)
        accepted.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    handler.setup = setup
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/health")
        assert connection.getresponse().read()
        connection.close()
    finally:
        handler.setup = real_setup
    assert accepted and accepted[0] != 0
