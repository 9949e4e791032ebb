"""Reading a recording's container headers: codec, size, frame rate, duration.

Clips are encoded here with PyAV (the same containers and codecs phones and
screen recorders produce), then :func:`chalicelib.media.probe` reads them
through a ranged reader, as it reads S3 objects in Lambda.
"""
import numpy as np
import pytest

from chalicelib.media import MediaProblem, probe
from tests.support.clips import encode


def probe_bytes(data):
    reads = []

    def read(offset, length):
        reads.append((offset, length))
        return data[offset:offset + length]

    return probe(read, len(data)), reads


@pytest.mark.parametrize("container,codec,tag,expected", [
    ("mp4", "libx264", None, ("mp4", "h264")),
    ("mov", "libx264", None, ("mov", "h264")),
    ("mov", "libx265", "hvc1", ("mov", "hevc")),
    ("mov", "libx265", "hev1", ("mov", "hevc")),
    ("webm", "libvpx-vp9", None, ("webm", "vp9")),
    ("avi", "mpeg4", None, ("avi", "mpeg4")),
    ("avi", "libx264", None, ("avi", "h264")),
    ("matroska", "libx264", None, ("mkv", "h264")),
])
def test_probe_reads_container_codec_size_rate_and_duration(container, codec, tag, expected):
    info, _ = probe_bytes(encode(container, codec, tag=tag, width=320, height=240, fps=15,
                                 seconds=2.0))
    assert (info.container, info.codec) == expected
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(15, rel=0.05)
    assert info.duration_s == pytest.approx(2.0, abs=0.2)


def test_only_h264_in_mp4_or_mov_goes_straight_to_the_face_search():
    ready = {(c, k): probe_bytes(encode(c, k))[0].face_search_ready()
             for c, k in [("mp4", "libx264"), ("mov", "libx264"), ("mov", "libx265"),
                          ("avi", "libx264"), ("webm", "libvpx-vp9")]}
    assert ready == {("mp4", "libx264"): True, ("mov", "libx264"): True,
                     ("mov", "libx265"): False, ("avi", "libx264"): False,
                     ("webm", "libvpx-vp9"): False}


def test_index_at_the_end_is_found_with_a_few_small_reads():
    """moov after mdat (the usual phone layout): read by seeking, not the whole file."""
    data = encode("mp4", "libx264", seconds=4, width=640, height=360)
    moov = data.find(b"moov")
    assert moov > data.find(b"mdat") > 0  # the layout this test is about
    info, reads = probe_bytes(data)
    assert info.codec == "h264" and (info.width, info.height) == (640, 360)
    assert sum(length for offset, length in reads if offset < moov - 8) < 200


def test_no_video_track_is_a_file_problem():
    with pytest.raises(MediaProblem, match="no video track"):
        probe_bytes(encode("mp4", None, audio_only=True))


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_file_is_a_file_problem(cut):
    data = encode("mp4", "libx264", seconds=3)
    with pytest.raises(MediaProblem, match="cut off|damaged"):
        probe_bytes(data[:int(len(data) * cut)])


def test_random_bytes_behind_an_mp4_header_are_a_file_problem():
    data = encode("mp4", "libx264", faststart=True)
    ftyp_end = int.from_bytes(data[:4], "big")
    noise = np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    with pytest.raises(MediaProblem):
        probe_bytes(data[:ftyp_end] + noise)


def test_not_a_video_at_all():
    with pytest.raises(MediaProblem, match="not a video"):
        probe_bytes(b"%PDF-1.7\n" + b"x" * 100)


def test_longer_than_six_hours_is_refused_with_a_sentence():
    data = bytearray(encode("mp4", "libx264", faststart=True))
    # Rewrite the video track's media duration (mdhd, version 0) to 7 hours.
    at = data.find(b"mdhd")
    timescale = int.from_bytes(data[at + 16:at + 20], "big")
    data[at + 20:at + 24] = (7 * 3600 * timescale).to_bytes(4, "big")
    with pytest.raises(MediaProblem, match="7.0 hours.*at most 6 hours"):
        probe_bytes(bytes(data))


def test_as_dict_names_the_codec_for_people():
    info, _ = probe_bytes(encode("mov", "libx265", tag="hvc1"))
    assert info.as_dict()["codec_name"] == "HEVC (H.265)"
