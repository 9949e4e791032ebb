"""Benchmark: the built-in face engine on a classroom video, against a naive loop.

Makes a 60-second 1280x720 classroom video from the real photos in
../shared/faces (ten people, back-row faces of 45-60 px and front-row faces
up to 150 px, swaying a little, some arriving late, leaving early or coming
back), then prints, measured in this one run:

- the engine at its default settings: wall time, video seconds per wall
  second, peak memory (this process plus its worker processes);
- decode only (every frame decoded, the sampled ones converted to arrays, as
  the engine does): the physical limit, and the engine's distance to it;
- a naive loop on the same sampled frames: HOG upsampled once on every
  frame, every face described, no tracking;
- recall of both against the known schedule (appearances found, and share of
  (sample, person on screen) pairs reported), and wrong identities;
- the engine's peak memory on a 30 s and on the 60 s video (flat = bounded
  buffers, no growth with length).

Asserts nothing about speed: it prints figures. ``make bench`` runs it;
``--quick`` runs the naive loop on the first 20 s only (and scales it).
"""
import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from local.engine import face_engine, video  # noqa: E402
from tests.support.video_maker import make_video  # noqa: E402

FACES = pathlib.Path(os.environ.get("ROLLCALL_FACES_DIR", ROOT.parent / "shared" / "faces"))
SIZE = (1280, 720)
FPS = 15

# identity, x, y, face height px, [(start_s, end_s), ...]
CLASS = [
    ("john_simm", 60, 250, 45, [(0.0, 60.0)]),
    ("john_salley", 230, 250, 50, [(0.0, 25.0), (38.0, 60.0)]),
    ("john_savage", 400, 245, 55, [(5.0, 60.0)]),
    ("john_schneider", 570, 250, 48, [(0.0, 52.0)]),
    ("john_shimkus", 740, 245, 60, [(12.5, 47.5)]),
    ("alex_lacamoire", 910, 240, 58, [(0.0, 60.0)]),
    ("kit_harington", 1080, 240, 52, [(3.2, 60.0)]),
    ("rose_leslie", 80, 420, 90, [(0.0, 60.0)]),
    ("joe_biden", 400, 400, 120, [(0.0, 33.3), (44.1, 60.0)]),
    ("barack_obama", 800, 390, 150, [(20.7, 60.0)]),
]


def schedule(duration):
    """Appearances within the first ``duration`` seconds."""
    out = []
    for who, x, y, h, spans in CLASS:
        for a, b in spans:
            if a < duration:
                out.append(dict(image=FACES / "people" / who / "2.jpg", label=who,
                                start_s=a, end_s=min(b, duration), x=x, y=y, height=h,
                                drift=4))
    return out


class PeakRss:
    """Peak resident memory of this process plus its children, sampled every 20 ms."""

    def __init__(self, trace_every_s=None):
        self.peak = 0                   # resident, summed over the processes
        self.pss_peak = 0               # proportional (see _pss), sampled less often
        self.trace_every_s = trace_every_s
        self.trace = []                 # (seconds since start, MB) every trace_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _kb_line(path, prefix):
        """The ``<prefix> N kB`` line of a /proc file, in bytes (0 once the process is gone)."""
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(prefix):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    @staticmethod
    def _rss(pid):
        return PeakRss._kb_line(f"/proc/{pid}/status", "VmRSS:")

    @staticmethod
    def _children(pid):
        kids = []
        for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
            try:
                kids += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        return kids

    @staticmethod
    def _pss(pid):
        """Proportional set size: pages shared between processes (the libraries,
        the models' mapped files) split between them instead of counted in each."""
        return PeakRss._kb_line(f"/proc/{pid}/smaps_rollup", "Pss:")

    def current(self):
        me = os.getpid()
        return self._rss(me) + sum(self._rss(c) for c in self._children(me))

    def current_pss(self):
        me = os.getpid()
        return self._pss(me) + sum(self._pss(c) for c in self._children(me))

    def _run(self):
        start = next_trace = next_pss = time.perf_counter()
        while not self._stop.is_set():
            now = self.current()
            self.peak = max(self.peak, now)
            if time.perf_counter() >= next_pss:      # costlier to read: 4 times a second
                self.pss_peak = max(self.pss_peak, self.current_pss())
                next_pss += 0.25
            if self.trace_every_s and time.perf_counter() >= next_trace:
                self.trace.append((time.perf_counter() - start, now / 2 ** 20))
                next_trace += self.trace_every_s
            time.sleep(0.02)

    def __enter__(self):
        self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def decode_only(path, sample_fps):
    """Decode every frame; convert the sampled ones, as the engine's reader does."""
    start = time.perf_counter()
    count = 0
    for _ in video.sampled_frames(path, sample_fps):
        count += 1
    return time.perf_counter() - start, count


def naive(path, sample_fps, seconds=None):
    """Every sampled frame: HOG upsampled once, every face aligned and described."""
    detections = []
    start = time.perf_counter()
    end_k = None if seconds is None else int(seconds * sample_fps)
    for k, t, rgb in video.sampled_frames(path, sample_fps, 0, end_k):
        gray = face_engine.to_gray(rgb)
        for det in face_engine.detect(gray, 1):
            chip = face_engine.face_chip(rgb, face_engine.shape_of(rgb, det.box))
            detections.append((int(t * 1000), det.box, face_engine.describe_chips([chip])[0]))
    return time.perf_counter() - start, detections


def identify(descriptors, refs):
    """Best reference name for a set of descriptors, or None below similarity 80."""
    names = list(refs)
    matrix = np.stack([refs[n] for n in names])
    best_name, best = None, 0.0
    for d in descriptors:
        sims = face_engine.similarity(face_engine.distances(d, matrix))
        i = int(np.argmax(sims))
        if sims[i] > best:
            best_name, best = names[i], float(sims[i])
    return best_name if best >= 80 else None


def score(sightings, appearances, duration, sample_fps):
    """(appearances found, share of on-screen sample pairs seen, wrong identities).

    ``sightings``: (timestamp ms, name or None) pairs."""
    seen = {}
    for t_ms, name in sightings:
        if name:
            seen.setdefault(name, set()).add(int(round(t_ms / 1000.0 * sample_fps)))
    found, on_screen, hit = 0, 0, 0
    for a in appearances:
        ks = [k for k in range(int(duration * sample_fps) + 1)
              if a["start_s"] <= k / sample_fps < a["end_s"]]
        got = seen.get(a["label"], set())
        on_screen += len(ks)
        hit += len(got & set(ks))
        found += bool(got & set(ks))
    wrong = sum(1 for _, name in sightings if name and name not in {a["label"] for a in appearances})
    return found, hit / max(1, on_screen), wrong


def engine_run(path, settings, refs):
    with PeakRss() as rss:
        start = time.perf_counter()
        info, tracks = video.analyse(path, settings)
        wall = time.perf_counter() - start
    sightings = []
    for track in tracks:
        name = identify([np.asarray(d, np.float32) for d in track["descriptors"]], refs)
        sightings += [(t_ms, name) for t_ms, _, _ in track["entries"]]
    described = sum(len(t["descriptors"]) for t in tracks)
    return info, wall, rss.peak, sightings, len(tracks), described


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="naive loop on the first 20 s only, scaled to 60 s")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    if not (FACES / "people").is_dir():
        print(f"face photos not found in {FACES}; set ROLLCALL_FACES_DIR")
        return 1
    settings = video.VideoSettings.from_env(workers=args.workers or max(1, os.cpu_count() or 1))
    out = pathlib.Path(tempfile.mkdtemp(prefix="face-bench-"))
    print(f"making the videos in {out} ...", flush=True)
    long_path, short_path = out / "class60.mp4", out / "class30.mp4"
    appearances = schedule(60.0)
    make_video(long_path, appearances, size=SIZE, fps=FPS, duration_s=60.0)
    make_video(short_path, schedule(30.0), size=SIZE, fps=FPS, duration_s=30.0)
    refs = {who: face_engine.find_faces(face_engine.decode_image(
        (FACES / "people" / who / "1.jpg").read_bytes()))[0].descriptor
        for who, *_ in CLASS}
    print(f"video: 60 s, {SIZE[0]}x{SIZE[1]}, {FPS} fps, H.264; {len(CLASS)} people, "
          f"{len(appearances)} appearances, faces {min(c[3] for c in CLASS)}-"
          f"{max(c[3] for c in CLASS)} px; sampling {settings.sample_fps}/s, "
          f"changed regions searched every {settings.scan_interval_s} s, whole frame every "
          f"{settings.full_scan_interval_s} s, {settings.workers} worker process(es), "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")

    video.worker_pool(settings.workers) if settings.workers > 0 else face_engine.models()
    decode_wall, samples = decode_only(long_path, settings.sample_fps)
    decode_wall2, _ = decode_only(long_path, settings.sample_fps)
    decode_wall = min(decode_wall, decode_wall2)

    _, _, rss30, _, _, _ = engine_run(short_path, settings, refs)
    info, wall, rss60, sightings, n_tracks, described = engine_run(long_path, settings, refs)
    e_found, e_share, e_wrong = score(sightings, appearances, 60.0, settings.sample_fps)

    seconds = 20.0 if args.quick else None
    naive_wall, detections = naive(long_path, settings.sample_fps, seconds)
    naive_span = seconds or 60.0
    naive_sightings = [(t, identify([d], refs)) for t, _, d in detections]
    n_found, n_share, n_wrong = score(naive_sightings, schedule(naive_span), naive_span,
                                      settings.sample_fps)
    naive_wall_60 = naive_wall * 60.0 / naive_span

    mb = 1024 * 1024
    print()
    print(f"{'':28}{'wall s':>9}{'x real time':>13}{'vs decode':>11}")
    print(f"{'decode only (' + str(samples) + ' samples)':28}{decode_wall:9.2f}"
          f"{60.0 / decode_wall:13.1f}{1.0:11.2f}")
    print(f"{'engine (default settings)':28}{wall:9.2f}{60.0 / wall:13.1f}"
          f"{wall / decode_wall:11.2f}")
    label = "naive loop" + (" (20 s, scaled)" if args.quick else "")
    print(f"{label:28}{naive_wall_60:9.2f}{60.0 / naive_wall_60:13.2f}"
          f"{naive_wall_60 / decode_wall:11.2f}")
    print(f"engine is {naive_wall_60 / wall:.1f}x faster than the naive loop")
    print()
    print(f"engine: {n_tracks} tracks, {described} descriptors computed "
          f"(naive: {len(detections)} over {naive_span:.0f} s)")
    print(f"recall, appearances found: engine {e_found}/{len(appearances)}, naive "
          f"{n_found}/{len(schedule(naive_span))}")
    print(f"recall, on-screen samples reported: engine {e_share:.1%}, naive {n_share:.1%}")
    print(f"wrong identities: engine {e_wrong}, naive {n_wrong}")
    print()
    print(f"peak memory (this process + workers): 30 s video {rss30 / mb:.0f} MB, "
          f"60 s video {rss60 / mb:.0f} MB")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
