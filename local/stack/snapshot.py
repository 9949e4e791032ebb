"""The moto server's state on disk: snapshots of its backends and the journal between them.

:class:`StateStore` pickles the backends of the services Rollcall uses (S3
bodies as content-addressed blobs), :class:`Journal` appends every change
request, fsynced, between two snapshots. :mod:`local.stack.moto_state` is the
server that uses both; see its docstring for how they keep acknowledged
writes across a crash.
"""
import copyreg
import hashlib
import io
import json
import logging
import os
import pathlib
import pickle
import shutil
import struct
import tempfile
import threading
import uuid
import weakref
import zlib
from collections import defaultdict
import _thread

import moto
from moto.backends import get_backend
from moto.core.base_backend import AccountSpecificBackend, BackendDict, BaseBackend
from moto.s3.models import FakeKey

#: The services Rollcall (and its provisioning) uses; their state is kept.

SERVICES = ("s3", "dynamodb", "sqs", "sns", "ssm", "iam", "sts")
SNAPSHOT_NAME = "moto-state.pickle"
#: POST here snapshots now and keeps a copy for a backup (see PersistentMoto.backup).
BACKUP_PATH = "/_rollcall/backup"
#: GET here answers whether every change is saved (not an AWS path: no clash).
STATUS_PATH = "/_rollcall/state"
FORMAT = 2
JOURNAL_PREFIX = "journal-"
JOURNAL_BODIES = "journal-bodies"
#: Request bodies larger than this go to their own file rather than into the journal.
INLINE_BODY_MAX = 1024 * 1024

log = logging.getLogger("moto_state")


class StateError(RuntimeError):
    """The saved state cannot be used; the message says what to do."""


# -- pickling moto's object graph ------------------------------------------------
def _lookup_backend(service, account_id, region):
    return get_backend(service)[account_id][region]


def _lookup_account_backend(service, account_id):
    return get_backend(service)[account_id]


def _new_defaultdict(cls, factory):
    obj = cls.__new__(cls)
    defaultdict.__init__(obj, factory)
    return obj


def _portable_factory(factory):
    """A picklable stand-in for a defaultdict's factory (moto uses lambdas)."""
    if factory is None:
        return None
    try:
        pickle.dumps(factory)
        return factory
    except (pickle.PicklingError, AttributeError, TypeError):
        sample = factory()
        if type(sample) is defaultdict:
            return _DefaultDictFactory(_portable_factory(sample.default_factory))
        if type(sample) in (dict, list, set, int, float, str):
            return type(sample)
        raise


class _DefaultDictFactory:
    """``lambda: defaultdict(inner)``, but picklable."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self):
        return defaultdict(self.inner)


def _new_fakekey(cls):
    return cls.__new__(cls)


def _restore_fakekey(key, state):
    blob_path = state.pop("__blob_path__")
    key.__dict__.update(state)
    key.lock = threading.Lock()
    key._value_buffer = tempfile.SpooledTemporaryFile(max_size=key._max_buffer_size)
    with open(blob_path, "rb") as handle:
        shutil.copyfileobj(handle, key._value_buffer, 16 * 1024 * 1024)


def _subclasses(cls):
    """``cls`` and every class derived from it (that is loaded now)."""
    found, todo = {cls}, [cls]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def _reduce_defaultdict(obj):
    return (_new_defaultdict, (type(obj), _portable_factory(obj.default_factory)),
            getattr(obj, "__dict__", None) or None, None, iter(obj.items()))


class _Pickler(pickle.Pickler):
    """Pickles backends; S3 bodies go to blob files, cross-service links stay links.

    The special cases are in a per-type ``dispatch_table`` (looked up in C by
    exact type) rather than ``reducer_override`` (a Python call per object):
    a third less time spent holding requests up.
    """

    def __init__(self, file, store, roots):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._store = store
        self._roots = roots  # id(backend) of the backends being saved
        table = dict(copyreg.dispatch_table)
        table[threading.Condition] = lambda obj: (threading.Condition, ())
        table[_thread.LockType] = lambda obj: (threading.Lock, ())
        table[_thread.RLock] = lambda obj: (threading.RLock, ())
        for cls in _subclasses(FakeKey):
            table[cls] = self._reduce_key
        for cls in _subclasses(BackendDict):
            table[cls] = lambda obj: (get_backend, (obj.service_name,))
        for cls in _subclasses(AccountSpecificBackend):
            table[cls] = lambda obj: (_lookup_account_backend,
                                      (obj.service_name, obj.account_id))
        for cls in _subclasses(BaseBackend):
            table[cls] = self._reduce_backend
        for cls in _subclasses(defaultdict):
            table[cls] = _reduce_defaultdict
        self.dispatch_table = table

    def _reduce_key(self, obj):
        state = {k: v for k, v in obj.__dict__.items() if k not in ("_value_buffer", "lock")}
        state["__blob__"] = self._store.blob_for(obj)
        return (_new_fakekey, (type(obj),), state, None, None, _restore_key_from_store)

    def _reduce_backend(self, obj):
        # A backend of another service (or region) is a link to the live one.
        where = None if id(obj) in self._roots else _find_backend(obj)
        if where:
            return (_lookup_backend, where)
        return obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)


def _find_backend(backend):
    for backend_dict in list(BackendDict._instances):
        for account_id, region, candidate in backend_dict.iter_backends():
            if candidate is backend:
                return (backend_dict.service_name, account_id, region)
    return None


# The blob directory is known only at load time; the unpickler sets it here.
_LOADING = threading.local()


def _restore_key_from_store(key, state):
    state = dict(state)
    state["__blob_path__"] = _LOADING.blobs / state.pop("__blob__")
    _restore_fakekey(key, state)


class StateStore:
    """Saves and loads moto's backends of :data:`SERVICES` under ``state_dir``."""

    def __init__(self, state_dir, services=SERVICES):
        self.state_dir = pathlib.Path(state_dir)
        self.blobs = self.state_dir / "blobs"
        self.snapshot = self.state_dir / SNAPSHOT_NAME
        self.services = services
        self.blobs.mkdir(parents=True, exist_ok=True)
        # id(FakeKey) -> (weakref, etag, size, blob name): unchanged bodies are not re-hashed.
        self._known = {}
        self._used = set()

    # -- blobs ------------------------------------------------------------------
    def blob_for(self, key):
        """The blob name holding ``key``'s body, writing the blob if it is new."""
        cached = self._known.get(id(key))
        signature = (key._etag, getattr(key, "contentsize", None))
        if cached and cached[0]() is key and cached[1] == signature:
            self._used.add(cached[2])
            return cached[2]
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out, key.lock:
                try:
                    key._value_buffer.seek(0)
                    while True:
                        block = key._value_buffer.read(16 * 1024 * 1024)
                        if not block:
                            break
                        digest.update(block)
                        out.write(block)
                except ValueError:
                    pass  # a disposed (deleted) key: its body is gone, keep it empty
                out.flush()
                os.fsync(out.fileno())  # on disk before a snapshot names it
            name = digest.hexdigest()
            target = self.blobs / name
            if target.exists():
                os.unlink(tmp)
            else:
                os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._known[id(key)] = (weakref.ref(key), signature, name)
        self._used.add(name)
        return name

    # -- snapshot -----------------------------------------------------------------
    def warm_up(self):
        """Import every service's backend now: a first snapshot that had to import
        them would take seconds and space the following ones out for minutes."""
        for service in self.services:
            get_backend(service)

    def _backends(self):
        return {service: {account_id: dict(regions)
                          for account_id, regions in get_backend(service).items()}
                for service in self.services}

    def dump(self, journal_generation=0):
        """The pickled state (bytes); call with requests excluded (see Server).

        ``journal_generation``: the first journal generation it does not include."""
        self._used = set()
        data = self._backends()
        roots = {id(backend) for accounts in data.values()
                  for regions in accounts.values() for backend in regions.values()}
        buffer = io.BytesIO()
        _Pickler(buffer, self, roots).dump({"format": FORMAT, "moto": moto.__version__,
                                            "journal_generation": journal_generation,
                                            "services": data})
        return buffer.getvalue()

    def write(self, payload):
        """Atomically replace the snapshot, then drop blobs it no longer needs."""
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.snapshot)
        # The new blobs' names and the snapshot's are on disk before the caller
        # drops the journal that held these changes.
        _fsync_dir(self.blobs)
        _fsync_dir(self.state_dir)
        used = set(self._used)
        for blob in self.blobs.iterdir():
            if not blob.name.startswith(".") and blob.name not in used:
                blob.unlink(missing_ok=True)
        self._known = {k: v for k, v in self._known.items() if v[0]() is not None}

    def load(self):
        """Put the saved backends back into moto.

        Answers the first journal generation the snapshot does not include
        (None when there is no snapshot)."""
        if not self.snapshot.exists():
            return None
        _LOADING.blobs = self.blobs
        try:
            with open(self.snapshot, "rb") as handle:
                saved = pickle.load(handle)
        except Exception as error:
            raise StateError(
                f"cannot read the saved AWS state {self.snapshot} ({type(error).__name__}: "
                f"{error}). It was probably written by another moto version; to start "
                f"with empty data move the folder {self.state_dir} aside.") from error
        finally:
            _LOADING.blobs = None
        if saved.get("format") != FORMAT:
            raise StateError(f"{self.snapshot} has format {saved.get('format')}, expected "
                             f"{FORMAT}; move {self.state_dir} aside to start empty")
        for service, accounts in saved["services"].items():
            backend_dict = get_backend(service)
            for account_id, regions in accounts.items():
                account = backend_dict[account_id]
                for region, backend in regions.items():
                    dict.__setitem__(account, region, backend)
        return saved.get("journal_generation", 0)


# -- the journal --------------------------------------------------------------------
class Journal:
    """The changing requests applied since the last snapshot, fsynced in order.

    A record is ``MAGIC, length, crc32`` then ``length`` bytes: a JSON line
    (the request's WSGI environ strings and where its body is) followed by the
    body when it is small. A torn last record (a crash while writing it) fails
    its checksum and is ignored: it was never acknowledged. Appends are made
    by one request at a time (the server's change lock), so the journal order
    is the order moto applied them; :meth:`sync` makes one fsync cover every
    record written before it (group commit).
    """

    HEADER = struct.Struct(">4sII")
    MAGIC = b"RCJ1"

    def __init__(self, state_dir):
        self.dir = pathlib.Path(state_dir)
        self.bodies = self.dir / JOURNAL_BODIES
        self.bodies.mkdir(parents=True, exist_ok=True)
        self.generation = None
        self._file = None
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._written = 0
        self._synced = 0
        self._body_files = defaultdict(list)  # generation -> body files it refers to
        self.records = 0  # in the current generation

    def path(self, generation):
        return self.dir / f"{JOURNAL_PREFIX}{generation:08d}.log"

    def generations(self):
        found = []
        for path in self.dir.glob(JOURNAL_PREFIX + "*.log"):
            try:
                found.append(int(path.stem[len(JOURNAL_PREFIX):]))
            except ValueError:
                continue
        return sorted(found)

    def open(self, generation):
        """Start writing ``generation`` (call with every change excluded)."""
        with self._lock:
            if self._file:
                self._file.close()
            self._file = open(self.path(generation), "ab", buffering=0)
            self.generation = generation
            self._written = self._synced = 0
            self.records = 0
            _fsync_dir(self.dir)

    def new_body_file(self):
        """A path for a large body, to be written (and fsynced) before :meth:`append`."""
        return self.bodies / uuid.uuid4().hex

    def append(self, environ, body, body_file=None):
        """Add a request that was applied; returns the ticket to :meth:`sync` on."""
        meta = {k: v for k, v in environ.items() if isinstance(v, str)}
        meta.pop("HTTP_TRANSFER_ENCODING", None)
        meta["CONTENT_LENGTH"] = str(len(body) if body_file is None
                                     else os.path.getsize(body_file))
        if body_file is not None:
            meta["__body_file__"] = body_file.name
            body = b""
        payload = json.dumps(meta, separators=(",", ":")).encode() + b"\n" + body
        record = self.HEADER.pack(self.MAGIC, len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            # all of the record or none of it: the file is unbuffered, so a
            # failed write (a full disk) leaves nothing behind to be written
            # by the next record's flush, and what it did write is cut off
            start = self._file.tell()
            try:
                done = 0
                while done < len(record):
                    done += self._file.write(record[done:])
            except BaseException:
                self._file.truncate(start)
                self._file.seek(start)
                raise
            self._written += 1
            self.records += 1
            if body_file is not None:
                self._body_files[self.generation].append(body_file)
            return self._written

    def sync(self, ticket):
        """Return once record ``ticket`` (and all before it) is on disk."""
        with self._sync_lock:
            if self._synced >= ticket:
                return
            with self._lock:
                target = self._written
                fileno = self._file.fileno()
            os.fsync(fileno)
            self._synced = target

    def drop_before(self, generation):
        """Delete the generations a snapshot now includes, with their body files."""
        for old in self.generations():
            if old < generation:
                self.path(old).unlink(missing_ok=True)
        for old in [g for g in self._body_files if g < generation]:
            for body_file in self._body_files.pop(old):
                body_file.unlink(missing_ok=True)

    def drop_stray_bodies(self):
        """At start, once nothing older is needed: body files of no record."""
        for path in self.bodies.iterdir():
            path.unlink(missing_ok=True)

    def read(self, generation):
        """The (environ strings, body bytes or path) of ``generation``, in order."""
        with open(self.path(generation), "rb") as handle:
            while True:
                header = handle.read(self.HEADER.size)
                if len(header) < self.HEADER.size:
                    return
                magic, length, crc = self.HEADER.unpack(header)
                payload = handle.read(length)
                if magic != self.MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
                    log.warning("journal %s ends with a torn record (never acknowledged); "
                                "ignoring it", self.path(generation).name)
                    return
                line, _, body = payload.partition(b"\n")
                meta = json.loads(line)
                name = meta.pop("__body_file__", None)
                yield meta, (self.bodies / name if name else body)

    def close(self):
        with self._lock:
            if self._file:
                self._file.close()
                self._file = None


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


