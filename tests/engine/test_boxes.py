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
