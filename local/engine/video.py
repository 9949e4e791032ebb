"""Video in, face tracks out: streaming decode, sampling, parallel segments.

A video is decoded as a stream with PyAV (FFmpeg: MP4, MOV, AVI, MKV with
H.264 and the other usual codecs) in a background thread, so decoding (which
releases the GIL; in FFmpeg's threads, or one in each worker process)
overlaps detection. Only
the sampled frames (``sample_fps``, default 2 per second) are converted to
arrays; memory does not grow with the video's length.

Both cores: the video is cut into time segments analysed by a pool of worker
processes (following faces is Python, which holds the GIL, so threads would
not do), each seeking to its own start; tracks that cross a cut are stitched back together
so one continuous appearance keeps one index. A segment that starts after
others are done gets the faces they described, so a person still in their
seat (same place, same-looking face) is not described again.
"""
import atexit
import math
import multiprocessing
import os
import queue
import sys
import threading
import time
import types
from concurrent.futures import FIRST_COMPLETED, CancelledError, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field

import numpy as np

from local import priority
from local.engine.boxes import iou


class VideoError(Exception):
    """The file cannot be analysed; the message says why (for StatusMessage)."""


@dataclass
class VideoSettings:
    """How a video is analysed. Every field can be set by the endpoint's caller.

    sample_fps: frames analysed per second of video; timestamps are accurate
        to one interval (1 / sample_fps).
    scan_interval_s: new faces are looked for this often, in the parts of
        the picture that changed since the previous look; in between, known
        faces are followed cheaply. A
        face that appears between two looks is found at the next one and
        traced back through the frames in between.
    full_scan_interval_s: the whole frame is searched this often, and at
        each segment's start (catches a face that was there all along but not
        found, e.g. turned away and turning back too slowly to count as a
        change), and dlib looks at every known face again.
    max_misses: samples a face may go unseen before its track ends (so a
        blink or a turned head does not split one appearance in two).
    descriptors_per_track: how many of a track's best frames are described.
    workers: worker processes (0 = analyse in the calling thread); default
        the CPU count.
    min_segment_s: shortest segment worth a worker of its own.
    max_segment_s: longest segment: a long video is cut into pieces of at
        most this, so analyses running at once share the workers in turns.
    min_face_px: the smallest face (box width, px of the video) looked for;
        MTCNN's scans read the frame scaled by 12 / min_face_px (halved for
        24 px): the smaller, the more pixels.
    """
    sample_fps: float = 2.0
    scan_interval_s: float = 2.0
    full_scan_interval_s: float = 30.0
    max_misses: int = 2
    descriptors_per_track: int = 2
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    min_segment_s: float = 8.0
    min_face_px: float = 24.0
    max_segment_s: float = 120.0

    def __post_init__(self):
        for name in ("sample_fps", "scan_interval_s", "full_scan_interval_s", "min_segment_s",
                     "min_face_px", "max_segment_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0, not {getattr(self, name)!r}")
        if self.max_misses < 0 or self.descriptors_per_track < 1 or self.workers < 0:
            raise ValueError("max_misses and workers must be 0 or more, "
                             "descriptors_per_track 1 or more")

    @classmethod
    def from_env(cls, environ=None, **overrides):
        """Settings from ROLLCALL_FACE_* variables (e.g. ROLLCALL_FACE_SAMPLE_FPS)."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, field_type in (("sample_fps", float), ("scan_interval_s", float),
                                 ("full_scan_interval_s", float),
                                 ("max_misses", int), ("descriptors_per_track", int),
                                 ("workers", int), ("min_segment_s", float),
                                 ("min_face_px", float), ("max_segment_s", float)):
            key = "ROLLCALL_FACE_" + name.upper()
            raw = environ.get(key)
            if raw not in (None, ""):
                try:
                    values[name] = field_type(raw)
                except ValueError:
                    raise ValueError(f"{key}={raw!r} is not a {field_type.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class VideoInfo:
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    format: str
    color_range: str

    def metadata(self):
        """Rekognition's VideoMetadata shape."""
        return {"Codec": self.codec, "DurationMillis": int(round(self.duration_s * 1000)),
                "Format": self.format, "FrameRate": round(float(self.fps), 3),
                "FrameHeight": self.height, "FrameWidth": self.width,
                "ColorRange": self.color_range}


_FORMAT_NAMES = {"mov,mp4,m4a,3gp,3g2,mj2": "QuickTime / MOV", "avi": "AVI",
                 "matroska,webm": "Matroska / WebM"}


def _open(path):
    import av
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError("Unsupported codec/format: the file is not a video FFmpeg can "
                         f"read ({exc.__class__.__name__})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError("Unsupported codec/format: the file has no video stream")
    return container


def probe(path):
    """Duration, frame rate, size and codec of a video file (VideoError if unreadable)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        fps = float(stream.average_rate or stream.base_rate or stream.guessed_rate or 0)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000.0
        else:
            duration = 0.0
        if not ctx.width or not ctx.height or duration <= 0:
            raise VideoError("Unsupported codec/format: the video stream has no frames")
        color_range = "FULL" if str(getattr(ctx, "color_range", "")).endswith("2") else "LIMITED"
        width, height = _display_size(container, stream, ctx.width, ctx.height)
        return VideoInfo(duration_s=duration, fps=fps, width=width, height=height,
                         codec=ctx.name, format=_FORMAT_NAMES.get(container.format.name,
                                                                  container.format.name),
                         color_range=color_range)


def require_face_search_format(info):
    """Rekognition Video reads H.264 in MP4 or MOV only; anything else fails its job
    with "Unsupported codec/format.", so the engine does too (one machine predicts AWS)."""
    if info.codec != "h264" or info.format != "QuickTime / MOV":
        raise VideoError(f"Unsupported codec/format. (the video is {info.codec} in "
                         f"{info.format}; face search reads H.264 in MP4 or MOV)")


def upright(frame):
    """The frame's RGB pixels as they are meant to be seen.

    Phones store portrait video sideways with a display matrix saying how to
    turn it (``frame.rotation``, degrees counter-clockwise); faces must be
    upright for the detector, so the pixels are turned here."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = int(round((frame.rotation or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def _display_size(container, stream, width, height):
    """Width and height as displayed (swapped for a video stored sideways)."""
    try:
        for frame in container.decode(stream):
            if int(round((frame.rotation or 0) / 90.0)) % 2:
                return height, width
            break
    except Exception:  # an unreadable first frame is reported when decoding
        pass
    return width, height


#: FFmpeg threads per decoded video: 0 = FFmpeg's choice (several); the
#: worker processes set 1 (see _start_worker)
_decode_threads = 0


def sampled_frames(path, sample_fps, first_k=0, end_k=None, queue_size=4):
    """Yield (k, seconds, rgb) for sample k = first_k .. end_k-1 (time k / sample_fps).

    For each sample time the first frame at or after it is used. Decoding runs
    in a thread and hands frames over through a small queue, so at most a few
    frames are held at once. Raises VideoError if the stream is corrupt or
    ends well before its announced duration (a truncated upload).
    """
    import av
    info = probe(path)
    interval = 1.0 / sample_fps
    half_frame = 0.5 / info.fps if info.fps else 0.0
    out = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    _END = object()

    def decode():
        try:
            with _open(path) as container:
                stream = container.streams.video[0]
                if _decode_threads:
                    stream.codec_context.thread_count = _decode_threads
                else:
                    stream.thread_type = "AUTO"     # FFmpeg's frame and slice threads
                if info.fps >= 24 and info.fps > 6 * sample_fps:
                    # frames no other frame refers to (B-frames) are never
                    # decoded: about a third less decoding for a typical
                    # H.264 file. A sample then comes from the next decoded
                    # frame, at most a few frames later: under 0.2 s from
                    # 24 fps up (at 10 fps it could miss someone leaving)
                    stream.codec_context.skip_frame = "NONREF"
                # times count from the container's start, as a player shows them
                origin = (container.start_time or 0) / 1_000_000.0
                start_s = first_k * interval
                if start_s > 0 and stream.time_base is not None:
                    seek_to_keyframe_before(container, stream, start_s + origin)
                k = first_k
                last_t = None
                for frame in container.decode(stream):
                    if stop.is_set():
                        return
                    if frame.time is None:
                        continue
                    t = frame.time - origin
                    last_t = t
                    while end_k is None or k < end_k:
                        target = k * interval
                        if t + half_frame < target:
                            break                    # not there yet: next frame
                        if t - target < interval:    # else no frame near that time: skip it
                            out.put((k, t, upright(frame)))
                        k += 1
                    if end_k is not None and k >= end_k:
                        break
                expected_end = min(info.duration_s, (end_k * interval) if end_k else info.duration_s)
                if last_t is None or last_t < expected_end - max(1.0, 2 * interval):
                    seen = 0.0 if last_t is None else last_t
                    raise VideoError(
                        f"The video is truncated or corrupt: frames stop at {seen:.1f} s of "
                        f"the {info.duration_s:.1f} s its header announces")
            out.put(_END)
        except VideoError as exc:
            out.put(exc)
        except (av.FFmpegError, OSError, ValueError) as exc:
            out.put(VideoError(f"The video is corrupt and cannot be decoded ({exc})"))

    thread = threading.Thread(target=decode, name="video-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        # unblock the decoder if it waits on a full queue
        while thread.is_alive():
            try:
                out.get_nowait()
            except queue.Empty:
                thread.join(0.05)


# -- segments and the worker pool ------------------------------------------------

def _analyse_segment(path, settings_dict, first_k, end_k, cut_after=False, reference=None,
                     known=None):
    """Worker entry point: track faces in samples [first_k, end_k).

    Answers (tracks, described faces); ``known`` are the described faces of
    segments already done, reused for a face that looks the same in the
    same place."""
    from local.engine.tracking import SegmentTracker
    settings = VideoSettings(**settings_dict)
    tracker = SegmentTracker(settings, first_k=first_k, cut_after=cut_after,
                             reference=reference, known=known)
    for k, t, rgb in sampled_frames(path, settings.sample_fps, first_k, end_k):
        tracker.add(k, t, rgb)
    tracks = tracker.finish()
    described = tracker.described_faces()
    del tracker
    _give_back_free_memory()
    return tracks, described


def _give_back_free_memory():
    """Hand the pages malloc keeps free back to the system (glibc only).

    A worker's peak is a few frames and the buffers of their analysis (more
    at 1080p); freed, glibc keeps the pages for later, so a worker that
    once analysed a 1080p video stayed that big for as long as it lived."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _find_malloc_trim():
    try:
        import ctypes
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim() if sys.platform.startswith("linux") else None


# described faces handed to a segment that starts after others are done
_KNOWN_KEPT = 256


def _known(done):
    """The described faces of finished segments (latest last), for the next one."""
    out = []
    for described in done:
        if described:
            out.extend(described)
    return out[-_KNOWN_KEPT:]


def _forget_unreachable(done):
    """Empty the described faces that :func:`_known` can no longer hand on.

    Only the last ``_KNOWN_KEPT`` in segment order are handed on, and a
    segment finishing later only adds faces after those it is placed behind:
    once later segments hold that many, earlier lists are dead weight (each
    is up to 256 faces of ~10 KB; an hour of video held ~75 MB of them)."""
    later = 0
    for i in range(len(done) - 1, -1, -1):
        if later >= _KNOWN_KEPT and done[i]:
            done[i] = []
        later += len(done[i] or ())


def _warm_up():
    from local.engine import face_engine, mtcnn, resnet
    face_engine.models()
    resnet.network()
    mtcnn.load()
    return os.getpid()


_pool = None
_pool_size = 0
_pool_lock = threading.Lock()
_stopping = threading.Event()       # set for good by shutdown_pool()


def _leave_with_parent(parent_pid, interval=1.0):
    """In a worker: exit as soon as the process that spawned it is gone.

    A killed parent (``kill -9``, a crashed server) never tells its pool to
    stop, and the workers would wait on their call queue for ever, holding
    their models' memory; reparented, their parent id changes."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(0)
    threading.Thread(target=watch, name="leave-with-parent", daemon=True).start()


#: Niceness of the video workers (their own sessions' too, see local.priority):
#: the one-machine stack sets 19 (and with it SCHED_IDLE), so analysing a video
#: takes only the CPU that the site's requests and the engine's photo answers
#: (registrations) leave.
WORKER_NICENESS_ENV = priority.WORKER_NICENESS_ENV


def _start_worker(parent_pid, nice):
    import cv2
    from local.engine import resnet
    global _decode_threads
    # the workers are the parallelism: one thread each for numpy's BLAS, for
    # OpenCV, and for FFmpeg (whose frame threads cost ~20 % more CPU for
    # the same frames, a loss when every core already runs a worker)
    resnet.one_blas_thread()
    cv2.setNumThreads(1)
    _decode_threads = 1
    _leave_with_parent(parent_pid)
    if nice > 0:
        priority.run_in_background(nice, own_session=True)


def _worker_niceness():
    raw = os.environ.get(WORKER_NICENESS_ENV, "").strip()
    try:
        return max(0, min(19, int(raw))) if raw else 0
    except ValueError:
        raise VideoError(f"{WORKER_NICENESS_ENV}={raw!r} is not a whole number") from None


def worker_pool(size):
    """The process pool shared by every analysis in this process (spawned once).

    Workers are spawned (not forked: the server has threads) and load the
    models (dlib's, the numpy ResNet, MTCNN's networks) once each."""
    global _pool, _pool_size
    with _pool_lock:
        if _stopping.is_set():
            raise VideoError("The face engine stopped before this video was analysed; "
                             "start the search again")
        broken = _pool is not None and getattr(_pool, "_broken", False)
        if _pool is None or _pool_size != size or broken:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            _pool = ProcessPoolExecutor(max_workers=size,
                                        mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_start_worker,
                                        initargs=(os.getpid(), _worker_niceness()))
            _pool_size = size
            # A spawned child re-runs the parent's main *script* unless it has a
            # __main__ guard; workers need nothing from it, so while they start
            # the parent's __main__ is shown to multiprocessing as a bare module.
            real_main = sys.modules["__main__"]
            sys.modules["__main__"] = types.ModuleType("__main__")
            try:
                futures = [_pool.submit(_warm_up) for _ in range(size)]
            finally:
                sys.modules["__main__"] = real_main
            try:
                _await_warm_up(futures)
            except Exception:
                # a worker that cannot load its models (a missing or damaged
                # weights file) must not leave a pool the next analysis takes
                # as ready; a stop leaves it to shutdown_pool
                if not _stopping.is_set():
                    _pool.shutdown(wait=False, cancel_futures=True)
                    _pool = None
                raise
        return _pool


def _await_warm_up(futures):
    """Wait for the new workers to load their models, or for the engine to stop.

    Called under the pool's lock, which :func:`shutdown_pool` needs too: a
    stop while workers start (on a busy machine, seconds) must not wait for
    them, nor for ever for one that never gets there."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.25)
        for future in done:
            future.result()         # a worker that died starting: BrokenProcessPool
        if pending and _stopping.is_set():
            raise VideoError("The face engine stopped before this video was analysed; "
                             "start the search again")


def discard_pool(pool):
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def shutdown_pool():
    """Stop the worker processes now (a running analysis is abandoned).

    Used when the endpoint stops and at exit: waiting for a long video's
    segment would hold up a Ctrl-C for as long as the segment takes."""
    global _pool
    _stopping.set()             # first: a pool still starting gives the lock up
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


#: how far (a share of the segment's length) a cut may move to a keyframe
KEYFRAME_REACH = 0.2


def plan_segments(info, settings, snap=None):
    """Sample ranges [(first_k, end_k)]: one per worker when the video is long
    enough, and none longer than ``max_segment_s`` (up to two fifths longer
    when both its cuts move to keyframes).

    ``snap(times, reach_s)`` (e.g. :func:`keyframes_near` for the file) moves
    the cuts to keyframes when there are more segments than workers: a
    segment that starts elsewhere must decode from the keyframe before its
    start, frames its neighbour decodes too (with a recorder's 10 s keyframe
    interval, up to 10 s of video decoded twice at every cut). With a
    segment per worker, all running at once (an analysis with the workers
    to itself), the analysis ends with the longest: equal lengths matter
    more there than the decoding saved."""
    total = int(math.floor(info.duration_s * settings.sample_fps + 1e-6)) + 1
    pieces = max(1, min(max(1, settings.workers),
                        int(info.duration_s // max(settings.min_segment_s, 1e-3))),
                 int(math.ceil(info.duration_s / max(settings.max_segment_s, 1e-3))))
    bounds = [round(i * total / pieces) for i in range(pieces + 1)]
    if snap is not None and pieces > max(1, settings.workers):
        reach_s = KEYFRAME_REACH * total / pieces / settings.sample_fps
        moved = snap([b / settings.sample_fps for b in bounds[1:-1]], reach_s)
        for i, t in enumerate(moved, start=1):
            k = int(math.ceil(t * settings.sample_fps - 1e-6))   # the first sample from it
            if bounds[i - 1] < k < bounds[i + 1]:
                bounds[i] = k
    return [(bounds[i], bounds[i + 1]) for i in range(pieces) if bounds[i + 1] > bounds[i]]


def keyframes_near(path, times, reach_s):
    """For each time (seconds, as sampled_frames counts them), the keyframe
    nearest it within ``reach_s``, or the time itself if none is that near.

    Reads packets only (no decoding): the keyframe a seek lands on before the
    time, and the first after it."""
    import av
    out = []
    try:
        with _open(path) as container:
            stream = container.streams.video[0]
            if stream.time_base is None:
                return list(times)
            origin = (container.start_time or 0) / 1_000_000.0
            for t in times:
                try:
                    out.append(_keyframe_near(container, stream, origin, t, reach_s))
                except av.FFmpegError:
                    out.append(t)       # this cut stays
    except (av.FFmpegError, OSError, VideoError):
        return list(times)      # the cuts stay; decoding will say what is wrong
    return out


def seek_to_keyframe_before(container, stream, seconds):
    """Seek so decoding starts at the last keyframe at or before ``seconds``
    (the container's clock).

    The time is turned into the stream's ticks to the nearest one: chopped,
    a time exactly on a keyframe (cuts are put there) can fall one tick short
    (3.0 s is 1799.9999 ticks of 1/600 s, QuickTime's usual time base) and
    the seek land on the keyframe before, a whole interval early."""
    container.seek(int(round(seconds / stream.time_base)), stream=stream,
                   backward=True, any_frame=False)


def _keyframe_near(container, stream, origin, t, reach_s):
    seek_to_keyframe_before(container, stream, t + origin)
    before = after = None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        at = float(packet.pts * stream.time_base) - origin
        if packet.is_keyframe:
            if at <= t:
                before = at
            else:
                after = at
                break
        if at > t + reach_s:
            break
    near = [k for k in (before, after) if k is not None and abs(k - t) <= reach_s]
    return min(near, key=lambda k: abs(k - t)) if near else t


# Analyses running now (each in its own thread of the endpoint): each keeps at
# most workers / running segments in the pool, so they share it in turns
# instead of the last one waiting for every segment of the others.
_running = 0
_running_lock = threading.Lock()


def _share(workers):
    with _running_lock:
        return max(1, workers // max(1, _running))


def _run_in_pool(pool, path, settings, settings_dict, segments, progress, reference):
    global _running
    with _running_lock:
        _running += 1
    try:
        results = [None] * len(segments)
        described = [None] * len(segments)
        waiting = list(enumerate(segments))
        flying = {}
        while waiting or flying:
            while waiting and len(flying) < _share(settings.workers):
                i, (a, b) = waiting.pop(0)
                flying[pool.submit(_analyse_segment, str(path), settings_dict, a, b,
                                   i < len(segments) - 1, reference,
                                   _known(described))] = i
            # Not a plain wait: a segment already handed to a worker that the
            # endpoint's stop then terminates may never be resolved, and this
            # thread would hold up the process's exit for ever.
            done, _ = wait(list(flying), timeout=0.5, return_when=FIRST_COMPLETED)
            if not done and _stopping.is_set():
                for future in flying:
                    future.cancel()
                raise VideoError("The face engine stopped before this video was analysed; "
                                 "start the search again")
            for future in done:
                i = flying.pop(future)
                results[i], described[i] = future.result()
            _forget_unreachable(described)
            if progress is not None:
                progress(sum(r is not None for r in results), len(segments))
        return results
    finally:
        with _running_lock:
            _running -= 1


def analyse(path, settings=None, progress=None, reference=None):
    """Every face track in the video: (VideoInfo, [tracks sorted by first sighting]).

    Each track is a dict: ``entries`` [(timestamp_ms, (l, t, r, b) px,
    confidence)], ``descriptors`` [128-D arrays], ``sizes`` (face px of each
    descriptor) and ``first_ms``/``last_ms``. ``progress(done, total)`` is
    called as segments finish. ``reference`` (the collection's descriptors,
    an N x 128 array) lets a track whose first descriptor is clearly someone,
    or clearly nobody, skip describing its other frames.
    """
    settings = settings or VideoSettings()
    info = probe(path)
    segments = plan_segments(info, settings,
                             snap=lambda times, reach_s: keyframes_near(path, times, reach_s))
    settings_dict = asdict(settings)
    if settings.workers <= 0:
        results, described = [], []
        for i, (a, b) in enumerate(segments):
            tracks, faces = _analyse_segment(str(path), settings_dict, a, b,
                                             i < len(segments) - 1, reference,
                                             _known(described))
            results.append(tracks)
            described.append(faces)
            _forget_unreachable(described)
            if progress is not None:
                progress(i + 1, len(segments))
    else:
        for attempt in (1, 2):
            pool = worker_pool(settings.workers)
            try:
                results = _run_in_pool(pool, path, settings, settings_dict, segments, progress,
                                       reference)
                break
            except (BrokenProcessPool, CancelledError, RuntimeError):
                # a worker died (killed, out of memory) or the engine is
                # stopping: never keep a broken pool, start fresh ones once
                # (unless stopping), then give up with a reason
                discard_pool(pool)
                if _stopping.is_set():
                    raise VideoError("The face engine stopped before this video was "
                                     "analysed; start the search again") from None
                if attempt == 2:
                    raise VideoError("The face engine's worker processes stopped while "
                                     "analysing this video; try again") from None
    tracks = stitch(results, segments, settings)
    del results
    _give_back_free_memory()            # the segments' answers, unpickled and let go
    return info, tracks


def stitch(results, segments, settings):
    """Join tracks that run into a segment cut with those that start at it."""
    merged = list(results[0]) if results else []
    for seg_index in range(1, len(results)):
        cut_k = segments[seg_index][0]
        ending = [t for t in merged if t["last_k"] >= cut_k - 1 - settings.max_misses]
        starting = [t for t in results[seg_index] if t["first_k"] <= cut_k + settings.max_misses]
        pairs = sorted(((iou(a["entries"][-1][1], b["entries"][0][1]), i, j)
                        for i, a in enumerate(ending) for j, b in enumerate(starting)),
                       reverse=True)
        used_a, used_b, joined = set(), set(), set()
        for overlap, i, j in pairs:
            if overlap < 0.2 or i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            a, b = ending[i], starting[j]
            a["entries"].extend(b["entries"])
            a["descriptors"].extend(b["descriptors"])
            a.setdefault("sizes", []).extend(b.get("sizes", []))
            a["last_k"], a["last_ms"] = b["last_k"], b["last_ms"]
            joined.add(id(b))
        merged.extend(t for t in results[seg_index] if id(t) not in joined)
    merged.sort(key=lambda t: (t["first_ms"], t["entries"][0][1][0]))
    return merged
