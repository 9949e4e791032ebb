"""Small clips in any container and codec PyAV writes (H.264, HEVC, VP9, MPEG-4...).

For tests about what was uploaded rather than who is in it: the picture is
a flat colour changing every frame. Faces: see :mod:`tests.support.video_maker`.
"""
import fractions
import os
import tempfile

import av
import numpy as np


def encode(container, codec, *, width=320, height=240, fps=15, seconds=2.0, tag=None,
           audio_only=False, faststart=False):
    """A small clip as bytes (through a file: faststart rewrites it)."""
    handle, path = tempfile.mkstemp()
    os.close(handle)
    try:
        _encode(path, container, codec, width, height, fps, seconds, tag, audio_only,
                faststart)
        with open(path, "rb") as clip:
            return clip.read()
    finally:
        os.unlink(path)


def _encode(out, container, codec, width, height, fps, seconds, tag, audio_only, faststart):
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(out, "w", format=container, options=options) as media:
        if audio_only:
            stream = media.add_stream("aac", rate=16000)
            stream.layout = "mono"
            samples = np.zeros((1, 1024), dtype=np.float32)
            for i in range(int(seconds * 16000 / 1024)):
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate = 16000
                frame.pts = i * 1024
                for packet in stream.encode(frame):
                    media.mux(packet)
            for packet in stream.encode(None):
                media.mux(packet)
            return
        stream = media.add_stream(codec, rate=fractions.Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if tag:
            stream.codec_tag = tag
        for i in range(int(seconds * fps)):
            picture = np.full((height, width, 3), (i * 7) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            frame.time_base = fractions.Fraction(1, fps)
            for packet in stream.encode(frame):
                media.mux(packet)
        for packet in stream.encode(None):
            media.mux(packet)
