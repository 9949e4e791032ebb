"""The threaded WSGI server that serves the stack's moto: HTTP/1.1 as clients speak it."""
import http.client
import socket
import threading
import time

import pytest

from local.stack.wsgi_server import ThreadedWSGIServer

pytestmark = pytest.mark.stack


def echo(environ, start_response):
    """Answers what it was sent: method, path, query, one header and the body."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("the app failed")
    if environ["PATH_INFO"] == "/refused":
        raise ConnectionRefusedError("a connection of the app's own failed")
    if environ["PATH_INFO"] == "/half":
        body = environ["wsgi.input"].read(0)       # leaves the body unread
    else:
        body = environ["wsgi.input"].read()
    text = (f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} ?{environ['QUERY_STRING']} "
            f"x={environ.get('HTTP_X_THING', '-')} type={environ.get('CONTENT_TYPE', '-')} "
            f"len={environ['CONTENT_LENGTH']} "
            f"under={environ.get('HTTP_X_THING', '')}|{environ.get('HTTP_X_OTHER', '-')} "
            ).encode() + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Echo", "yes")])
    return [text[:10], text[10:]]


@pytest.fixture
def server():
    server = ThreadedWSGIServer(echo, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _raw(server, data, read_until=b""):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        got = b""
        while read_until not in got or not read_until:
            piece = sock.recv(65536)
            if not piece:
                break
            got += piece
        return got


def test_kept_alive_connection_answers_requests_in_turn(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    sockets = set()
    for n in range(5):
        connection.request("POST", f"/p%20{n}?q={n}", body=b"x" * n,
                           headers={"X-Thing": str(n), "Content-Type": "application/json"})
        answer = connection.getresponse()
        sockets.add(connection.sock.getsockname())
        assert answer.status == 200
        assert answer.getheader("X-Echo") == "yes"
        assert answer.getheader("Date").endswith(" GMT")
        assert answer.read() == (f"POST /p {n} ?q={n} x={n} type=application/json len={n} "
                                 f"under={n}|- ".encode() + b"x" * n)
    assert len(sockets) == 1
    connection.close()


def test_chunked_body_is_decoded(server):
    got = _raw(server, b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                       b"Connection: close\r\n\r\n"
                       b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n")
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Connection: close" in head
    assert body.endswith(b"len=11 under=|- hello world")


def test_unread_body_does_not_spill_into_the_next_request(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/half", body=b"GET /smuggled HTTP/1.1\r\n\r\n")
    assert connection.getresponse().read().startswith(b"POST /half")
    connection.request("GET", "/next")
    assert connection.getresponse().read().startswith(b"GET /next")
    connection.close()


def test_head_has_no_body_and_expect_continue_is_honoured(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("HEAD", "/h")
    answer = connection.getresponse()
    assert answer.status == 200 and answer.read() == b""
    got = _raw(server, b"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                       b"Expect: 100-continue\r\nConnection: close\r\n\r\nabc")
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    assert got.endswith(b"len=3 under=|- abc")
    connection.close()


@pytest.mark.parametrize("path", ["/boom", "/refused"])
def test_app_failure_answers_500_and_closes(server, path):
    """Any failure of the app is a 500, a connection error of its own too
    (only the client's own leaving goes unanswered)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", path)
    answer = connection.getresponse()
    assert answer.status == 500 and answer.getheader("Connection") == "close"
    answer.read()
    connection.close()
    # the server goes on serving others
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/after")
    assert connection.getresponse().status == 200
    connection.close()


@pytest.mark.parametrize("headers", [
    b"Content-Length: nope\r\n", b"Content-Length: +3\r\n", b"Content-Length: 1_0\r\n",
    b"Content-Length: 3\r\nContent-Length: 4\r\n", b"Content-Length: 3\r\nContent-Length: 3\r\n",
    b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n"],
    ids=["word", "sign", "underscore", "two", "same-twice", "length-and-coding",
         "unknown-coding", "two-codings"])
def test_body_of_uncertain_length_is_refused_and_the_connection_closed(server, headers):
    """A body whose end is uncertain could be read as the start of another
    request on a kept-alive connection: refused, and the connection closed."""
    got = _raw(server, b"POST /x HTTP/1.1\r\nHost: h\r\n" + headers + b"\r\nabcGET /y HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400") and b"Connection: close" in got
    assert b"GET /y" not in got and got.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("chunks", [b"0x3\r\nabc\r\n0\r\n\r\n", b"+3\r\nabc\r\n0\r\n\r\n",
                                    b"1_0\r\nabc\r\n0\r\n\r\n", b"3\r\nabcX0\r\n\r\n"],
                         ids=["0x", "sign", "underscore", "no-line-end-after-data"])
def test_a_malformed_chunk_is_refused_and_the_connection_closed(server, chunks):
    got = _raw(server, b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               + chunks + b"GET /smuggled HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400") and b"Connection: close" in got
    assert b"smuggled" not in got and got.count(b"HTTP/1.1 ") == 1


def test_underscored_header_does_not_pass_for_a_dashed_one(server):
    got = _raw(server, b"GET /u HTTP/1.1\r\nHost: h\r\nX_Other: spoof\r\n"
                       b"Connection: close\r\n\r\n")
    assert got.endswith(b"under=|- ")


def test_too_long_request_line_is_answered_414(server):
    got = _raw(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 414")


def test_client_leaving_mid_body_is_no_server_error(server, monkeypatch):
    errors = []
    monkeypatch.setattr(server, "handle_error", lambda *args: errors.append(args))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\nabc")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/after")
    assert connection.getresponse().status == 200
    connection.close()
    time.sleep(0.5)     # the first connection's thread has long seen the end by now
    assert errors == []


def test_many_connections_at_once(server):
    results, errors = [], []

    def client(n):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
            for i in range(20):
                connection.request("POST", f"/{n}", body=str(i).encode())
                results.append(connection.getresponse().read().endswith(str(i).encode()))
            connection.close()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(results) == 800 and all(results)


def test_no_request_runs_after_shutdown_on_a_kept_connection(server):
    """What stops the server (moto's final snapshot) runs after the last
    request: a kept-alive connection's next request is not run, it is closed."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/before")
    assert connection.getresponse().read().startswith(b"GET /before")
    server.shutdown()
    connection.request("GET", "/after")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        connection.getresponse()
    connection.close()


def test_the_serve_loop_ends_after_the_requests_in_progress_are_answered():
    """moto's final snapshot runs when the serve loop returns
    (serving.serve_until_signalled, on the main thread): a request still
    running then (e.g. spooling a body) would be journaled after it."""
    started, go = threading.Event(), threading.Event()

    def slow(environ, start_response):
        started.set()
        assert go.wait(10)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    server = ThreadedWSGIServer(slow, "127.0.0.1", 0)
    answers, stopped = [], threading.Event()
    threading.Thread(target=lambda: (server.serve_forever(), stopped.set()), daemon=True).start()

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
        connection.request("POST", "/slow", body=b"abc")
        answers.append(connection.getresponse().read())
        connection.close()

    asking = threading.Thread(target=client, daemon=True)
    asking.start()
    assert started.wait(10)
    threading.Thread(target=server.shutdown, daemon=True).start()
    assert not stopped.wait(1.0), "the serve loop ended while a request was running"
    go.set()
    assert stopped.wait(10)
    asking.join(10)
    assert answers == [b"abc"]
    server.server_close()
