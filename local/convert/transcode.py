"""Converting one recording to H.264 MP4 with PyAV (its wheel carries the codecs).

Decodes whatever FFmpeg reads (HEVC, VP9, AV1, MPEG-4 Part 2, ...), turns
portrait phone video upright by its display matrix (MediaConvert's
``Rotate: AUTO``), scales to the job's size and resamples to its frame rate
by duplicating or dropping frames, and encodes libx264 into an MP4 whose
index comes first. Memory stays flat: frames stream through one at a time.
"""
import fractions

import av
import numpy as np


def _upright(frame):
    """The frame as RGB pixels, turned by its rotation (degrees counter-clockwise)."""
    pixels = frame.to_ndarray(format="rgb24")
    turns = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def transcode(source, target, *, width, height, fps, crf=23, progress=None,
              should_stop=lambda: False):
    """``source`` -> H.264 MP4 ``target`` at ``width`` x ``height`` and ``fps``.

    ``progress(percent)`` is called now and then; ``should_stop()`` True ends
    the work early with RuntimeError. Raises av.error.FFmpegError for a file
    FFmpeg cannot read, ValueError for one with no video track.
    """
    with av.open(str(source)) as inp:
        if not inp.streams.video:
            raise ValueError("The file has no video track.")
        src = inp.streams.video[0]
        src.thread_type = "AUTO"
        duration = (float(src.duration * src.time_base) if src.duration
                    else (inp.duration or 0) / 1e6)
        with av.open(str(target), "w", format="mp4",
                     options={"movflags": "faststart"}) as out:
            stream = out.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            next_index = 0  # the output frame to fill next
            last = None     # the newest decoded frame: it fills slots until the next one
            reported = -1
            for frame in inp.decode(src):
                if frame.time is None:
                    continue
                if should_stop():
                    raise RuntimeError("stopped")
                if last is not None:
                    # Slots before this frame's time show the previous frame
                    # (duplicated when the source is slower, skipped when faster).
                    while next_index / fps < frame.time:
                        _encode(out, stream, last, next_index, width, height, fps)
                        next_index += 1
                last = frame
                if progress and duration:
                    percent = min(99, int(100 * frame.time / duration))
                    if percent != reported:
                        reported = percent
                        progress(percent)
            if last is None:
                raise ValueError("The video track holds no picture.")
            end = max(duration, last.time + 1.0 / fps)
            while next_index / fps < end - 1e-6:
                _encode(out, stream, last, next_index, width, height, fps)
                next_index += 1
            for packet in stream.encode(None):
                out.mux(packet)
    if progress:
        progress(100)
    return next_index


def _encode(out, stream, frame, index, width, height, fps):
    picture = av.VideoFrame.from_ndarray(_upright(frame), format="rgb24")
    picture = picture.reformat(width=width, height=height, format="yuv420p")
    picture.pts = index
    picture.time_base = 1 / fractions.Fraction(fps)
    for packet in stream.encode(picture):
        out.mux(packet)
