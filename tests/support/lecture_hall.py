"""Lecture-hall test videos: rows of seated people, 24-60 px faces, light swings.

Built on video_maker's photo preparation. The truth is per *seat*: one person
sits there, identified by the photo's identity, present during given spans
(looking down, leaving and coming back are gaps). Only 11 identities exist
in ../shared/faces, so a hall of 30+ seats repeats identities in several
seats (lookalike siblings, for the engine's purposes: each seat is one person
on screen, and two seats seen at the same time are never the same person).

``hall(...)`` answers the seats; ``write(path, seats, ...)`` encodes the
video (H.264, CRF 28 by default) with the room's light swinging slowly and
dimmed once, as when a projector comes on.
"""
import math
import pathlib
import random
from fractions import Fraction

import numpy as np

from tests.support import video_maker

# who sits in the hall: enrolled = registered with people/<id>/1.jpg
ENROLLED = ["john_salley", "john_savage", "john_schneider", "john_simm", "alex_lacamoire",
            "kit_harington", "barack_obama", "john_shimkus", "rose_leslie"]
ABSENT = ["john_shimkus", "rose_leslie"]            # registered, not in the hall
STRANGERS = ["joe_biden", "lin_manuel_miranda", "child"]   # in the hall, not registered
CHILD_BOX = (1594, 1062, 1749, 1216)   # the unlabelled child in group/obama_and_biden.jpg


def _photos(faces_dir, identity):
    if identity == "child":
        return [faces_dir / "group" / "obama_and_biden.jpg"]
    folder = faces_dir / "people" / identity
    photos = sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))
    # photo 1 registers the person; the hall shows the others when there are
    return [p for p in photos if p.stem != "1"] or photos


def hall(faces_dir, *, duration_s=60.0, size=(1280, 720), rows=(24, 28, 34, 44, 60),
         per_row=7, seed=7):
    """Seats of a lecture hall: dicts with identity, photo, face px, place and spans."""
    rng = random.Random(seed)
    present = [p for p in ENROLLED if p not in ABSENT] + STRANGERS
    w, h = size
    seats = []
    top, bottom = 0.12 * h, 0.80 * h
    for r, face_px in enumerate(rows):
        y = top + (bottom - top) * r / max(1, len(rows) - 1)
        for i in range(per_row):
            who = present[(r * per_row + i) % len(present)]
            photos = _photos(faces_dir, who)
            picture = photos[(r + i) % len(photos)]
            x = w * (i + 0.5 + 0.25 * (r % 2)) / (per_row + 0.5)
            spans = _spans(rng, duration_s)
            seats.append({"identity": who, "image": picture, "face_px": face_px,
                          "x": int(x), "y": int(y), "spans": spans})
    return seats


def _spans(rng, duration):
    """Present from near the start to near the end, looking down once or twice."""
    start = 0.0 if rng.random() < 0.8 else rng.uniform(2, duration * 0.3)
    end = duration if rng.random() < 0.85 else rng.uniform(duration * 0.7, duration)
    spans, t = [], start
    for _ in range(rng.choice((1, 2, 2, 3))):
        gap_at = rng.uniform(t + 4, t + max(5.0, (end - t) / 2))
        if gap_at + 8 >= end:
            break
        gap = rng.uniform(2.5, 7.0)
        spans.append((round(t, 2), round(gap_at, 2)))
        t = gap_at + gap
    spans.append((round(t, 2), round(end, 2)))
    return [s for s in spans if s[1] - s[0] >= 1.0]


def appearances(seats):
    """video_maker appearances (one per seat span), each carrying its seat number."""
    out = []
    for n, seat in enumerate(seats):
        for a, b in seat["spans"]:
            app = dict(image=seat["image"], label=seat["identity"], start_s=a, end_s=b,
                       height=seat["face_px"], drift=2, seat=n)
            if seat["identity"] == "child":
                l, t, r, bt = CHILD_BOX
                m = int((r - l) * 0.6)
                app["crop"] = (l - m, t - m, r + m, bt + m)
                # the face is the crop's middle part: its box in the truth too
                app["inner"] = (m / (r - l + 2 * m), m / (bt - t + 2 * m))
                app["height"] = int(round(seat["face_px"] * (bt - t + 2 * m) / (bt - t)))
            out.append(app)
    return out


def light(t):
    """The room's brightness at t: slow swing of +-15 %, dimmed 25 % from 30 to 38 s."""
    gain = 1.0 + 0.15 * math.sin(2 * math.pi * t / 20.0)
    if 30.0 <= t % 60.0 < 38.0:
        gain *= 0.75
    return gain


def write(path, seats, *, size=(1280, 720), fps=15, duration_s=60.0, crf=28, seed=0):
    """Encode the hall; answers [(seat, start_s, end_s, face box at start)]."""
    import av
    w, h = size
    base = video_maker.classroom_background((w, h), seed).astype(np.float32)
    prepared = []
    for app in appearances(seats):
        piece, face = video_maker._prepare(app)
        # the face's centre sits at the seat's place
        app = dict(app, x=int(seats[app["seat"]]["x"] - (face[0] + face[2]) / 2),
                   y=int(seats[app["seat"]]["y"] - (face[1] + face[3]) / 2))
        prepared.append((app, piece, face))
    truth = []
    for app, piece, face in prepared:
        x, y = video_maker._position(app, app["start_s"], piece.shape, (w, h))
        if "inner" in app:
            fx, fy = app["inner"][0] * (face[2] - face[0]), app["inner"][1] * (face[3] - face[1])
            face = (face[0] + fx, face[1] + fy, face[2] - fx, face[3] - fy)
        truth.append({"seat": app["seat"], "identity": app["label"], "start_s": app["start_s"],
                      "end_s": app["end_s"],
                      "face_box": [x + face[0], y + face[1], x + face[2], y + face[3]]})
    frames = int(round(duration_s * fps))
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i in range(frames):
            t = i / float(fps)
            frame = base.copy()
            for app, piece, _ in prepared:
                if app["start_s"] <= t < app["end_s"]:
                    x, y = video_maker._position(app, t, piece.shape, (w, h))
                    ph, pw = min(piece.shape[0], h - y), min(piece.shape[1], w - x)
                    frame[y:y + ph, x:x + pw] = piece[:ph, :pw]
            frame = np.clip(frame * light(t), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return truth


def seat_at(truth, t_ms, box):
    """The seat whose face (visible at t_ms) the box covers best, or None."""
    t = t_ms / 1000.0
    best, best_overlap = None, 0.0
    for app in truth:
        if not (app["start_s"] - 0.6 <= t <= app["end_s"] + 0.6):
            continue
        l, tp, r, b = app["face_box"]
        ix = max(0.0, min(r, box[2]) - max(l, box[0]))
        iy = max(0.0, min(b, box[3]) - max(tp, box[1]))
        overlap = ix * iy / max(1.0, (r - l) * (b - tp))
        if overlap > best_overlap:
            best, best_overlap = app["seat"], overlap
    return best if best_overlap >= 0.2 else None
