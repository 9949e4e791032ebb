"""Make test videos from real face photos: a plain classroom, people in and out.

Tests (the engine's, attendance, end to end) and the benchmark need videos
whose truth is known: who is on screen, where, and from when to when. This
module pastes real photos on a drawn classroom background and encodes an MP4
(H.264 through PyAV by default, which is what phones and browsers upload), so
the engine is exercised on the same decode path as real uploads.

An appearance is a dict::

    {"image": "/path/to/photo.jpg",   # any photo PIL reads (EXIF honoured)
     "start_s": 2.0, "end_s": 6.5,    # visible for start_s <= t < end_s
     "x": 300, "y": 200,              # top-left of the pasted picture, px
     "height": 80,                    # face height in the video, px (see crop)
     "drift": 6,                      # optional: sway amplitude in px (default 0)
     "crop": "face",                  # optional: "face" (default), "none" or (l, t, r, b)
     "label": "john_simm"}            # optional: carried into the metadata

With ``crop="face"`` the photo is cut around its face (dlib HOG, found once and
cached) with a margin, and scaled so the *face box* is ``height`` pixels tall:
60 gives a back-row student, 150 a front-row one. With ``crop="none"`` the
whole photo is scaled to ``height``; with an explicit box that region is.
"""
import functools
import math
import pathlib
import zlib
from fractions import Fraction

import numpy as np
from PIL import Image, ImageOps

# Margin around the detected face box when cropping: room for hair and chin so
# the pasted picture looks like a head, and so detectors see face context.
_FACE_MARGIN = 0.6
_CODECS = {"h264": ("libx264", "yuv420p"), "mp4v": ("mpeg4", "yuv420p")}


def load_rgb(path):
    """The photo as an RGB uint8 array, turned upright by its EXIF orientation."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "P"):
            img = img.convert("RGBA")
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, img)
        return np.asarray(img.convert("RGB"))


@functools.lru_cache(maxsize=None)
def _hog_detector():
    import dlib
    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=256)
def face_box(path):
    """The largest face's (l, t, r, b) in the photo's own pixels, or None.

    Detection runs on a copy at most 900 px on its long side (fast), with one
    upsampling so small faces in big photos are still found."""
    rgb = load_rgb(path)
    scale = min(1.0, 900.0 / max(rgb.shape[:2]))
    small = rgb
    if scale < 1.0:
        small = np.asarray(Image.fromarray(rgb).resize(
            (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), Image.BILINEAR))
    rects = _hog_detector()(small, 1)
    if not len(rects):
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return tuple(int(round(v / scale)) for v in (r.left(), r.top(), r.right(), r.bottom()))


def _prepare(appearance):
    """The picture to paste (RGB array) and the face box inside it (l, t, r, b)."""
    rgb = load_rgb(appearance["image"])
    crop = appearance.get("crop", "face")
    height = int(appearance["height"])
    if crop == "face":
        box = face_box(str(appearance["image"]))
        if box is None:
            raise ValueError(f"no face found in {appearance['image']}; pass crop='none' or a box")
        l, t, r, b = box
        side = max(r - l, b - t)
        m = int(side * _FACE_MARGIN)
        region = (max(0, l - m), max(0, t - m), min(rgb.shape[1], r + m), min(rgb.shape[0], b + m))
        scale = height / float(b - t)
        face_in_region = (l - region[0], t - region[1], r - region[0], b - region[1])
    elif crop in (None, "none"):
        region = (0, 0, rgb.shape[1], rgb.shape[0])
        scale = height / float(rgb.shape[0])
        face_in_region = None
    else:
        region = tuple(int(v) for v in crop)
        scale = height / float(region[3] - region[1])
        face_in_region = None
    piece = rgb[region[1]:region[3], region[0]:region[2]]
    size = (max(1, round(piece.shape[1] * scale)), max(1, round(piece.shape[0] * scale)))
    resample = Image.LANCZOS if scale < 1 else Image.BICUBIC
    piece = np.asarray(Image.fromarray(piece).resize(size, resample))
    if face_in_region is None:
        face = (0, 0, piece.shape[1], piece.shape[0])
    else:
        face = tuple(int(round(v * scale)) for v in face_in_region)
    return piece, face


def classroom_background(size, seed=0):
    """A plain classroom seen from the front: wall, blackboard, rows of desks."""
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (214, 206, 188)                                  # wall
    floor_y = int(h * 0.62)
    img[floor_y:] = (150, 118, 86)                            # floor
    bl, bt, br, bb = int(w * 0.18), int(h * 0.06), int(w * 0.82), int(h * 0.30)
    img[bt:bb, bl:br] = (46, 72, 58)                          # blackboard
    img[bb:bb + max(2, h // 120), bl - 4:br + 4] = (120, 96, 70)
    for row in range(3):                                      # desks
        y = int(h * (0.66 + 0.11 * row))
        img[y:y + max(4, h // 40), int(w * 0.04):int(w * 0.96)] = (120 - 10 * row, 84, 52)
    noise = rng.integers(-6, 7, size=(h, w, 1), dtype=np.int16)  # a little texture
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _position(appearance, t, piece_shape, size):
    """Top-left of the picture at time t: the given spot plus a slow sway."""
    drift = float(appearance.get("drift", 0) or 0)
    phase = zlib.crc32(str(appearance["image"]).encode()) % 628 / 100.0
    dx = drift * math.sin(2 * math.pi * t / 4.0 + phase)
    dy = 0.5 * drift * math.sin(2 * math.pi * t / 3.0 + phase)
    x = int(round(appearance["x"] + dx))
    y = int(round(appearance["y"] + dy))
    # keep the picture on screen
    x = min(max(x, 0), max(0, size[0] - piece_shape[1]))
    y = min(max(y, 0), max(0, size[1] - piece_shape[0]))
    return x, y


def make_video(path, appearances, *, size=(1280, 720), fps=15, duration_s=None,
               codec="h264", crf=23, background=None, seed=0, rotation=0, faststart=False):
    """Write a video of ``appearances`` (see the module docstring) to ``path``.

    The container follows the file name (.mp4, .mov, .avi, .mkv); ``codec`` is
    "h264" (libx264, default) or "mp4v" (MPEG-4 part 2). ``duration_s``
    defaults to one second past the last appearance. Answers metadata: size,
    fps, frame count, duration, and per appearance its label, time span and
    the face box (l, t, r, b, in video pixels) at its first visible frame.
    ``rotation`` (90, 180, 270) stores the frames turned and a display matrix
    saying how to turn them back, as phones record portrait video; ``size``
    and the face boxes are then as displayed. ``faststart`` puts the MP4
    index first (as web-optimised files have it), so a cut file still opens.
    """
    import av

    if codec not in _CODECS:
        raise ValueError(f"codec must be one of {sorted(_CODECS)}")
    w, h = int(size[0]), int(size[1])
    if w % 2 or h % 2:
        raise ValueError("width and height must be even for yuv420p")
    if duration_s is None:
        duration_s = max([a["end_s"] for a in appearances] + [0.0]) + 1.0
    frames = max(1, int(round(duration_s * fps)))
    base = background if background is not None else classroom_background((w, h), seed)
    prepared = [(a, *_prepare(a)) for a in appearances]
    meta = []
    for a, piece, face in prepared:
        x, y = _position(a, float(a["start_s"]), piece.shape, (w, h))
        meta.append({"label": a.get("label", pathlib.Path(a["image"]).parent.name),
                     "image": str(a["image"]), "start_s": float(a["start_s"]),
                     "end_s": float(a["end_s"]),
                     "face_box": [x + face[0], y + face[1], x + face[2], y + face[3]],
                     "picture_size": [piece.shape[1], piece.shape[0]]})

    codec_name, pix_fmt = _CODECS[codec]
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    turns = (int(rotation) // 90) % 4
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec_name, rate=Fraction(fps).limit_denominator(1001))
        stored = (h, w) if turns % 2 else (w, h)
        stream.width, stream.height, stream.pix_fmt = stored[0], stored[1], pix_fmt
        if turns:
            stream.set_display_rotation(90 * turns)
        if codec == "h264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            stream.bit_rate = 4_000_000
        for i in range(frames):
            t = i / float(fps)
            frame = base.copy()
            for a, piece, _face in prepared:
                if a["start_s"] <= t < a["end_s"]:
                    x, y = _position(a, t, piece.shape, (w, h))
                    ph = min(piece.shape[0], h - y)
                    pw = min(piece.shape[1], w - x)
                    frame[y:y + ph, x:x + pw] = piece[:ph, :pw]
            if turns:       # stored turned back; the display matrix turns it upright
                frame = np.ascontiguousarray(np.rot90(frame, k=-turns))
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {"path": str(path), "size": [w, h], "fps": fps, "frames": frames,
            "duration_s": frames / float(fps), "codec": codec, "appearances": meta}
