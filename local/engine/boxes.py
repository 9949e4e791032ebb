"""Face boxes as (left, top, right, bottom) tuples in pixels."""
import numpy as np


def iou(a, b):
    """Intersection over union of two boxes: 0 apart, 1 the same box."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(a, b):
    """:func:`iou` of every box of ``a`` with every box of ``b`` (len(a) x len(b))."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
                 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
                 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def overlapping_pairs(boxes, above):
    """Index pairs (i, j), i < j, of boxes whose IoU is over ``above``.

    One vectorised pass instead of len(boxes)**2 calls of :func:`iou`; the
    pairs are few (two tracks on one face), the boxes many."""
    if len(boxes) < 2:
        return []
    i, j = np.nonzero(np.triu(iou_matrix(boxes, boxes) > above, k=1))
    return list(zip(i.tolist(), j.tolist()))
