"""One person per face for the whole video: tracks grouped into persons.

A track is one continuous appearance (see ``tracking.py``). A person who
looks down, leaves and comes back, or whose appearance was cut between two
worker segments without being stitched, gives several tracks; Rekognition
documents ``Person.Index`` as "the identifier for the person detected within
a video; use it to keep track of the person throughout the video", so those
tracks must share one index. Tracks are grouped here, after every segment is
done, on what the whole video shows:

- **the face itself**: a track joins an earlier person when their mean
  descriptors lie within :data:`REID_DISTANCE` (stricter than the match
  threshold: no collection face vouches for it), or within
  :data:`SEAT_DISTANCE` when it also starts where that person was last seen
  (a student who looked down and looks up again, in the same seat);
- **the collection**: when both match the same collection person (same
  ``ExternalImageId``, else same ``FaceId``) at or over the job's threshold,
  the match distance is enough; a track never joins a person matched to
  someone else. The same seat is preferred over a nearer face elsewhere.

Invariant: two tracks seen at the same moment are never one person (one face
cannot be in two places), whatever their descriptors say.

Matching a person against the collection uses every descriptor of every
track of the person (see :func:`person_distances`): the best single
descriptor for faces big enough to be described reliably, the mean of the
small ones otherwise (one 26 px sighting is noisy evidence; the mean of
several is steadier), with a margin that grows as faces shrink, so a
stranger's small, blurred face does not reach the threshold.
"""
import json

import numpy as np

from local.engine import face_engine
from local.engine.boxes import iou

# Mean descriptors of two tracks of one person (same video, same lighting)
# lie well under the match distance; strangers' stay over 0.6 (photos) and
# over 0.57 for 36 px video crops. 0.45 leaves room on both sides.
REID_DISTANCE = 0.45
# ... and when the new track starts in the seat the person left.
SEAT_DISTANCE = 0.55
SEAT_IOU = 0.3

# Faces at least this big (px, in the video) are described reliably: their
# best descriptor is used as is. Smaller ones are averaged, and their mean's
# distance gets a margin: SMALL_FACE_PENALTY at 24 px, falling linearly to 0
# at RELIABLE_FACE_PX. Measured on video crops of every photo in
# ../shared/faces (H.264 CRF 28, 24-44 px, 4 frames each) against every photo:
# the closest different-person pair (john_savage's crop / joe_biden's photo)
# is at 0.602 (24 px), 0.594 (28), 0.590 (32), 0.568 (36!), 0.587 (44) without
# the margin, so 36-44 px crops would reach similarity 80 (0.578); with it, at
# 0.588 or more. The price: at 24 px, 17 of 27 crops still reach their own
# person's registration photo (22 without the margin); at 28-44 px 22-27 of 28.
# tests/test_engine_small_faces.py re-checks this on generated video.
RELIABLE_FACE_PX = 60
SMALL_FACE_PENALTY = 0.03


def _overlaps(a, b):
    """Whether two sets of (first_ms, last_ms) spans share a moment."""
    return any(x0 <= y1 and y0 <= x1 for x0, x1 in a for y0, y1 in b)


def _mean(vectors):
    m = np.mean(np.asarray(vectors, np.float32), axis=0)
    return m


def person_distances(descriptors, sizes, matrix):
    """Distance from a person (descriptors, face size of each) to each collection face.

    Descriptors of faces >= RELIABLE_FACE_PX: the smallest distance of any of
    them. Smaller faces: their mean descriptor's distance plus a margin that
    grows as the (median) face shrinks. The person's distance is the smaller
    of the two. Without sizes, every descriptor counts as reliable (photos).
    """
    matrix = np.asarray(matrix, np.float32).reshape(-1, 128)
    best = np.full((len(matrix),), np.inf, np.float32)
    if not len(matrix) or not descriptors:
        return best
    sizes = list(sizes) if sizes else [RELIABLE_FACE_PX] * len(descriptors)
    big = [d for d, s in zip(descriptors, sizes) if s >= RELIABLE_FACE_PX]
    small = [(d, s) for d, s in zip(descriptors, sizes) if s < RELIABLE_FACE_PX]
    for d in big:
        best = np.minimum(best, face_engine.distances(d, matrix))
    if small:
        mean = _mean([d for d, _ in small])
        size = float(np.median([s for _, s in small]))
        shortfall = min(1.0, max(0.0, (RELIABLE_FACE_PX - size) / (RELIABLE_FACE_PX - 24.0)))
        penalty = SMALL_FACE_PENALTY * shortfall
        best = np.minimum(best, face_engine.distances(mean, matrix) + penalty)
    return best


class _Person:
    def __init__(self, track, anchor):
        self.tracks = [track]
        self.anchor = anchor
        self.spans = [(track["first_ms"], track["last_ms"])]
        self.descriptors = [np.asarray(d, np.float32) for d in track["descriptors"]]
        self.last_box = track["entries"][-1][1]
        self.last_ms = track["last_ms"]

    def add(self, track):
        self.tracks.append(track)
        self.spans.append((track["first_ms"], track["last_ms"]))
        self.descriptors += [np.asarray(d, np.float32) for d in track["descriptors"]]
        if track["last_ms"] >= self.last_ms:
            self.last_ms, self.last_box = track["last_ms"], track["entries"][-1][1]

    @property
    def mean(self):
        return _mean(self.descriptors) if self.descriptors else None


def _anchor(track, faces, matrix, threshold):
    """The collection person a track matches best at or over ``threshold``, or None."""
    if not len(faces) or not track["descriptors"]:
        return None
    dist = person_distances([np.asarray(d, np.float32) for d in track["descriptors"]],
                            track.get("sizes"), matrix)
    i = int(np.argmin(dist))
    if face_engine.similarity(float(dist[i])) < threshold:
        return None
    face = faces[i]
    return ("external", face["ExternalImageId"]) if face.get("ExternalImageId") \
        else ("face", face["FaceId"])


def _compatible(a, b):
    """Anchors that may be one person: the same, or at least one unknown."""
    return a is None or b is None or a == b


def group(tracks, faces=(), matrix=None, threshold=80.0):
    """Persons in order of first appearance: lists of tracks (see the module doc).

    Two passes. First, seats: in order of time, a track continues the
    person last seen where it starts (box overlap >= SEAT_IOU, after that
    person's last sighting) when their faces are within SEAT_DISTANCE.
    Then faces: persons never seen at the same moment are merged, nearest
    pair first, while their mean descriptors are within REID_DISTANCE (the
    match distance when both match the same collection person)."""
    matrix = np.zeros((0, 128), np.float32) if matrix is None else matrix
    persons = []
    for track in sorted(tracks, key=lambda t: (t["first_ms"], t["entries"][0][1][0])):
        anchor = _anchor(track, faces, matrix, threshold)
        chosen, best_d = None, np.inf
        if track["descriptors"]:
            mean = _mean(track["descriptors"])
            first_box = track["entries"][0][1]
            for p in persons:
                if (p.mean is None or p.last_ms >= track["first_ms"]
                        or not _compatible(p.anchor, anchor)
                        or iou(p.last_box, first_box) < SEAT_IOU):
                    continue
                d = float(np.linalg.norm(p.mean - mean))
                if d <= SEAT_DISTANCE and d < best_d:
                    chosen, best_d = p, d
        if chosen is None:
            persons.append(_Person(track, anchor))
        else:
            chosen.add(track)
            chosen.anchor = chosen.anchor or anchor
    # faces: nearest pairs first, each merge re-checked against the merged persons
    means = [p.mean for p in persons]
    pairs = []
    for i in range(len(persons)):
        for j in range(i + 1, len(persons)):
            if means[i] is None or means[j] is None:
                continue
            d = float(np.linalg.norm(means[i] - means[j]))
            if d <= max(REID_DISTANCE, face_engine.MATCH_DISTANCE):
                pairs.append((d, i, j))
    owner = list(range(len(persons)))

    def root(i):
        while owner[i] != i:
            owner[i] = owner[owner[i]]
            i = owner[i]
        return i
    for d, i, j in sorted(pairs):
        a, b = root(i), root(j)
        if a == b:
            continue
        pa, pb = persons[a], persons[b]
        if _overlaps(pa.spans, pb.spans) or not _compatible(pa.anchor, pb.anchor):
            continue
        same = pa.anchor is not None and pa.anchor == pb.anchor
        if d > (max(REID_DISTANCE, face_engine.MATCH_DISTANCE) if same else REID_DISTANCE):
            continue
        keep, gone = min(a, b), max(a, b)
        for track in pb.tracks if gone == b else pa.tracks:
            persons[keep].add(track)
        persons[keep].anchor = persons[keep].anchor or persons[gone].anchor
        owner[gone] = keep
    merged = [persons[i] for i in range(len(persons)) if root(i) == i]
    return [sorted(p.tracks, key=lambda t: t["first_ms"]) for p in merged]


def _public_face(record):
    return {k: v for k, v in record.items() if k != "Descriptor"}


def face_matches(dist, faces, threshold, limit=None):
    """Rekognition's FaceMatches for distances to each collection face, best first."""
    if not len(faces) or not len(dist):
        return []
    sims = np.atleast_1d(face_engine.similarity(np.asarray(dist, np.float64)))
    order = [int(i) for i in np.argsort(-sims, kind="stable") if sims[i] >= threshold]
    if limit is not None:
        order = order[:limit]
    return [{"Similarity": round(float(sims[i]), 4), "Face": _public_face(faces[i])}
            for i in order]


def ratio_box(box, width, height):
    """Pixel (l, t, r, b) -> Rekognition's BoundingBox (ratios of the image)."""
    l, t, r, b = box
    l, t = max(0.0, l), max(0.0, t)
    r, b = min(float(width), r), min(float(height), b)
    return {"Width": round((r - l) / width, 6), "Height": round((b - t) / height, 6),
            "Left": round(l / width, 6), "Top": round(t / height, 6)}


class EntryRows:
    """GetFaceSearch's sightings, read as a list of ``[timestamp_ms, index,
    [left, top, width, height], confidence]`` (see :func:`entries`), kept as
    one row of 7 floats each.

    An hour of a lecture hall is a quarter of a million sightings: ~350 bytes
    each as Python lists, 56 as rows. Reading a row answers the list, built
    then (GetFaceSearch reads a page at a time)."""

    __slots__ = ("_rows",)
    _CHUNK = 4096                       # rows turned into lists at a time

    def __init__(self, rows=()):
        self._rows = np.asarray(rows, np.float64).reshape(-1, 7)

    @classmethod
    def from_lists(cls, entries):
        return cls([(t_ms, index, *box, conf) for t_ms, index, box, conf in entries])

    @staticmethod
    def _entry(row):
        t_ms, index, left, top, width, height, conf = row
        return [int(t_ms), int(index), [left, top, width, height], conf]

    def __len__(self):
        return len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._entry(row) for row in self._rows[i].tolist()]
        return self._entry(self._rows[i].tolist())

    def __iter__(self):
        for start in range(0, len(self._rows), self._CHUNK):
            for row in self._rows[start:start + self._CHUNK].tolist():
                yield self._entry(row)

    def __eq__(self, other):
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def by_index(self):
        """The same sightings by (index, timestamp) (GetFaceSearch's SortBy INDEX)."""
        return EntryRows(self._rows[np.lexsort((self._rows[:, 0], self._rows[:, 1]))])

    def json_chunks(self):
        """The JSON list of the sightings, a few thousand at a time (never the
        whole list as Python objects)."""
        yield "["
        for start in range(0, len(self._rows), self._CHUNK):
            lists = [self._entry(row) for row in self._rows[start:start + self._CHUNK].tolist()]
            yield ("," if start else "") + json.dumps(lists, separators=(",", ":"))[1:-1]
        yield "]"

    def __repr__(self):
        return f"EntryRows({len(self)} sightings)"


def entries(tracks, info, faces, matrix, threshold):
    """GetFaceSearch's result, compact: ``{"Matches": [...], "Entries": EntryRows}``.

    One ``Person.Index`` per person, whole video: tracks are grouped into
    persons (:func:`group`); a person's FaceMatches use every descriptor of
    every one of its tracks (:func:`person_distances`) and are the same on
    each of its entries, so they are kept once per person (``Matches[index]``)
    and each sighting is ``[timestamp_ms, index, [left, top, width, height],
    confidence]``, sorted by time then index (:class:`EntryRows`);
    :func:`person_entry` builds the API's shape for one page at a time. Each
    track's ``entries`` are consumed (emptied) as they are copied, so the
    tracks and the result are not both whole in memory at the end of a job."""
    matches_by_person, blocks = [], []
    for index, person_tracks in enumerate(group(tracks, faces, matrix, threshold)):
        descriptors, sizes = [], []
        for track in person_tracks:
            descriptors += [np.asarray(d, np.float32) for d in track["descriptors"]]
            sizes += list(track.get("sizes") or [RELIABLE_FACE_PX] * len(track["descriptors"]))
        matches_by_person.append(
            face_matches(person_distances(descriptors, sizes, matrix), faces, threshold))
        for track in person_tracks:
            rows = []
            for t_ms, box, conf in track["entries"]:
                bbox = ratio_box(box, info.width, info.height)
                rows.append((int(t_ms), index, bbox["Left"], bbox["Top"], bbox["Width"],
                             bbox["Height"], round(conf, 4)))
            blocks.append(np.asarray(rows, np.float64).reshape(-1, 7))
            track["entries"] = ()
    rows = np.concatenate(blocks) if blocks else np.zeros((0, 7))
    # by time, then index; stable, as the list sort it replaces
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    return {"Matches": matches_by_person, "Entries": EntryRows(rows)}


def person_entry(entry, matches_by_person):
    """One GetFaceSearch ``Persons`` element from a compact sighting (see :func:`entries`)."""
    t_ms, index, (left, top, width, height), conf = entry
    bbox = {"Width": width, "Height": height, "Left": left, "Top": top}
    return {"Timestamp": t_ms,
            "Person": {"Index": index, "BoundingBox": bbox,
                       "Face": {"BoundingBox": dict(bbox), "Confidence": conf}},
            "FaceMatches": matches_by_person[index]}
