"""The vectorised box overlap agrees with iou() pair by pair."""
import random

from local.engine.boxes import iou, overlapping_pairs


def _box(rng):
    l, t = rng.uniform(0, 200), rng.uniform(0, 200)
    return (l, t, l + rng.uniform(0, 60), t + rng.uniform(0, 60))


def test_pairs_are_those_iou_puts_over_the_limit():
    rng = random.Random(7)
    for _ in range(200):
        boxes = [_box(rng) for _ in range(rng.randint(0, 12))]
        boxes += [tuple(v + rng.uniform(-3, 3) for v in b) for b in boxes[:3]]   # near-copies
        for above in (0.0, 0.3, 0.5):
            expected = [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
                        if iou(boxes[i], boxes[j]) > above]
            assert overlapping_pairs(boxes, above) == expected


def test_degenerate_boxes_overlap_nothing():
    assert overlapping_pairs([(5, 5, 5, 5), (5, 5, 5, 5)], 0.0) == []
    assert overlapping_pairs([(0, 0, 10, 10)], 0.0) == []
    assert overlapping_pairs([(0, 0, 10, 10), (0, 0, 10, 10)], 0.5) == [(0, 1)]


class _Track:
    def __init__(self, box, first_k):
        self.box, self.first_k, self.misses = box, first_k, 0


def _reference_end(active):
    """The rule as first written: youngest first, a track ends if a track still
    active, no younger, overlaps it over 0.5; answers the ended, in order."""
    active, ended = list(active), []
    for young in sorted(active, key=lambda t: -t.first_k):
        if any(old is not young and old.first_k <= young.first_k
               and iou(old.box, young.box) > 0.5 for old in active):
            active.remove(young)
            ended.append(young)
    return ended


def test_two_tracks_on_one_face_end_the_younger_as_the_rule_says():
    from local.engine import tracking, video
    rng = random.Random(11)
    for _ in range(300):
        tracks = [_Track(_box(rng), rng.randint(0, 5)) for _ in range(rng.randint(0, 10))]
        tracks += [_Track(tuple(v + rng.uniform(-4, 4) for v in t.box), rng.randint(0, 5))
                   for t in tracks[:4]]
        tracker = tracking.SegmentTracker(video.VideoSettings(workers=0))
        tracker.active = list(tracks)
        closed = []
        tracker._close = closed.append
        tracker._end_lost(k=10)
        expected = _reference_end(tracks)
        assert closed == expected
        assert tracker.active == [t for t in tracks if t not in expected]
