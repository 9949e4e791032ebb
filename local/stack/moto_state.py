"""moto server whose state survives a restart.

    python -m local.stack.moto_state --port 8002 --state-dir .rollcall/moto

moto keeps everything in memory. This runs the same WSGI app as
``moto_server`` and snapshots the backends of the services Rollcall uses to
``<state-dir>/moto-state.pickle``: a couple of seconds after a change (less
often when there is so much data that pickling takes long: requests wait at
most a tenth of the time), and once more on SIGTERM/SIGINT; at start the
snapshot is loaded back.

Between snapshots, every request that may change something (all but reads
and SQS receives and deletes) is appended to a journal
(``<state-dir>/journal-<generation>.log``),
and the journal is fsynced before the answer goes out: a write that was
acknowledged survives a crash (SIGKILL, power cut). At start the journal
records newer than the snapshot are replayed, in the order they were
applied (changes run one at a time, reads in parallel with them). A
snapshot starts a new journal generation and deletes the ones it includes,
so the journal never grows past one snapshot interval.

Why a snapshot plus a short journal and not moto's recorder alone: replaying
everything since the beginning grows without bound with every video; a
snapshot is exact and small, and the journal only covers seconds. Replay
does not check signatures or expiry (moto never does), and the state
Rollcall keeps is deterministic (no versioned buckets; SQS receives and deletes are not
journalled, so a replayed message, S3 event or SNS publish may be delivered
a second time, which every consumer tolerates).

S3 object bodies are not put in the pickle: each is written once to
``<state-dir>/blobs/<sha256>`` (content addressed, so an unchanged 1 GB video
is never written twice) and the pickle refers to it; blobs no longer
referenced are removed after each snapshot. Requests hold a shared lock and
a snapshot an exclusive one, so a snapshot never sees half a request.
Receiving, deleting and hiding SQS messages are exempt (a long poll would
block snapshots for 20 s); the worst a torn SQS state can do is deliver a
message again, which every consumer tolerates anyway.
"""
import argparse
import contextlib
import io
import json
import logging
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time

import moto
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from local.serving import bind, serve_until_signalled
from local.stack.snapshot import (BACKUP_PATH, INLINE_BODY_MAX, SNAPSHOT_NAME, STATUS_PATH,
                                  Journal, StateError, StateStore)
from local.stack import fast_headers
from local.stack.wsgi_server import ThreadedWSGIServer

log = logging.getLogger("moto_state")


# -- the server ---------------------------------------------------------------------
class _SharedExclusiveLock:
    """Many requests at once, or one snapshot; a waiting snapshot goes first."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_shared(self):
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def release_shared(self):
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def acquire_exclusive(self):
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True

    def release_exclusive(self):
        with self._cond:
            self._writer = False
            self._cond.notify_all()


def _is_sqs(environ):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    auth = environ.get("HTTP_AUTHORIZATION", "")
    return target.startswith("AmazonSQS") or "/sqs/aws4_request" in auth


def _drain(result):
    try:
        return list(result)
    finally:
        if hasattr(result, "close"):
            result.close()


#: JSON-protocol actions (X-Amz-Target) that only read: no snapshot needed after them.
_READ_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet")


def _may_change_state(environ, body):
    """False for requests that surely changed nothing (so an idle stack, whose
    bridge long-polls SQS all the time, does not snapshot every few seconds)."""
    method = environ.get("REQUEST_METHOD")
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    action = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
    if action == "ReceiveMessage":
        # Receiving changes a message's visibility, but only if there was one.
        return any(b'"Messages"' in chunk or b"<Message>" in chunk for chunk in body)
    return not action.startswith(_READ_PREFIXES)


#: SQS actions that run outside the lock and the journal: a long poll would hold
#: snapshots up, and receiving or deleting a message again only redelivers it.
_UNJOURNALLED_SQS = ("ReceiveMessage", "DeleteMessage", "DeleteMessageBatch",
                     "ChangeMessageVisibility", "ChangeMessageVisibilityBatch")


def _is_journalled_sqs(environ):
    """Queues, their settings and sent messages are kept like everything else."""
    action = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
    return bool(action) and action not in _UNJOURNALLED_SQS and _is_change(environ)


def _is_change(environ):
    """True unless the request surely only reads (decided before running it)."""
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
        return False
    action = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
    return not action.startswith(_READ_PREFIXES)


def _cache_module_list():
    """moto's dispatcher lists its own package directory (a listdir and a stat per
    entry) on every request to find the service; the list never changes while
    the server runs, so it is read once. (A third of moto's time per request.)"""
    from moto import backends
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def _cache_method_names():
    """moto lists a response class's methods (inspect.getmembers) on every request
    to find the action's handler; classes do not change while the server runs."""
    from moto.core import responses
    if getattr(responses.method_names_from_class, "_rollcall_cached", False):
        return
    names = {}
    listing = responses.method_names_from_class

    def method_names_from_class(cls):
        if cls not in names:
            names[cls] = listing(cls)
        return names[cls]

    method_names_from_class._rollcall_cached = True
    responses.method_names_from_class = method_names_from_class


def _quick_random_strings():
    """moto draws each character of a random string (a 52-character request id on
    every answer) with its own ``random.choice``: a tenth of its time for a
    GetItem. ``choices`` draws them at once, from the same generator and alphabet."""
    import string
    from moto.moto_api._internal import mock_random

    kind = type(mock_random)
    if getattr(kind.get_random_string, "_rollcall_quick", False):
        return

    def get_random_string(self, length=20, include_digits=True, lower_case=False):
        pool = string.ascii_letters + (string.digits if include_digits else "")
        drawn = "".join(self.choices(pool, k=length))
        return drawn.lower() if lower_case else drawn

    get_random_string._rollcall_quick = True
    kind.get_random_string = get_random_string


def _attribute_value(value):
    """A DynamoDB AttributeValue as moto's serializer writes it (JSON protocol):
    strings as str, binaries base64, sets as lists, M and L recursively,
    members not in the shape (and None) left out."""
    wire = {}
    for name, member in value.items():
        if member is None:
            continue
        if name in ("S", "N"):
            wire[name] = str(member) if member not in ({}, []) else member
        elif name in ("SS", "NS"):
            wire[name] = [str(v) if v not in (None, {}, []) else v for v in member]
        elif name == "B":
            wire[name] = _base64(member)
        elif name == "BS":
            wire[name] = [_base64(v) for v in member]
        elif name == "M":
            wire[name] = {k: _attribute_value(v) for k, v in member.items()}
        elif name == "L":
            wire[name] = [_attribute_value(v) for v in member]
        elif name in ("NULL", "BOOL"):
            wire[name] = member in (True, "True", "true")
    return wire


def _base64(value):
    import base64
    if isinstance(value, str):
        value = value.encode("utf-8")
    return base64.b64encode(value).strip().decode("utf-8")


def _quick_item_sizes():
    """moto weighs every item a Query or Scan answers twice (its 1 MB page
    limit) through a ``DynamoType`` method call per attribute value, wrapping
    each map value in a new ``DynamoType`` first: a quarter of a Query's time
    for a page of sessions. The same sum, in one plain recursive function."""
    from moto.dynamodb.models.dynamo_type import Item
    if getattr(Item.size, "_rollcall_quick", False):
        return

    def value_size(kind, value):
        if kind == "N":
            return len(str(value))
        if kind in ("SS", "NS", "BS"):
            return sum(value_size(kind[0], member) for member in value)
        if kind == "L":
            return sum(value_size(member.type, member.value) for member in value)
        if kind == "M":
            return sum(len(key.encode("utf-8")) + value_size(member.type, member.value)
                       for key, member in value.items())
        if isinstance(value, bool):
            return 1
        return len(value if isinstance(value, bytes) else value.encode("utf-8"))

    def size(self):
        return sum(len(key.encode("utf-8")) + value_size(attribute.type, attribute.value)
                   for key, attribute in self.attrs.items())

    size._rollcall_quick = True
    size.moto_size = Item.size
    Item.size = size


def _fast_dynamodb_serializer():
    """moto (5.2) writes every DynamoDB answer by walking botocore's output shape
    member by member: each attribute value of each item costs ten lookups of
    every alias of every member of AttributeValue, two thirds of moto's time
    for a GetItem and far more for a Query. Items are already in wire form
    ({"S": ...}) when they reach the serializer, so attribute values (and maps
    of them) are written directly; everything else still takes moto's path.
    (tests/stack/test_moto_serializer.py checks both write the same JSON.)"""
    from moto.core import serialize

    base = serialize.get_serializer_class("dynamodb", "json")
    if getattr(base, "_rollcall_fast", False):
        return base

    class FastDynamoSerializer(base):
        _rollcall_fast = True

        def _serialize_type_structure(self, serialized, value, shape, key):
            if shape.name == "AttributeValue" and key and isinstance(value, dict):
                self._default_serialize(serialized, _attribute_value(value), shape, key)
            else:
                super()._serialize_type_structure(serialized, value, shape, key)

        def _serialize_type_map(self, serialized, value, shape, key):
            if shape.value.name == "AttributeValue" and isinstance(value, dict) and all(
                    isinstance(v, dict) for v in value.values()):
                self._default_serialize(
                    serialized, {k: _attribute_value(v) for k, v in value.items()},
                    shape, key)
            else:
                super()._serialize_type_map(serialized, value, shape, key)

    serialize.SERVICE_SPECIFIC_SERIALIZERS.setdefault("dynamodb", {})["json"] = \
        FastDynamoSerializer
    return FastDynamoSerializer


class DynamoDBFirst:
    """moto's WSGI app, with DynamoDB's JSON calls handed straight to moto's
    DynamoDB handler: the rest of moto goes through Flask (a request context,
    URL routing, CORS and response finalising for each call), which cost a
    quarter of moto's time for a GetItem. What moto's Flask view does for such
    a call is done here (``moto.core.utils.convert_to_flask_response``); the
    answers are the same bytes (tests/stack/test_moto_dynamodb_direct.py)."""

    TARGET_PREFIX = "DynamoDB_20120810."

    def __init__(self, app):
        from moto.dynamodb.responses import DynamoHandler
        from moto.moto_server.werkzeug_app import BackendRequest
        from flask import Response     # the class (and default type) moto's views answer with
        self.app = app
        self._handler, self._request, self._response = DynamoHandler, BackendRequest, Response

    def __call__(self, environ, start_response):
        # Only signed SDK calls: a browser's (CORS) or an unsigned one goes the
        # long way, answered as moto answers it.
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/" \
                or not environ.get("HTTP_X_AMZ_TARGET", "").startswith(self.TARGET_PREFIX) \
                or "/dynamodb/" not in environ.get("HTTP_AUTHORIZATION", "") \
                or "HTTP_ORIGIN" in environ:
            return self.app(environ, start_response)
        from botocore.exceptions import ClientError
        from moto.moto_api import recorder
        request = self._request(environ)
        recorder._record_request(request)
        try:
            result = self._handler.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as error:
            result = 400, {}, error.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = self._response(response=content, status=status, headers=headers)
        # moto's Flask app answers every call with flask-cors's default header.
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response(environ, start_response)


class PersistentMoto:
    """moto's WSGI app behind a lock, with a journal and periodic and final snapshots."""

    def __init__(self, store, interval=2.0, journal=None):
        self.store = store
        self.interval = interval
        self.journal = journal or Journal(store.state_dir)
        _cache_module_list()
        _cache_method_names()
        _quick_random_strings()
        _fast_dynamodb_serializer()
        _quick_item_sizes()
        self.app = DynamoDBFirst(DomainDispatcherApplication(create_backend_app))
        self._lock = _SharedExclusiveLock()
        # Changes run one at a time, so the journal's order is the order applied.
        self._change_lock = threading.Lock()
        # moto's DynamoDB is not safe to run from several threads at once: a Query
        # beside other requests now and then answered "Query condition missed key
        # schema element" (and a write could change a dict a read walked). Its
        # requests take turns; it is one process under the GIL anyway.
        self._dynamodb_lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._save_lock = threading.Lock()
        self._saver = None
        self._wait = interval
        self.snapshots = 0

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/moto-api/reset"):
            # Wiping every table and bucket is never wanted here.
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"reset is disabled: the local stack keeps its data"]
        if environ.get("PATH_INFO") == BACKUP_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.dumps({"dir": str(self.backup()), "moto": moto.__version__}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        if environ.get("PATH_INFO") == STATUS_PATH:
            return self._status(start_response)
        if _is_sqs(environ) and not _is_journalled_sqs(environ):
            body = _drain(self.app(environ, start_response))
        elif _is_change(environ):
            body = self._change(environ, start_response)
        else:
            self._spool_body(environ)
            self._lock.acquire_shared()
            try:
                with self._turn(environ):
                    body = _drain(self.app(environ, start_response))
            finally:
                self._lock.release_shared()
        if _may_change_state(environ, body):
            self._dirty.set()
        return body

    def _turn(self, environ):
        """The lock a request waits for before moto runs it (none for most)."""
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self._dynamodb_lock
        return contextlib.nullcontext()

    def _change(self, environ, start_response):
        """Apply, journal and fsync a changing request; only then answer it."""
        body_file = self.journal.new_body_file()
        journaled = False
        try:
            data = self._spool_body(environ, body_file)
            status = []

            def remember(code, headers, exc_info=None):
                status.append(code)
                return start_response(code, headers, exc_info)

            self._lock.acquire_shared()
            try:
                with self._change_lock, self._turn(environ):
                    body = _drain(self.app(environ, remember))
                    ticket = None
                    # A refused request changed nothing: no need to replay it.
                    if status and int(status[0].split()[0]) < 400:
                        ticket = self.journal.append(environ,
                                                     data if data is not None else b"",
                                                     body_file if data is None else None)
                        journaled = data is None
                if ticket:
                    self.journal.sync(ticket)
            finally:
                self._lock.release_shared()
            return body
        finally:
            # Whatever ended it (a client gone mid-body, a refused request, a
            # failure of moto or of the journal), a spooled body no journal
            # record names must not fill the disk.
            if not journaled:
                body_file.unlink(missing_ok=True)

    def _status(self, start_response):
        """Whether every change so far is in the snapshot (tests wait for this)."""
        body = json.dumps({"saved": not self._dirty.is_set() and not self._save_lock.locked(),
                           "snapshots": self.snapshots,
                           "journal_records": self.journal.records,
                           "next_snapshot_within_s": round(self._wait, 2)}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _spool_body(environ, body_file=None):
        """Read the request body before taking the lock: a slow upload must not
        hold up a snapshot (and with it every other request).

        With ``body_file``: a body larger than :data:`INLINE_BODY_MAX` is
        written there and fsynced (the journal refers to it) and None is
        answered; a smaller one is answered as bytes."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        source = environ["wsgi.input"]
        if length <= 0 and not environ.get("wsgi.input_terminated"):
            return b""
        remaining = length if length > 0 else None
        spooled = (open(body_file, "w+b") if body_file is not None and length > INLINE_BODY_MAX
                   else tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024))
        size = 0
        while remaining is None or remaining:
            block = source.read(1024 * 1024 if remaining is None else min(remaining, 1024 * 1024))
            if not block:
                break
            spooled.write(block)
            size += len(block)
            if remaining is not None:
                remaining -= len(block)
        environ["CONTENT_LENGTH"] = str(size)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        if body_file is not None and size > INLINE_BODY_MAX:
            if not isinstance(spooled, tempfile.SpooledTemporaryFile):
                spooled.flush()
                os.fsync(spooled.fileno())
                spooled.seek(0)
                environ["wsgi.input"] = spooled
                return None
            # Chunked, and bigger than expected: keep it in its own file too.
            spooled.seek(0)
            with open(body_file, "wb") as out:
                shutil.copyfileobj(spooled, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            spooled.close()
            environ["wsgi.input"] = open(body_file, "rb")
            return None
        spooled.seek(0)
        data = spooled.read() if body_file is not None else None
        spooled.seek(0)
        environ["wsgi.input"] = spooled
        return data

    def replay(self, since):
        """Apply the journal's records from generation ``since`` on; how many."""
        count = failed = 0
        for generation in self.journal.generations():
            if generation < since:
                continue
            for meta, body in self.journal.read(generation):
                environ = dict(meta)
                environ.update({"wsgi.version": (1, 0), "wsgi.errors": sys.stderr,
                                "wsgi.multithread": False, "wsgi.multiprocess": False,
                                "wsgi.run_once": False})
                environ.setdefault("wsgi.url_scheme", "http")
                source = open(body, "rb") if isinstance(body, pathlib.Path) else io.BytesIO(body)
                environ["wsgi.input"] = source
                status = []
                try:
                    _drain(self.app(environ, lambda code, headers, exc=None: status.append(code)))
                except Exception:
                    log.exception("replaying %s %s failed", meta.get("REQUEST_METHOD"),
                                  meta.get("PATH_INFO"))
                    failed += 1
                finally:
                    source.close()
                if status and int(status[0].split()[0]) >= 400:
                    failed += 1
                    log.warning("replaying %s %s answered %s", meta.get("REQUEST_METHOD"),
                                meta.get("PATH_INFO"), status[0])
                count += 1
        if failed:
            log.warning("%d of %d replayed requests did not apply cleanly", failed, count)
        return count

    def save(self):
        """Snapshot now (serialised with other saves); returns the size in bytes."""
        with self._save_lock:
            self._dirty.clear()
            self._lock.acquire_exclusive()
            started = time.monotonic()
            try:
                # Changes from now on go to a new generation, which this snapshot does not hold.
                generation = self.journal.generation + 1
                self.journal.open(generation)
                payload = self.store.dump(journal_generation=generation)
            except BaseException:
                self._dirty.set()
                raise
            finally:
                self._lock.release_exclusive()
            # Requests wait while the state is pickled: with much data, snapshot
            # less often so that they wait at most a tenth of the time.
            # (The journal keeps every change meanwhile; at most a minute apart.)
            self._wait = min(60.0, max(self.interval, 10 * (time.monotonic() - started)))
            try:
                self.store.write(payload)
            except BaseException:
                self._dirty.set()   # the journal still holds it all: try again later
                raise
            self.journal.drop_before(generation)
            self.snapshots += 1
            return len(payload)

    def backup(self):
        """Snapshot now and keep a copy of it, with hard links to the blobs it
        names, in a new ``<state-dir>/backup-<random>/`` (answered; the caller
        removes it). Requests wait only while the state is pickled, as for any
        snapshot; no other snapshot replaces it or drops its blobs meanwhile."""
        self.save()
        with self._save_lock:
            target = self.store.state_dir / f"backup-{os.urandom(8).hex()}"
            (target / "blobs").mkdir(parents=True)
            shutil.copy2(self.store.snapshot, target / SNAPSHOT_NAME)
            for name in self.store._used:
                os.link(self.store.blobs / name, target / "blobs" / name)
        return target

    def _save_loop(self):
        while not self._stop.wait(self._wait):
            if self._dirty.is_set():
                try:
                    self.save()
                except Exception:
                    # Keep serving; the next change tries again.
                    log.exception("snapshot failed; will retry")

    def start_saving(self):
        self._saver = threading.Thread(target=self._save_loop, name="snapshot", daemon=True)
        self._saver.start()

    def stop_saving(self):
        self._stop.set()
        if self._saver:
            self._saver.join()


def restore_journal(persistent, since):
    """Replay what the journal holds past the snapshot, then start a fresh generation."""
    journal = persistent.journal
    generations = journal.generations()
    replayed = persistent.replay(since)
    journal.open(max(generations + [since]) + 1)
    if replayed:
        print(f"replayed {replayed} journalled change(s) made after the snapshot", flush=True)
        try:
            persistent.save()
        except Exception as error:
            print(f"error: cannot save the replayed state: {error}", file=sys.stderr, flush=True)
            return False
    journal.drop_before(journal.generation)
    journal.drop_stray_bodies()
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.stack.moto_state",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between snapshots while things change")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    # Werkzeug logs every request; most are polls and noise, keep warnings only.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fast_headers.install()

    store = StateStore(args.state_dir)
    store.warm_up()
    try:
        since = store.load()
    except StateError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    print(f"restored the saved AWS state from {store.snapshot}" if since is not None
          else f"no saved AWS state in {store.state_dir}: starting empty", flush=True)
    persistent = PersistentMoto(store, interval=args.interval)
    if not restore_journal(persistent, since or 0):
        return 2
    server = bind(lambda: ThreadedWSGIServer(persistent, args.host, args.port),
                  args.host, args.port)
    if server is None:
        return 2

    def save_last_state():
        persistent.stop_saving()
        started = time.monotonic()
        size = persistent.save()
        print(f"saved the AWS state ({size} bytes, {time.monotonic() - started:.2f} s); "
              "stopped", flush=True)

    persistent.start_saving()
    serve_until_signalled(server, f"listening on http://{args.host}:{args.port} "
                                  f"(moto {moto.__version__})", before_close=save_last_state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
