"""Face collections and face-search jobs, in memory or persisted in a data dir.

With ``data_dir=None`` everything lives in memory (tests). With a data dir,
each collection is one JSON file ``collections/<id>.json`` and each job one
``jobs/<JobId>.json``, written whole to a temporary file, fsynced and renamed
over the old one (then the directory fsynced): a crash never leaves half a
file, and an acknowledged write (an IndexFaces answered) survives a power
cut. A restarted endpoint finds its collections and finished jobs again. A
job that was still running when the endpoint stopped is reported FAILED
after the restart (its worker is gone), never IN_PROGRESS forever.
"""
import collections
import json
import os
import pathlib
import re
import threading
import time
import uuid

import numpy as np

from local.engine.persons import EntryRows
from local.engine.service_model import RekognitionError

ACCOUNT = "123456789012"
_TMP_SUFFIX = ".tmp"


def _atomic_write(path, payload):
    """Write ``path`` whole, durably: once this returns it survives a power cut.

    The new content is written and fsynced under a temporary name, renamed
    over the old file, then the directory is fsynced so that the rename is on
    disk too. A crash before the rename leaves the old file as it was (and a
    temporary file that :func:`_load_dir` removes)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_TMP_SUFFIX}")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            for chunk in _json_chunks(payload):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _json_chunks(payload):
    """``json.dumps(payload)`` in pieces: a value with ``json_chunks()`` (a
    job's sightings, persons.EntryRows) is written a few thousand rows at a
    time instead of being turned into Python lists whole."""
    streamed = []
    nonce = uuid.uuid4().hex            # no string in the payload can pass for a mark

    def mark(value):
        if not hasattr(value, "json_chunks"):
            raise TypeError(f"{type(value).__name__} is not JSON serializable")
        streamed.append(value)
        return f"\0{nonce}:{len(streamed) - 1}\0"

    text = json.dumps(payload, separators=(",", ":"), default=mark)
    pieces = re.split(r'"\\u0000' + nonce + r':(\d+)\\u0000"', text)
    yield pieces[0]
    for i in range(1, len(pieces), 2):
        yield from streamed[int(pieces[i])].json_chunks()
        yield pieces[i + 1]


def _fsync_dir(directory):
    """Put a directory's entries (a rename, a deletion) on disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_dir(directory):
    """The JSON records of ``directory`` (made if missing), in name order;
    temporary files a crash left behind are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob(f".*{_TMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)
    # A generator: a job store's records are read one at a time and kept
    # without their results, so starting never holds every result at once.
    return (json.loads(path.read_text()) for path in sorted(directory.glob("*.json")))


def not_found(collection_id):
    return RekognitionError("ResourceNotFoundException",
                            f"The collection id: {collection_id} does not exist")


class CollectionStore:
    """Collections of indexed faces (descriptor + Rekognition's Face fields)."""

    def __init__(self, data_dir=None, region="us-east-1"):
        self._lock = threading.RLock()
        self._region = region
        self._dir = pathlib.Path(data_dir) / "collections" if data_dir else None
        self._collections = {}
        if self._dir:
            for record in _load_dir(self._dir):
                self._collections[record["CollectionId"]] = record

    def _save(self, record):
        if self._dir:
            _atomic_write(self._dir / f"{record['CollectionId']}.json", record)

    def arn(self, collection_id):
        return f"aws:rekognition:{self._region}:{ACCOUNT}:collection/{collection_id}"

    def _get(self, collection_id):
        record = self._collections.get(collection_id)
        if record is None:
            raise not_found(collection_id)
        return record

    def create(self, collection_id):
        with self._lock:
            if collection_id in self._collections:
                raise RekognitionError("ResourceAlreadyExistsException",
                                       f"The collection id: {collection_id} already exists")
            record = {"CollectionId": collection_id, "Created": time.time(), "Faces": []}
            self._collections[collection_id] = record
            self._save(record)
            return record

    def describe(self, collection_id):
        with self._lock:
            record = self._get(collection_id)
            return {"FaceCount": len(record["Faces"]), "Created": record["Created"]}

    def ids(self):
        with self._lock:
            return sorted(self._collections)

    def delete(self, collection_id):
        with self._lock:
            self._get(collection_id)
            del self._collections[collection_id]
            if self._dir:
                (self._dir / f"{collection_id}.json").unlink(missing_ok=True)
                _fsync_dir(self._dir)

    def add_faces(self, collection_id, faces):
        """Store faces (dicts with FaceId..., and ``Descriptor``: 128 floats)."""
        with self._lock:
            record = self._get(collection_id)
            record["Faces"].extend(faces)
            self._save(record)

    def faces(self, collection_id):
        """A copy of the collection's faces, oldest first."""
        with self._lock:
            return list(self._get(collection_id)["Faces"])

    def delete_faces(self, collection_id, face_ids):
        """Remove faces; answers (deleted ids, ids not found)."""
        with self._lock:
            record = self._get(collection_id)
            wanted = set(face_ids)
            kept = [f for f in record["Faces"] if f["FaceId"] not in wanted]
            present = {f["FaceId"] for f in record["Faces"]}
            record["Faces"] = kept
            self._save(record)
            deleted = [i for i in dict.fromkeys(face_ids) if i in present]
            missing = [i for i in dict.fromkeys(face_ids) if i not in present]
            return deleted, missing

    def snapshot(self, collection_id):
        """(faces, descriptor matrix) as of now, for a search."""
        faces = self.faces(collection_id)
        matrix = np.asarray([f["Descriptor"] for f in faces], np.float32).reshape(-1, 128)
        return faces, matrix


def _compact(persons):
    """A result written before results were compact (a list of Persons dicts)."""
    matches = {}
    entries = []
    for p in persons:
        index, box = p["Person"]["Index"], p["Person"]["BoundingBox"]
        matches.setdefault(index, p["FaceMatches"])
        entries.append([p["Timestamp"], index,
                        [box["Left"], box["Top"], box["Width"], box["Height"]],
                        p["Person"]["Face"]["Confidence"]])
    entries.sort(key=lambda e: (e[0], e[1]))
    return {"Matches": [matches.get(i, []) for i in range(max(matches, default=-1) + 1)],
            "Entries": entries}


class JobStore:
    """Face-search jobs by JobId, and the ClientRequestToken each was started with.

    A finished job's ``Result`` (every sighting of the video) is the bulk of
    it: when jobs are written down, memory keeps the job without it and only
    the last few results read (:meth:`result`), so the engine's memory does not
    grow with the number or length of the videos it has analysed."""

    RESULTS_KEPT = 2

    def __init__(self, data_dir=None):
        self._lock = threading.RLock()
        self._dir = pathlib.Path(data_dir) / "jobs" if data_dir else None
        self._jobs = {}
        self._tokens = {}
        self._results = collections.OrderedDict()   # JobId -> Result, most recent last
        if self._dir:
            for job in _load_dir(self._dir):
                if job["JobStatus"] == "IN_PROGRESS":
                    job["JobStatus"] = "FAILED"
                    job["StatusMessage"] = ("The face engine stopped before this job "
                                            "finished; start the search again")
                    _atomic_write(self._dir / f"{job['JobId']}.json", job)
                self._remember(job)

    def _remember(self, job):
        if self._dir and ("Result" in job or "Persons" in job):
            job = {k: v for k, v in job.items() if k not in ("Result", "Persons")}
        self._jobs[job["JobId"]] = job
        if job.get("ClientRequestToken"):
            self._tokens[job["ClientRequestToken"]] = job["JobId"]

    def by_token(self, token):
        with self._lock:
            job_id = self._tokens.get(token)
            return self._jobs.get(job_id) if job_id else None

    def get(self, job_id):
        with self._lock:
            return self._jobs.get(job_id)

    def put(self, job):
        """Add or replace a job (and write it down when persisting)."""
        with self._lock:
            if self._dir:
                _atomic_write(self._dir / f"{job['JobId']}.json", job)
                self._results.pop(job["JobId"], None)
            self._remember(job)

    def result(self, job_id):
        """A finished job's ``{"Matches", "Entries"}`` (see ``persons.entries``)."""
        with self._lock:
            job = self._jobs[job_id]
            if not self._dir:
                return job["Result"]
            if job_id not in self._results:
                stored = json.loads((self._dir / f"{job_id}.json").read_text())
                result = stored.get("Result") or _compact(stored["Persons"])
                result["Entries"] = EntryRows.from_lists(result["Entries"])
                del stored
                self._results[job_id] = result
                while len(self._results) > self.RESULTS_KEPT:
                    self._results.popitem(last=False)
            self._results.move_to_end(job_id)
            return self._results[job_id]

    def claim_token(self, token, make_job):
        """The job started with ``token``, or a new one from ``make_job()`` (atomic)."""
        with self._lock:
            existing = self.by_token(token) if token else None
            if existing is not None:
                return existing, False
            job = make_job()
            self.put(job)
            return job, True
