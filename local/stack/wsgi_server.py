"""A small threaded HTTP/1.1 WSGI server for the stack's AWS stand-in (moto).

One thread per connection reads a request, runs the app and writes the whole
answer in one go, so a request costs no hand-offs between threads. Waitress,
used before, parks every connection in one select loop that asks each of them
whether it is readable and writable on every event, and hands each request
to a worker thread and its answer back: with the API's hundred kept-alive
connections, a third of moto's CPU went to that bookkeeping.

Invariants:
- a connection is kept alive unless the client asks to close it or its
  request body cannot be delimited; requests on one connection are answered
  in order, each fully read before the next is parsed;
- the app's ``wsgi.input`` never reads past the request's own body: a body
  with ``Content-Length`` is read through a bounded reader, a chunked one is
  decoded into a spooled file first; what the app leaves unread is skipped;
  a body whose end is uncertain (a malformed or repeated length, both a
  length and a transfer coding, a transfer coding other than chunked, a
  malformed chunk) is refused with 400 and the connection closed;
- a client that leaves mid-request is no server error: its connection ends;
- an answer with a body of known length goes out as one buffered write with
  ``TCP_NODELAY`` (no Nagle delay behind the client's delayed ACK);
- once the server is shut down, no new request is run on any connection, and
  shutdown() returns after the requests already running are answered.
"""
import io
import re
import socketserver
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

#: Bodies of chunked requests up to this size stay in memory.
SPOOL_IN_MEMORY = 1024 * 1024
#: An idle kept-alive connection is closed after this many seconds.
IDLE_TIMEOUT_S = 300
#: Answers up to this size are joined with their head into one write.
JOIN_BELOW = 256 * 1024
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class ClientGone(ConnectionError):
    """The client closed its connection, or went silent, while sending its body."""


class BoundedReader(io.RawIOBase):
    """At most ``length`` bytes of ``stream``: the request's body, no more."""

    def __init__(self, stream, length):
        self._stream = stream
        self.left = length

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.left <= 0 or not len(buffer):
            return 0
        view = memoryview(buffer)[:self.left]
        try:
            count = self._stream.readinto(view)
        except (ConnectionError, TimeoutError) as error:
            raise ClientGone(f"the connection failed mid-body: {error}") from error
        if not count:
            raise ClientGone("the client closed the connection mid-body")
        self.left -= count
        return count

    def skip_rest(self):
        while self.left > 0 and self.read(min(self.left, 65536)):
            pass


def read_chunked(stream):
    """The decoded body of a ``Transfer-Encoding: chunked`` request, spooled."""
    body = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    while True:
        line = stream.readline(1024)
        if not line.endswith(b"\n"):
            raise ValueError("a chunk size line is cut short")
        digits = line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(digits):
            raise ValueError("a chunk size is not a hexadecimal number")
        size = int(digits, 16)
        if size == 0:
            break
        while size:
            piece = stream.read(min(size, 65536))
            if not piece:
                raise ClientGone("the client closed the connection mid-chunk")
            body.write(piece)
            size -= len(piece)
        if stream.readline(3) not in (b"\r\n", b"\n"):
            raise ValueError("a chunk's data is not followed by its line end")
    while stream.readline(8192).strip():    # trailers, up to the empty line
        pass
    length = body.tell()
    body.seek(0)
    return body, length


class WSGIRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S

    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        """The app logs what matters; a line per request is noise."""

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
            self.close_connection = True
            self.send_error(414)
            return
        if not self.raw_requestline or not self.server.begin_request():
            # (stopping: a request read after the stop is not run; the client
            # sees the connection close unanswered and sends it again elsewhere)
            self.close_connection = True
            return
        try:
            if not self.parse_request():
                return
            try:
                self._run_app()
            except (ConnectionError, TimeoutError):
                self.close_connection = True
        finally:
            self.server.end_request()
        if self.server.stopping.is_set():
            self.close_connection = True

    def _body(self):
        """The body's reader and length, or (None, None) when its end is not
        certain (the connection is then closed rather than misread)."""
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings and lengths:
            return None, None       # which one ends the body is a guess: refuse
        if encodings:
            if [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
                return None, None
            try:
                return read_chunked(self.rfile)
            except ValueError:
                return None, None
        lengths = lengths or ["0"]
        if len(lengths) != 1 or not _DIGITS.fullmatch(lengths[0].strip()):
            return None, None
        length = int(lengths[0])
        return BoundedReader(self.rfile, length), length

    def _environ(self, body, length):
        path, _, query = self.path.partition("?")
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        environ = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": self.path,
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "CONTENT_LENGTH": str(length),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": body,
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        content_type = self.headers.get("Content-Type")
        if content_type is not None:
            environ["CONTENT_TYPE"] = content_type
        for name, value in self.headers.items():
            if "_" in name:
                continue    # as waitress: "X_Foo" must not pass for "X-Foo"
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = environ[key] + "," + value if key in environ else value
        return environ

    def _run_app(self):
        body, length = self._body()
        if body is None:
            self.close_connection = True
            self.send_error(400, "the request's body has no readable length")
            return
        answer = {}

        def start_response(status, headers, exc_info=None):
            if exc_info and answer.get("sent"):
                raise exc_info[1].with_traceback(exc_info[2])
            answer["status"], answer["headers"] = status, headers
            return self._write_unexpected

        try:
            result = self.server.app(self._environ(body, length), start_response)
            try:
                chunks = result if isinstance(result, list) else list(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except ClientGone:
            raise           # the client went away mid-body: nobody to answer
        except Exception:
            # The app failed before answering: say so, and start afresh on a new
            # connection (what it read of the body is unknown).
            self.server.handle_error(self.request, self.client_address)
            self.close_connection = True
            self._send("500 Internal Server Error", [("Content-Type", "text/plain")],
                       [b"internal error"])
            return
        if isinstance(body, BoundedReader):
            body.skip_rest()
        else:
            body.close()
        self._send(answer["status"], answer["headers"], chunks)

    def _write_unexpected(self, data):
        raise RuntimeError("this server does not support the WSGI write() callable")

    def _send(self, status, headers, chunks):
        head = [f"HTTP/1.1 {status}\r\n"]
        names = set()
        for name, value in headers:
            names.add(name.lower())
            head.append(f"{name}: {value}\r\n")
        if "date" not in names:
            head.append(f"Date: {self.date_time_string()}\r\n")
        size = sum(len(chunk) for chunk in chunks)
        if self.command == "HEAD" or status[:3] in ("204", "304") or status[0] == "1":
            chunks = []
        elif "content-length" not in names:
            head.append(f"Content-Length: {size}\r\n")
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        head = "".join(head).encode("latin-1")
        if size <= JOIN_BELOW:
            self.wfile.write(head + b"".join(chunks))
        else:
            self.wfile.write(head)
            for chunk in chunks:
                self.wfile.write(chunk)
        self.wfile.flush()


class ThreadedWSGIServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Has the socketserver methods :func:`local.serving.serve_until_signalled` uses."""

    daemon_threads = True
    block_on_close = False      # kept-alive connections' threads may idle for minutes
    allow_reuse_address = True
    request_queue_size = 1024

    #: How long :meth:`serve_forever` waits, once stopped, for the requests in progress.
    DRAIN_TIMEOUT_S = 30.0

    def __init__(self, app, host, port):
        self.app = app
        self.stopping = threading.Event()
        self._running = 0
        self._idle = threading.Condition()
        super().__init__((host, port), WSGIRequestHandler)

    def begin_request(self):
        """Count a request in; False once the server is stopping (not run)."""
        with self._idle:
            if self.stopping.is_set():
                return False
            self._running += 1
            return True

    def end_request(self):
        with self._idle:
            self._running -= 1
            self._idle.notify_all()

    def serve_forever(self, poll_interval=0.5):
        """Serve until :meth:`shutdown`, then wait (up to DRAIN_TIMEOUT_S) until
        the requests in progress are answered: what runs after the serve loop
        (moto's final snapshot, serving.serve_until_signalled) then runs after
        the last request, never beside one still spooling its body."""
        super().serve_forever(poll_interval)
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout=self.DRAIN_TIMEOUT_S)

    def shutdown(self):
        """Stop accepting and stop reading new requests on kept connections."""
        with self._idle:
            self.stopping.set()
        super().shutdown()

    @property
    def port(self):
        return self.server_address[1]
