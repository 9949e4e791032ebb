"""How a segment tracker turns MTCNN's proposals into faces: dlib confirms each
once, a place it rejected is not looked at again while it looks the same, and a
face that changed is checked with MTCNN, not dlib."""
import cv2
import numpy as np
import pytest

from local.engine import face_engine, mtcnn, tracking, video


@pytest.fixture
def tracker():
    return tracking.SegmentTracker(video.VideoSettings(workers=0))


@pytest.fixture
def hog_looks(monkeypatch):
    """Every dlib region search, recorded; each finds what ``found`` says."""
    calls, found = [], []

    def detect_in_region(gray, box, target_face=90, margin=0.6, adjust_threshold=0.0):
        calls.append((tuple(box), target_face))
        return list(found)

    monkeypatch.setattr(face_engine, "detect_in_region", detect_in_region)
    return calls, found


def _textured(seed, shape=(120, 160)):
    """Smooth random shapes (as a picture is: a pixel's shift changes little)."""
    noise = np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 4).astype(np.float32)
    smooth = (smooth - smooth.min()) / max(1e-6, float(smooth.max() - smooth.min()))
    return (smooth * 255).astype(np.uint8)


def test_a_rejected_place_is_not_searched_again_until_it_changes(tracker, hog_looks):
    calls, _ = hog_looks
    gray = _textured(1)
    box = (40.0, 30.0, 70.0, 60.0)
    assert tracker._confirmed(gray, [box]) == []
    assert len(calls) == len(tracking._CONFIRM_SIZES)       # every size tried once
    # the same pixels proposed again, the box a few px off: no second search
    assert tracker._confirmed(gray, [(42.0, 32.0, 72.0, 62.0)]) == []
    assert len(calls) == len(tracking._CONFIRM_SIZES)
    # the same place, brighter overall (the room's light): still the same look
    brighter = np.clip(gray.astype(int) * 1.2 + 10, 0, 255).astype(np.uint8)
    tracker._confirmed(brighter, [box])
    assert len(calls) == len(tracking._CONFIRM_SIZES)
    # something else there now (someone looked up): searched again
    changed = gray.copy()
    changed[30:60, 40:70] = _textured(2, (30, 30))
    tracker._confirmed(changed, [box])
    assert len(calls) == 2 * len(tracking._CONFIRM_SIZES)


def test_a_whole_frame_scan_forgets_the_rejections(tracker, hog_looks, monkeypatch):
    calls, _ = hog_looks
    rgb = np.dstack([_textured(3)] * 3)
    gray = rgb[:, :, 0].copy()
    box = (40.0, 30.0, 70.0, 60.0)
    tracker._confirmed(gray, [box])
    searched = len(calls)
    mtcnn_box = (40.0, 27.0, 70.0, 57.0)     # becomes about ``box`` as dlib draws it
    monkeypatch.setattr(mtcnn, "propose", lambda *a, **k: np.array([[*mtcnn_box, 0.99]]))
    tracker._scan_detections(0, rgb, gray)          # the first scan is whole-frame
    assert len(calls) == 2 * searched


def test_one_face_proposed_twice_is_searched_once(tracker, hog_looks):
    calls, found = hog_looks
    found.append(face_engine.Detection((41.0, 31.0, 70.0, 60.0), 0.5))
    out = tracker._confirmed(_textured(4), [(40.0, 30.0, 70.0, 60.0), (42.0, 31.0, 71.0, 61.0)])
    assert len(out) == 1 and len(calls) == 1


def test_a_proposal_counts_only_where_dlib_finds_the_face(tracker, hog_looks):
    calls, found = hog_looks
    found.append(face_engine.Detection((100.0, 80.0, 130.0, 110.0), 1.0))    # elsewhere
    assert tracker._confirmed(_textured(5), [(40.0, 30.0, 70.0, 60.0)]) == []
    found[:] = [face_engine.Detection((42.0, 33.0, 70.0, 61.0), -0.2)]         # weak, there
    out = tracker._confirmed(_textured(6), [(40.0, 30.0, 70.0, 60.0)])
    assert [d.box for d in out] == [(42.0, 33.0, 70.0, 61.0)]


def test_a_changed_face_is_checked_with_mtcnn_not_dlib(tracker, hog_looks, monkeypatch):
    calls, _ = hog_looks
    rgb = np.dstack([_textured(7)] * 3)
    gray = rgb[:, :, 0].copy()
    track = tracking.Track(face_engine.Detection((40.0, 30.0, 70.0, 60.0), 1.0), 0, 0)
    tracker._set_template(track, gray)
    other = np.full_like(rgb, 90)                    # nothing like the face's template
    # MTCNN finds it a few px lower: followed there, no dlib search
    monkeypatch.setattr(mtcnn, "find_near",
                        lambda rgb, box, margin=0.6: np.array([40.0, 30.0, 70.0, 60.0, 0.95]))
    tracker._follow_or_verify(track, 1, 500, other, other[:, :, 0].copy())
    assert calls == [] and track.misses == 0 and track.last_k == 1
    assert track.box == mtcnn.dlib_box((40.0, 30.0, 70.0, 60.0))
    # MTCNN finds nothing: a miss, still no dlib search
    monkeypatch.setattr(mtcnn, "find_near", lambda rgb, box, margin=0.6: None)
    tracker._set_template(track, gray)
    tracker._follow_or_verify(track, 2, 1000, other, other[:, :, 0].copy())
    assert calls == [] and track.misses == 1
    # a face found far off, or of another size, is not this one
    monkeypatch.setattr(mtcnn, "find_near",
                        lambda rgb, box, margin=0.6: np.array([100.0, 80.0, 160.0, 140.0, 0.99]))
    tracker._follow_or_verify(track, 3, 1500, other, other[:, :, 0].copy())
    assert calls == [] and track.misses == 2


def test_a_whole_frame_scan_verifies_known_faces_with_dlib(tracker, hog_looks, monkeypatch):
    """dlib's look at every known face (a fresh box, a chip candidate) is what a
    whole-frame scan is for; MTCNN's proposals of known faces are not searched."""
    calls, found = hog_looks
    rgb = np.dstack([_textured(9)] * 3)
    gray = rgb[:, :, 0].copy()
    track = tracking.Track(face_engine.Detection((40.0, 30.0, 70.0, 60.0), 1.0), 0, 0)
    tracker._set_template(track, gray)
    tracker.active.append(track)
    monkeypatch.setattr(mtcnn, "propose", lambda *a, **k: np.array([[40.0, 27.0, 70.0, 57.0, 0.99]]))
    found.append(face_engine.Detection((40.0, 31.0, 70.0, 61.0), 0.8))
    tracker._scan(0, 0, rgb, gray)
    assert len(calls) == 1 and calls[0][0] == (40.0, 30.0, 70.0, 60.0)
    assert track.box == (40.0, 31.0, 70.0, 61.0)


def test_a_regional_scan_proposes_in_the_region_and_answers_in_the_frame(
        tracker, hog_looks, monkeypatch):
    """Proposals come back in the region's pixels: the tracker moves them (and
    the known faces it hands MTCNN) between the region's and the frame's."""
    calls, _ = hog_looks
    rgb = np.dstack([_textured(11, (240, 320))] * 3)
    gray = rgb[:, :, 0].copy()
    known = tracking.Track(face_engine.Detection((200.0, 150.0, 230.0, 180.0), 1.0), 0, 0)
    tracker.active.append(known)
    tracker._scan_small, tracker._full_k = np.zeros((60, 80), np.uint8), 0
    region = (120, 100, 260, 200)
    monkeypatch.setattr(tracker, "_changed_regions", lambda *a: [region])
    seen = []

    def propose(crop, min_face_px, known=()):
        seen.append((crop.shape, [tuple(k) for k in known]))
        return np.array([[10.0, 20.0, 40.0, 50.0, 0.99]])

    monkeypatch.setattr(mtcnn, "propose", propose)
    _, full = tracker._scan_detections(4, rgb, gray)
    assert not full
    assert seen == [((100, 140, 3), [(80.0, 50.0, 110.0, 80.0)])]
    expected = mtcnn.dlib_box((130.0, 120.0, 160.0, 150.0))
    assert calls and all(box == expected for box, _ in calls)


def test_a_new_face_is_traced_back_with_mtcnn(tracker, hog_looks, monkeypatch):
    calls, _ = hog_looks
    rgb = np.dstack([_textured(12)] * 3)
    gray = rgb[:, :, 0].copy()
    flat = np.full_like(rgb, 90)                     # the template matches nothing here
    for k in (1, 2, 3):
        tracker.history.append((k, k * 500, flat, flat[:, :, 0].copy()))
    track = tracking.Track(face_engine.Detection((40.0, 30.0, 70.0, 60.0), 1.0), 4, 2000)
    track.see(4, 2000, (40.0, 30.0, 70.0, 60.0))
    tracker._set_template(track, gray)
    answers = [np.array([41.0, 28.0, 71.0, 58.0, 0.9]), np.array([42.0, 28.0, 72.0, 58.0, 0.9]),
               None]
    monkeypatch.setattr(mtcnn, "find_near", lambda rgb, box, margin=0.6: answers.pop(0))
    tracker._trace_back(track)
    # samples 3 and 2 found by MTCNN, 1 not (the face was not there yet)
    assert [e[0] for e in track.entries] == [1000, 1500, 2000]
    assert track.first_k == 2 and calls == []
    assert track.entries[0][1] == tuple(float(round(v, 1)) for v in
                                        mtcnn.dlib_box((42.0, 28.0, 72.0, 58.0)))
