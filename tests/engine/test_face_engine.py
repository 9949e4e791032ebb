"""The face engine itself (local/engine/face_engine.py, video.py, tracking.py)
on the real photos in ../shared/faces: calibration, orientation, small faces,
tracking and containers. The HTTP side is in test_rekognition_endpoint.py."""
import io
import itertools
import pathlib

import numpy as np
import pytest
from PIL import Image

from local.engine import face_engine, video
from tests.support.face_set import photo
from tests.support.video_maker import make_video

pytestmark = pytest.mark.engine

PEOPLE_WITH_3 = ["barack_obama", "joe_biden", "alex_lacamoire", "kit_harington",
                 "rose_leslie", "john_salley", "john_savage", "john_schneider",
                 "john_shimkus", "john_simm"]


def describe_file(path, max_pixels=face_engine.MAX_DETECT_PIXELS):
    faces = face_engine.find_faces(face_engine.decode_image(pathlib.Path(path).read_bytes()),
                                   max_pixels=max_pixels)
    assert faces, f"no face found in {path}"
    return faces[0]


@pytest.mark.slow
def test_similarity_calibration_on_every_pair_of_photos(faces_dir):
    """Same person >= 80 and different people < 80 over all 2415 pairs of the 70 photos.

    Detection runs at 0.5 MP here (every face in these photos is over 70 px
    at that scale) to keep the test quick; landmarks and descriptors use the
    full-resolution pixels, as the endpoint does."""
    rows = []
    for path in sorted((faces_dir / "people").glob("*/*.jpg")):
        rows.append((path.parent.name, path.name,
                     describe_file(path, max_pixels=500_000).descriptor))
    assert len(rows) >= 60
    same, different = [], []
    for (who_a, name_a, a), (who_b, name_b, b) in itertools.combinations(rows, 2):
        score = face_engine.similarity(float(np.linalg.norm(a - b)))
        (same if who_a == who_b else different).append((score, f"{who_a}/{name_a}",
                                                         f"{who_b}/{name_b}"))
    worst_same, best_different = min(same), max(different)
    print(f"\nsame person: {len(same)} pairs, lowest similarity {worst_same[0]:.2f} "
          f"({worst_same[1]} vs {worst_same[2]}); different people: {len(different)} pairs, "
          f"highest {best_different[0]:.2f} ({best_different[1]} vs {best_different[2]})")
    assert worst_same[0] >= 80, worst_same
    assert best_different[0] < 80, best_different
    # the mapping itself: 100 for identical, 80 at the calibrated distance
    assert face_engine.similarity(0.0) == 100.0
    assert face_engine.similarity(face_engine.MATCH_DISTANCE) == pytest.approx(80.0)
    assert face_engine.distance_for(80.0) == pytest.approx(face_engine.MATCH_DISTANCE)


def _with_exif_orientation(path, orientation):
    """The photo's pixels turned so that EXIF ``orientation`` turns them upright."""
    img = Image.open(path).convert("RGB")
    turned = {6: img.transpose(Image.Transpose.ROTATE_90),       # 6: view needs 90 cw
              8: img.transpose(Image.Transpose.ROTATE_270)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    turned.save(out, format="JPEG", exif=exif, quality=92)
    return out.getvalue(), turned


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_honoured(faces_dir, orientation):
    original = describe_file(photo(faces_dir, "barack_obama", 2))
    data, turned = _with_exif_orientation(photo(faces_dir, "barack_obama", 2), orientation)
    # without EXIF the sideways face is not found at all...
    assert face_engine.find_faces(np.asarray(turned), describe=False) == []
    # ...with it, the picture is turned upright first and is the same face
    rgb = face_engine.decode_image(data)
    assert rgb.shape[:2] == original_shape(faces_dir)
    faces = face_engine.find_faces(rgb)
    assert len(faces) == 1
    assert face_engine.similarity(np.linalg.norm(faces[0].descriptor - original.descriptor)) > 95


def original_shape(faces_dir):
    with Image.open(photo(faces_dir, "barack_obama", 2)) as img:
        return (img.height, img.width)


def test_not_an_image_is_refused():
    with pytest.raises(face_engine.ImageFormatError):
        face_engine.decode_image(b"GIF89a this is not a face")
    with pytest.raises(face_engine.ImageFormatError):
        face_engine.decode_image(b"\xff\xd8\xff\xe0 truncated jpeg")


def test_rgba_png_is_read_on_white(faces_dir):
    path = faces_dir / "variants" / "barack_obama" / "obama2_rgba_32bit.png"
    rgb = face_engine.decode_image(path.read_bytes())
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    assert len(face_engine.find_faces(rgb, describe=False)) == 1


def test_small_faces_in_a_classroom_frame_are_found(faces_dir, tmp_path):
    """40-80 px faces in a 1280x720 frame: the sizes of a back row."""
    heights = [40, 48, 56, 64, 72, 80]
    people = ["john_simm", "john_salley", "john_savage", "john_schneider", "john_shimkus",
              "kit_harington"]
    appearances = [dict(image=photo(faces_dir, who, 1), start_s=0, end_s=1,
                        x=80 + i * 200, y=300, height=h)
                   for i, (who, h) in enumerate(zip(people, heights))]
    meta = make_video(tmp_path / "row.mp4", appearances, duration_s=0.2, fps=5)
    _, _, rgb = next(video.sampled_frames(tmp_path / "row.mp4", 1.0))
    found = face_engine.detect(face_engine.to_gray(rgb), 1)
    for appearance in meta["appearances"]:
        l, t, r, b = appearance["face_box"]
        cx, cy = (l + r) / 2, (t + b) / 2
        assert any(d.box[0] <= cx <= d.box[2] and d.box[1] <= cy <= d.box[3] for d in found), \
            appearance


def _video_tracks(path, **settings):
    settings.setdefault("workers", 0)
    info, tracks = video.analyse(path, video.VideoSettings(**settings))
    return info, tracks


def _match(track, references):
    """The reference identity closest to the track's descriptors, and its similarity."""
    best = None
    for who, ref in references.items():
        score = max(face_engine.similarity(float(np.linalg.norm(np.asarray(d) - ref)))
                    for d in track["descriptors"])
        if best is None or score > best[1]:
            best = (who, score)
    return best


@pytest.mark.slow
def test_tracks_cross_a_segment_cut_as_one_appearance(faces_dir, tmp_path):
    """Two workers, one cut at ~3 s: someone seen across it keeps one track."""
    path = tmp_path / "cut.mp4"
    make_video(path, [
        dict(image=photo(faces_dir, "barack_obama", 2), start_s=0.4, end_s=5.6,
             x=200, y=150, height=90, drift=6),
        dict(image=photo(faces_dir, "john_simm", 2), start_s=2.2, end_s=4.2,
             x=800, y=300, height=60),
    ], size=(960, 540), duration_s=6.0, fps=10)
    settings = video.VideoSettings(workers=2, min_segment_s=2.5)
    info = video.probe(path)
    assert len(video.plan_segments(info, settings)) == 2
    _, tracks = video.analyse(path, settings)
    refs = {"barack_obama": describe_file(photo(faces_dir, "barack_obama", 1)).descriptor,
            "john_simm": describe_file(photo(faces_dir, "john_simm", 1)).descriptor}
    by_person = {}
    for track in tracks:
        who, score = _match(track, refs)
        assert score >= 80, (who, score)
        by_person.setdefault(who, []).append(track)
    assert sorted(by_person) == ["barack_obama", "john_simm"]
    assert len(by_person["barack_obama"]) == 1, "one appearance split in two at the cut"
    obama = by_person["barack_obama"][0]
    assert 400 <= obama["first_ms"] <= 900 and 5100 <= obama["last_ms"] <= 5600
    # each side of the cut describes half, so the whole track is described 2 times
    assert len(obama["descriptors"]) == 2
    simm = by_person["john_simm"][0]
    assert 2200 <= simm["first_ms"] <= 2700 and 3700 <= simm["last_ms"] <= 4200


@pytest.mark.parametrize("suffix,codec", [(".avi", "h264"), (".mov", "h264"),
                                          (".mp4", "mp4v")])
def test_containers_and_codecs(faces_dir, tmp_path, suffix, codec):
    path = tmp_path / f"clip{suffix}"
    make_video(path, [dict(image=photo(faces_dir, "rose_leslie", 1), start_s=0, end_s=2,
                           x=100, y=60, height=80)],
               size=(480, 270), duration_s=2.0, fps=10, codec=codec)
    info, tracks = _video_tracks(path)
    assert info.width == 480 and info.height == 270
    assert len(tracks) == 1
    ref = describe_file(photo(faces_dir, "rose_leslie", 2)).descriptor
    assert _match(tracks[0], {"rose": ref})[1] >= 80


def test_truncated_and_non_video_files_fail_with_a_reason(faces_dir, tmp_path):
    path = tmp_path / "whole.mp4"
    make_video(path, [dict(image=photo(faces_dir, "rose_leslie", 1), start_s=0, end_s=3,
                           x=100, y=60, height=80)], size=(320, 180), duration_s=3, fps=10)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])            # index at the end: gone
    with pytest.raises(video.VideoError, match="Unsupported codec/format"):
        video.analyse(cut, video.VideoSettings(workers=0))
    web = tmp_path / "web.mp4"                         # index first: opens, frames stop
    make_video(web, [dict(image=photo(faces_dir, "rose_leslie", 1), start_s=0, end_s=6,
                          x=100, y=60, height=80)], size=(320, 180), duration_s=6, fps=10,
               faststart=True)
    data = web.read_bytes()
    web.write_bytes(data[: len(data) // 3])
    with pytest.raises(video.VideoError, match="truncated|corrupt"):
        video.analyse(web, video.VideoSettings(workers=0))
    text = tmp_path / "notes.mp4"
    text.write_bytes(b"these are lesson notes, not a video\n" * 50)
    with pytest.raises(video.VideoError, match="Unsupported codec/format"):
        video.analyse(text, video.VideoSettings(workers=0))


def test_each_track_is_described_a_few_times_not_every_frame(faces_dir, tmp_path):
    path = tmp_path / "long.mp4"
    make_video(path, [dict(image=photo(faces_dir, "kit_harington", 2), start_s=0, end_s=8,
                           x=100, y=60, height=100, drift=8)],
               size=(640, 360), duration_s=8, fps=10)
    _, tracks = _video_tracks(path, sample_fps=2.0)
    assert len(tracks) == 1
    assert len(tracks[0]["entries"]) >= 15            # seen in (nearly) every sample
    assert 1 <= len(tracks[0]["descriptors"]) <= 3    # described on a few frames only


def test_a_later_segment_reuses_what_finished_segments_described(faces_dir, tmp_path,
                                                                  monkeypatch):
    """Someone who sits still through two segments analysed one after the
    other is described in the first only: the second gets its described faces."""
    path = tmp_path / "still.mp4"
    make_video(path, [dict(image=photo(faces_dir, "kit_harington", 2), start_s=0, end_s=8,
                           x=100, y=60, height=100, drift=2)],
               size=(640, 360), duration_s=8, fps=10)
    settings = video.VideoSettings(workers=0, sample_fps=2.0)
    first, described = video._analyse_segment(str(path), vars(settings), 0, 8, True)
    assert described and first[0]["descriptors"]
    calls = []
    real = face_engine.describe_chips
    monkeypatch.setattr(face_engine, "describe_chips",
                        lambda chips: calls.append(len(chips)) or real(chips))
    second, _ = video._analyse_segment(str(path), vars(settings), 8, 16, False,
                                       known=described)
    assert len(second) == 1 and second[0]["descriptors"]
    assert calls == []                                 # nothing described again
    assert np.allclose(second[0]["descriptors"][0], first[0]["descriptors"][0])
    alone, _ = video._analyse_segment(str(path), vars(settings), 8, 16, False)
    assert calls                                        # without them it is described


def test_portrait_phone_video_is_turned_upright(faces_dir, tmp_path):
    """Stored sideways with a display matrix (as phones do): faces still found."""
    path = tmp_path / "phone.mp4"
    meta = make_video(path, [dict(image=photo(faces_dir, "joe_biden", 2), start_s=0, end_s=2,
                                  x=60, y=200, height=110)],
                      size=(360, 640), duration_s=2.0, fps=10, rotation=90)
    import av
    with av.open(str(path)) as container:                      # stored sideways
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
    info, tracks = _video_tracks(path)
    assert (info.width, info.height) == (360, 640)
    assert len(tracks) == 1
    box = tracks[0]["entries"][0][1]
    truth = meta["appearances"][0]["face_box"]                  # as displayed
    assert all(abs(a - b) <= 20 for a, b in zip(box, truth)), (box, truth)
    ref = describe_file(photo(faces_dir, "joe_biden", 3)).descriptor
    assert _match(tracks[0], {"biden": ref})[1] >= 80


@pytest.mark.slow
def test_a_killed_worker_does_not_break_later_videos(faces_dir, tmp_path):
    """A worker that dies mid-job is replaced; the next analysis still works."""
    import os
    import signal
    path = tmp_path / "clip.mp4"
    make_video(path, [dict(image=photo(faces_dir, "rose_leslie", 1), start_s=0, end_s=2,
                           x=100, y=60, height=80)], size=(480, 270), duration_s=2.0, fps=10)
    pool = video.worker_pool(2)
    for pid in list(pool._processes):
        os.kill(pid, signal.SIGKILL)
    info, tracks = video.analyse(path, video.VideoSettings(workers=2))
    assert len(tracks) == 1


def test_video_settings_from_the_environment():
    settings = video.VideoSettings.from_env({"ROLLCALL_FACE_SAMPLE_FPS": "4",
                                             "ROLLCALL_FACE_WORKERS": "1"})
    assert (settings.sample_fps, settings.workers) == (4.0, 1)
    assert video.VideoSettings.from_env({"ROLLCALL_FACE_WORKERS": "1"}, workers=3).workers == 3
    with pytest.raises(ValueError, match="ROLLCALL_FACE_SAMPLE_FPS"):
        video.VideoSettings.from_env({"ROLLCALL_FACE_SAMPLE_FPS": "fast"})
    with pytest.raises(ValueError, match="sample_fps"):
        video.VideoSettings(sample_fps=0)


# -- segment cuts at keyframes ------------------------------------------------------

def _gop_video(path, seconds=10, fps=15, keyint=30):
    """A small H.264 video with a keyframe exactly every ``keyint`` frames."""
    import av
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"}
        for i in range(seconds * fps):
            img = np.full((96, 160, 3), (i * 3) % 255, np.uint8)
            img[:, (i * 2) % 160] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_keyframes_near_finds_the_nearest_keyframe_within_reach(tmp_path):
    path = tmp_path / "gop.mp4"
    _gop_video(path)                                  # keyframes at 0, 2, 4, 6, 8 s
    near = video.keyframes_near(path, [3.9, 5.0, 6.3, 7.2], 0.5)
    assert near == pytest.approx([4.0, 5.0, 6.0, 7.2], abs=1e-6)
    # a file that cannot be read keeps the cuts (decoding reports the error)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert video.keyframes_near(bad, [3.9], 0.5) == [3.9]


def test_cuts_move_to_keyframes_only_when_segments_outnumber_workers():
    info = video.VideoInfo(duration_s=600.0, fps=15.0, width=1280, height=720, codec="h264",
                           format="QuickTime / MOV", color_range="LIMITED")
    asked = []

    def snap(times, reach_s):
        asked.append((list(times), reach_s))
        return [t - 7.3 for t in times]

    settings = video.VideoSettings(workers=2, max_segment_s=120.0)
    plain = video.plan_segments(info, settings)
    moved = video.plan_segments(info, settings, snap=snap)
    assert len(plain) == len(moved) == 5
    assert asked and asked[0][1] == pytest.approx(0.2 * 1201 / 5 / 2.0)
    # each cut at the first sample from its keyframe (t - 7.3 s: 14.6 samples back)
    assert [a for a, _ in moved[1:]] == [int(np.ceil(a - 14.6)) for a, _ in plain[1:]]
    assert moved[0][0] == 0 and moved[-1][1] == plain[-1][1]
    assert all(a < b for a, b in moved) and all(
        moved[i][1] == moved[i + 1][0] for i in range(len(moved) - 1))
    # one segment per worker, all at once: equal lengths, no snapping
    asked.clear()
    short = video.VideoInfo(**{**info.__dict__, "duration_s": 60.0})
    assert video.plan_segments(short, settings, snap=snap) == video.plan_segments(short, settings)
    assert asked == []
    # a keyframe beyond a neighbouring cut is not taken
    far = video.plan_segments(info, settings, snap=lambda times, reach_s: [t + 500 for t in times])
    assert far == plain


def test_a_seek_to_a_keyframes_time_lands_on_it_in_quicktimes_time_base(tmp_path):
    """1/600 s ticks: 3.0 s is 1799.9999... ticks, which chopped to 1799 sent
    the seek to the keyframe a second earlier."""
    import av
    path = tmp_path / "qt.mp4"
    with av.open(str(path), mode="w", options={"video_track_timescale": "600"}) as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"x264-params": "keyint=15:min-keyint=15:scenecut=0:bframes=0"}
        for i in range(150):
            img = np.full((96, 160, 3), (i * 3) % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base.denominator == 600
        origin = (container.start_time or 0) / 1_000_000.0
        for second in range(1, 10):
            video.seek_to_keyframe_before(container, stream, second + origin)
            first = next(p for p in container.demux(stream) if p.pts is not None)
            assert float(first.pts * stream.time_base) - origin == pytest.approx(second)
