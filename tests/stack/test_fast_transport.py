"""The local API server's DynamoDB calls over kept-alive http.client connections
(local.stack.fast_transport): the same answers and errors as botocore's own
sending, a connection the server closed is replaced, failures are botocore's."""
import contextlib
import socket
import socketserver
import struct
import threading
import time

import boto3
import pytest
from botocore import exceptions, handlers
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from local.stack import fast_transport
from local.stack.wsgi_server import ThreadedWSGIServer
from tests.support.stack import free_port

pytestmark = pytest.mark.stack

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(autouse=True)
def only_where_registered(monkeypatch):
    """Clients here send through ``send`` only where a test registers it (the API
    server's tests install it for every new session in their process)."""
    monkeypatch.setattr(handlers, "BUILTIN_HANDLERS",
                        [h for h in handlers.BUILTIN_HANDLERS if fast_transport.send not in h])


def _client(url, fast, config=None):
    client = boto3.session.Session().client(
        "dynamodb", endpoint_url=url, region_name="eu-west-1", aws_access_key_id="local",
        aws_secret_access_key="local", config=config)
    if fast:
        client.meta.events.register("before-send.dynamodb", fast_transport.send)
    return client


@pytest.fixture(scope="module")
def moto_url():
    server = ThreadedWSGIServer(DomainDispatcherApplication(create_backend_app),
                                "127.0.0.1", free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()


def test_same_answers_and_errors_as_botocore_sending(moto_url):
    plain, fast = _client(moto_url, False), _client(moto_url, True)
    sent = []
    fast.meta.events.register("before-send.dynamodb", lambda request, **kw: sent.append(1),
                              unique_id="count-first")
    fast.create_table(TableName="ft", BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    item = {"k": {"S": "zoë"}, "n": {"N": "1.5"}, "m": {"M": {"l": {"L": [{"BOOL": True}]}}}}
    fast.put_item(TableName="ft", Item=item)
    for client in (plain, fast):
        assert client.get_item(TableName="ft", Key={"k": {"S": "zoë"}})["Item"] == item
        with pytest.raises(exceptions.ClientError) as failed:
            client.put_item(TableName="ft", Item=item, ConditionExpression="attribute_not_exists(k)")
        assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
        with pytest.raises(exceptions.ClientError) as missing:
            client.get_item(TableName="no-such-table", Key={"k": {"S": "a"}})
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert len(sent) >= 5


def _read_request(stream):
    """Read one request (its head and its Content-Length body) off ``stream``."""
    length = 0
    while True:
        line = stream.readline()
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    stream.read(length)


class _OneAnswerPerConnection(socketserver.StreamRequestHandler):
    """Answers one request, then closes without saying so (an idle timeout)."""

    def handle(self):
        self.server.count += 1     # connections
        _read_request(self.rfile)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
                         b"Content-Length: 17\r\n\r\n{\"TableNames\":[]}")


@contextlib.contextmanager
def _serving(handler):
    """A fake endpoint served by ``handler`` (it counts in ``server.count``), and
    a client sending to it through the transport, botocore's retries off."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.count = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server, _client(f"http://127.0.0.1:{server.server_address[1]}", True, NO_RETRIES)
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_the_server_closed_is_replaced_not_failed():
    with _serving(_OneAnswerPerConnection) as (server, client):
        for _ in range(3):
            answer = client.list_tables()
            # replaced here, not by botocore's retries
            assert answer["TableNames"] == [] and answer["ResponseMetadata"]["RetryAttempts"] == 0
        assert server.count == 3


class _CutSecondAnswer(socketserver.StreamRequestHandler):
    """Answers a connection's first request whole; of the second, starts the
    answer and resets the connection halfway through its body."""

    def handle(self):
        for number in (1, 2):
            _read_request(self.rfile)
            self.server.count += 1     # requests
            if number == 1:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n"
                                 b'{"TableNames":[]}')
                self.wfile.flush()
            else:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Tab")
                self.wfile.flush()
                time.sleep(1.0)     # the client has read the head by then
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()     # a reset, not an orderly end


def test_an_answer_cut_short_is_an_error_never_a_second_send():
    """Once moto has started answering, it has done what was asked: the request
    is not sent again behind botocore's back (its own retries stay countable),
    even on a kept connection."""
    with _serving(_CutSecondAnswer) as (server, client):
        assert client.list_tables()["TableNames"] == []
        with pytest.raises(exceptions.ConnectionClosedError):
            client.list_tables()
        time.sleep(0.3)
        assert server.count == 2


def test_nobody_listening_is_botocores_connection_error():
    client = _client(f"http://127.0.0.1:{free_port()}", True, NO_RETRIES)
    with pytest.raises(exceptions.EndpointConnectionError):
        client.list_tables()


def test_only_plain_http_is_taken():
    class Request:
        url, stream_output, body, method = "https://dynamodb.eu-west-1.amazonaws.com/", False, b"", "POST"
    assert fast_transport.send(Request()) is None


def test_install_reaches_sessions_made_afterwards(moto_url, monkeypatch):
    monkeypatch.setattr(handlers, "BUILTIN_HANDLERS", list(handlers.BUILTIN_HANDLERS))
    calls = []
    monkeypatch.setattr(fast_transport, "send", lambda request, **kw: calls.append(1))
    fast_transport.install()
    fast_transport.install()     # once only
    assert handlers.BUILTIN_HANDLERS.count(("before-send.dynamodb", fast_transport.send)) == 1
    _client(moto_url, False).list_tables()
    assert calls == [1]
