"""Evidence: face crops cut from the session's own video, kept privately beside it.

When a session completes, the face search has said *when* (timestamp) and
*where* (bounding box, ratios of the frame) each face was. This module cuts,
from the video itself, the faces a teacher checks at a glance:

* each seen student at their best match and at their first sighting
  (``student-<id>-best.jpg``, ``student-<id>-first.jpg``, about 160 px);
* each unrecognised person at their best frame (``stranger-<n>.jpg``), and a
  larger cut of the same frame with room around the face
  (``stranger-<n>-photo.jpg``, full resolution, never scaled up) that
  "Register this person" uses as the registration photo.

Where: the videos bucket under ``evidence/<session_id>/`` (private, served
only through short-lived presigned GETs; ``Content-Type: image/jpeg``). Not
under ``videos/``, so writing a crop never fires the upload handler.

When: after the session is COMPLETED. The completion sends one message
(:class:`EvidenceQueue`) and a separate function (``cut_evidence`` in app.py,
fed by an SQS queue on AWS and by the local event bridge on one machine) does
the decoding, so the attendance result never waits for it. The session keeps
``evidence_status`` (``pending`` -> ``ready`` or ``failed``) and the set of
crop names that exist (``evidence_cut``); the API links only those, so a crop
that could not be cut is simply absent. Cutting again (a redelivered message)
writes the same keys with the same bytes: nothing new.

Grouping: with the unrecognised people's crops in hand, the same function
merges entries that are one face (:mod:`chalicelib.strangers`) before it says
``ready``, so the page's last read shows one entry per person; a failure
there is logged and changes nothing else.

Decoding: PyAV reads the video straight from S3 with ranged GETs
(:class:`S3File`), seeks near each wanted moment and decodes forward to the
first frame at or after it (the frame the face search looked at), turned
upright by its display matrix as the face search saw it.
"""
import dataclasses
import io
import json

#: Crops live here in the videos bucket: ``evidence/<session_id>/<name>.jpg``.
EVIDENCE_PREFIX = "evidence/"
#: Longest side of a crop shown on the page (px).
THUMB_SIDE = 160
#: A crop is the face box grown by this fraction of its size on each side...
THUMB_MARGIN = 0.35
#: ...and a registration photo by this much (hair, chin, ears: what a photo shows).
PHOTO_MARGIN = 0.8
#: A registration photo is scaled down to at most this side (never up).
PHOTO_MAX_SIDE = 1024
#: Seek when the next moment is further ahead than this; decode forward otherwise.
SEEK_AHEAD_MS = 2500
#: Presigned crop links last this long (the page reloads them with the session).
LINK_SECONDS = 900
JPEG_QUALITY = 88


class EvidenceProblem(Exception):
    """The crops could not be cut (unreadable video, missing file); logged, never shown raw."""


@dataclasses.dataclass(frozen=True)
class Cut:
    """One crop to cut: its name, the moment (ms) and face box (ratios), and its kind."""

    name: str
    ms: int
    box: tuple  # (left, top, width, height), ratios of the upright frame
    photo: bool = False  # a registration photo (wide margin, full resolution)


def session_prefix(session_id):
    return f"{EVIDENCE_PREFIX}{session_id}/"


def crop_key(session_id, name):
    return f"{session_prefix(session_id)}{name}.jpg"


def student_crop(student_id, which):
    """The crop name of a student's ``best`` or ``first`` moment."""
    return f"student-{student_id}-{which}"


def stranger_crop(number, photo=False):
    return f"stranger-{number}-photo" if photo else f"stranger-{number}"


def plan(rows, strangers):
    """The crops a completed session needs: from its rows' ``moments`` and its strangers.

    Pure: rows and strangers as stored (see attendance.py); an entry without a
    box cannot be cut and is left out.
    """
    cuts = []
    for row in rows:
        for which, moment in sorted((row.get("moments") or {}).items()):
            if moment and moment.get("box"):
                cuts.append(Cut(student_crop(row["student_id"], which), int(moment["ms"]),
                                tuple(float(v) for v in moment["box"])))
    for number, stranger in enumerate(strangers, start=1):  # numbered by position
        moment = stranger.get("moment") or {}
        if stranger.get("from_student") or not moment.get("box"):
            continue  # "not this person" entries show the student's own crop
        box = tuple(float(v) for v in moment["box"])
        cuts.append(Cut(stranger_crop(number), int(moment["ms"]), box))
        cuts.append(Cut(stranger_crop(number, photo=True), int(moment["ms"]), box, photo=True))
    return cuts


def crop_region(box, width, height, margin):
    """The pixel square (l, t, r, b) around a face ``box`` grown by ``margin``.

    The square's side is the face's longer side times ``1 + 2 * margin``; it
    is moved inside the frame where it would cross an edge and cut by the edge
    only when it is larger than the frame. The face stays inside it.
    """
    left, top, w, h = box
    cx, cy = (left + w / 2) * width, (top + h / 2) * height
    side = max(w * width, h * height) * (1 + 2 * margin)
    side = max(2.0, min(side, float(width), float(height)))
    side = int(round(side))
    l = int(round(min(max(cx - side / 2, 0.0), width - side)))
    t = int(round(min(max(cy - side / 2, 0.0), height - side)))
    return (l, t, l + side, t + side)


def render(image, cut):
    """The JPEG bytes of ``cut`` from an upright PIL image of its frame."""
    margin = PHOTO_MARGIN if cut.photo else THUMB_MARGIN
    piece = image.crop(crop_region(cut.box, image.width, image.height, margin))
    limit = PHOTO_MAX_SIDE if cut.photo else THUMB_SIDE
    if cut.photo:
        if max(piece.size) > limit:
            piece.thumbnail((limit, limit))
    else:
        # Small faces are scaled up too: every crop on the page is the same size.
        scale = limit / max(piece.size)
        piece = piece.resize((max(1, round(piece.width * scale)),
                              max(1, round(piece.height * scale))))
    out = io.BytesIO()
    piece.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _upright_image(frame):
    """The frame as a PIL image, turned as its display matrix says (as the face search saw it)."""
    image = frame.to_image()
    turns = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    return image.rotate(90 * turns, expand=True) if turns else image


def cut_from(fileobj, cuts):
    """Yield ``(cut, jpeg bytes)`` for each cut, reading the video from ``fileobj``.

    Moments are visited in time order; the decoder seeks only when the next
    one is more than SEEK_AHEAD_MS ahead (or behind), so a session's crops cost
    a few seeks and short decodes, not the whole video. A moment after the
    last frame uses the last frame. :class:`EvidenceProblem` if the file
    cannot be read as a video.
    """
    import av  # only the evidence function decodes; the API never imports PyAV

    moments = {}
    for cut in cuts:
        moments.setdefault(cut.ms, []).append(cut)
    try:
        container = av.open(fileobj, mode="r")
    except (av.FFmpegError, OSError, ValueError) as error:
        raise EvidenceProblem(f"the video cannot be opened ({error.__class__.__name__})") \
            from error
    with container:
        if not container.streams.video:
            raise EvidenceProblem("the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames, position, last = None, None, None

        def seek(ms):
            container.seek(max(0, int(ms / 1000 / stream.time_base)), stream=stream,
                           backward=True, any_frame=False)
            return container.decode(stream)

        for ms in sorted(moments):
            if frames is None or position is None or ms < position \
                    or ms - position > SEEK_AHEAD_MS:
                frames, last = seek(ms), None
            found = None
            for frame in frames:
                if frame.time is None:
                    continue
                position = frame.time * 1000
                last = frame
                if position >= ms - 1:
                    found = frame
                    break
            if found is None:
                if last is None:
                    frames, position = None, None
                    continue  # nothing decodable at or before this moment
                found = last  # past the end: the last frame there is
                frames, position = None, None
            image = _upright_image(found)
            for cut in moments[ms]:
                yield cut, render(image, cut)


class S3File(io.RawIOBase):
    """A seekable, read-only file over one S3 object, read with ranged GETs.

    PyAV (FFmpeg) reads a video as a file: it jumps to the index (an MP4's
    ``moov`` is often at the end) and then to the frames it needs. Each read
    asks S3 for at least ``block`` bytes, so small reads do not each cost a
    request, and nothing is written to disk (Lambda's /tmp is small).
    """

    def __init__(self, s3, bucket, key, block=1024 * 1024):
        self._s3, self._bucket, self._key, self._block = s3, bucket, key, block
        self._size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        self._pos = 0
        self._buffer_start, self._buffer = 0, b""
        self.requests = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size=-1):
        if size is None or size < 0:
            size = self._size - self._pos
        size = min(size, self._size - self._pos)
        if size <= 0:
            return b""
        start = self._pos - self._buffer_start
        if not (0 <= start and start + size <= len(self._buffer)):
            end = min(self._size, self._pos + max(size, self._block)) - 1
            self._buffer = self._s3.get_object(Bucket=self._bucket, Key=self._key,
                                               Range=f"bytes={self._pos}-{end}")["Body"].read()
            self._buffer_start, start = self._pos, 0
            self.requests += 1
        data = self._buffer[start:start + size]
        self._pos += len(data)
        return data

    def readinto(self, target):
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)


class EvidenceFiles:
    """The crops in the videos bucket: write, link, delete."""

    def __init__(self, s3, bucket):
        self._s3 = s3
        self.bucket = bucket

    def put(self, session_id, name, data):
        self._s3.put_object(Bucket=self.bucket, Key=crop_key(session_id, name), Body=data,
                            ContentType="image/jpeg", CacheControl="private, max-age=900")

    def link(self, session_id, name):
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": crop_key(session_id, name),
                                  "ResponseContentType": "image/jpeg"},
            ExpiresIn=LINK_SECONDS)

    def copy_to(self, session_id, name, bucket, key):
        """Copy a crop to another private bucket (a registration photo's upload key)."""
        self._s3.copy_object(Bucket=bucket, Key=key, ContentType="image/jpeg",
                             MetadataDirective="REPLACE",
                             CopySource={"Bucket": self.bucket,
                                         "Key": crop_key(session_id, name)})

    def delete(self, session_id, names):
        keys = [crop_key(session_id, n) for n in names]
        for start in range(0, len(keys), 1000):
            self._s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})

    def delete_session(self, session_id):
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=session_prefix(session_id)):
            keys = [obj["Key"] for obj in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in keys], "Quiet": True})


class EvidenceQueue:
    """The hand-off from the completion to the evidence function: one SQS message."""

    def __init__(self, sqs, queue_name):
        self._sqs = sqs
        self._name = queue_name
        self._url = None

    def request(self, session_id, job_id):
        if self._url is None:
            self._url = self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"]
        self._sqs.send_message(QueueUrl=self._url, MessageBody=json.dumps(
            {"session_id": session_id, "job_id": job_id}))


def parse_request(body):
    """An evidence message's (session_id, job_id), or None if it is not one."""
    try:
        message = json.loads(body)
        return str(message["session_id"]), str(message["job_id"])
    except (TypeError, ValueError, KeyError):
        return None


# -- the workflow ---------------------------------------------------------------------
PENDING, READY, FAILED = "pending", "ready", "failed"


class Evidence:
    """Cutting a completed session's crops, and linking them in what the API answers.

    ``sessions`` is the :class:`~chalicelib.sessions.SessionStore` (``get`` and
    ``set_evidence``), ``attendance`` the attendance store (``rows``), ``files``
    an :class:`EvidenceFiles`, ``open_video(key)`` a seekable file of a video.
    """

    def __init__(self, *, sessions, attendance, files, open_video, logger, grouping=None):
        self.sessions = sessions
        self.attendance = attendance
        self.files = files
        self.open_video = open_video
        self.log = logger
        self.grouping = grouping  # strangers.FaceGrouping, or None: by person index only

    def cut(self, session_id, job_id):
        """Cut and store every crop of a COMPLETED session; its evidence status.

        Never raises for a bad video or a failed cut: the session stays
        COMPLETED (its attendance is what matters), the failure is logged and
        ``evidence_status`` says ``failed``; crops cut before the failure are
        kept and linked. A message for a replaced job or a deleted session
        changes nothing.
        """
        item = self.sessions.get(session_id)
        if item is None or item.get("job_id") != job_id or item.get("status") != "COMPLETED":
            self.log.warning("ignored evidence request for no completed session",
                             extra={"session_id": session_id, "job_id": job_id})
            return None
        if item.get("evidence_status") == READY:
            return READY  # repeated message
        entries = item.get("strangers") or []
        cuts = plan(self.attendance.rows(session_id), entries)
        thumbs = {stranger_crop(n): n for n in range(1, len(entries) + 1)}
        faces = {}  # stranger number -> its crop, for grouping by face
        done = []
        status = READY
        try:
            if cuts:
                # The file the face search read (a converted copy, when there is one).
                with self.open_video(item.get("analysis_key") or item["video_key"]) as video:
                    for cut, data in cut_from(video, cuts):
                        self.files.put(session_id, cut.name, data)
                        done.append(cut.name)
                        if cut.name in thumbs:
                            faces[thumbs[cut.name]] = data
        except Exception:  # noqa: BLE001 - any failure leaves attendance as it is
            self.log.exception("evidence crops could not be cut",
                               extra={"session_id": session_id, "job_id": job_id,
                                      "cut": len(done), "planned": len(cuts)})
            status = FAILED
        missing = len(cuts) - len(done)
        if status == READY and missing:
            self.log.warning("some evidence moments are not in the video",
                             extra={"session_id": session_id, "missing": missing})
        self._group(item, faces)  # before "ready": the page's last read sees the result
        self.sessions.set_evidence(session_id, job_id, status, done)
        self.log.info("evidence crops stored", extra={"session_id": session_id,
                                                      "crops": len(done), "status": status})
        return status

    def _group(self, item, faces):
        """Merge unrecognised entries that are one face (chalicelib/strangers.py); a
        failure is logged and leaves the entries as the person index grouped them."""
        if self.grouping is None or len(faces) < 2:
            return
        try:
            self.grouping.group(item, faces)
        except Exception:  # noqa: BLE001 - the per-index entries stand
            self.log.exception("unrecognised people could not be grouped by face",
                               extra={"session_id": item["session_id"],
                                      "job_id": item.get("job_id")})

    def links(self, session, rows):
        """Add presigned crop links: ``crops`` on each row, ``crop`` on each stranger.

        Only crops that were cut are linked (``evidence_cut``); links last
        LINK_SECONDS. ``session`` is the API view (with ``strangers``).
        """
        cut = set(session.get("evidence_cut") or [])
        session_id = session["session_id"]

        def link(name):
            return self.files.link(session_id, name) if name in cut else None

        # Someone registered from this session: their face is the stranger's crop.
        registered = {s["registered_as"]: stranger_crop(s["number"])
                      for s in session.get("strangers") or []
                      if s.get("registered_as") and not s.get("from_student")}
        for row in rows:
            row["crops"] = {which: link(student_crop(row["student_id"], which))
                            for which in ("best", "first")}
            if not row["crops"]["best"] and row["student_id"] in registered:
                row["crops"]["best"] = link(registered[row["student_id"]])
        for stranger in session.get("strangers") or []:
            source = stranger.get("from_student")
            stranger["crop"] = link(student_crop(source, "best") if source
                                    else stranger_crop(stranger["number"]))
            stranger["has_photo"] = (not source
                                     and stranger_crop(stranger["number"], True) in cut)
        return session, rows

    def forget_student(self, student_id):
        """Delete a person's crops from every session they have a row in (their history
        keeps its rows; the faces go). Answers how many sessions were touched."""
        touched = 0
        for row in self.attendance.history(student_id):
            names = [student_crop(student_id, which) for which in ("best", "first")]
            self.files.delete(row["session_id"], names)
            self.sessions.forget_crops(row["session_id"], names)
            touched += 1
        return touched
