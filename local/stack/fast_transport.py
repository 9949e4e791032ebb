"""DynamoDB calls of the local API server over plain kept-alive connections.

On the one-machine stack the API process is the bottleneck (one Python
process, its GIL the limit) and botocore's HTTP layer, urllib3 (its pool, a
poll of the socket before each reuse, its header and response wrappers),
is a sixth or more of what a DynamoDB call costs it. Here each thread keeps one
``http.client`` connection to moto instead, through botocore's own hook for
sending (``before-send``, what its Stubber uses): the request is signed,
retried and parsed by botocore as before, only the bytes travel differently.

Invariants:
- only plain-HTTP endpoints (moto on 127.0.0.1) take this path; any other
  answer ``None`` and botocore sends them itself;
- a kept connection the server has closed meanwhile is noticed on use and
  the request sent again once on a new one, only if nothing of an answer
  was read (after that, a failure is raised, never sent again here);
- every other failure is raised as botocore's own connection error
  (``EndpointConnectionError``, ``ConnectionClosedError``,
  ``ReadTimeoutError``), which its retry rules know.
"""
import http.client
import socket
import threading
import urllib.parse

from botocore import exceptions
from botocore.awsrequest import AWSResponse

from chalicelib.clients import _BOTO_CONFIG

#: Seconds to wait for a connection, and for moto's answer: the clients' own.
CONNECT_TIMEOUT_S = _BOTO_CONFIG.connect_timeout
READ_TIMEOUT_S = _BOTO_CONFIG.read_timeout

_connections = threading.local()
#: A kept connection that the server closed while it was idle shows one of these.
_STALE = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected)


class _Body:
    """The answer's bytes, as botocore reads a raw response."""

    def __init__(self, data):
        self._data = data

    def stream(self, **kwargs):
        yield self._data


def _connection(host, port):
    key = (host, port)
    kept = getattr(_connections, "by_address", None)
    if kept is None:
        kept = _connections.by_address = {}
    connection = kept.get(key)
    fresh = connection is None
    if fresh:
        connection = kept[key] = http.client.HTTPConnection(host, port,
                                                            timeout=CONNECT_TIMEOUT_S)
    return connection, fresh


def _forget(host, port):
    connection = getattr(_connections, "by_address", {}).pop((host, port), None)
    if connection is not None:
        connection.close()


def _connect(connection):
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sock.settimeout(READ_TIMEOUT_S)


def send(request, **kwargs):
    """botocore's ``before-send`` handler: the response, or None (not ours)."""
    url = urllib.parse.urlsplit(request.url)
    if url.scheme != "http" or request.stream_output:
        return None
    body = request.body
    if hasattr(body, "read"):
        return None         # a streamed body: leave it to botocore
    if isinstance(body, str):
        body = body.encode("utf-8")
    host, port = url.hostname, url.port or 80
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = dict(request.headers.items())
    try:
        for attempt in (1, 2):
            connection, fresh = _connection(host, port)
            try:
                if connection.sock is None:
                    _connect(connection)
                connection.request(request.method, path, body=body, headers=headers)
                answer = connection.getresponse()
            except _STALE:
                # Nothing of an answer was read: a kept connection the server had
                # closed is replaced once; a new one failing is a real failure.
                _forget(host, port)
                if fresh or attempt == 2:
                    raise
                continue
            # From here moto has answered: a failure is never sent again here.
            data = answer.read()
            return AWSResponse(request.url, answer.status, dict(answer.getheaders()),
                               _Body(data))
    except ConnectionRefusedError as error:
        _forget(host, port)
        raise exceptions.EndpointConnectionError(endpoint_url=request.url) from error
    except TimeoutError as error:
        waiting_to_connect = connection.sock is None
        _forget(host, port)
        if waiting_to_connect:
            raise exceptions.ConnectTimeoutError(endpoint_url=request.url) from error
        raise exceptions.ReadTimeoutError(endpoint_url=request.url) from error
    except (OSError, http.client.HTTPException) as error:
        _forget(host, port)
        raise exceptions.ConnectionClosedError(endpoint_url=request.url) from error
    except BaseException:
        _forget(host, port)     # never leave a half-used connection for the next call
        raise


def install(service="dynamodb"):
    """Send ``service``'s calls of every botocore session made from now on here."""
    from botocore import handlers
    entry = (f"before-send.{service}", send)
    if entry not in handlers.BUILTIN_HANDLERS:
        handlers.BUILTIN_HANDLERS.append(entry)
