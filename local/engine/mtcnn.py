"""Where small faces may be: MTCNN's proposal and refinement networks.

dlib's HOG finds faces from about 72 px (its window is 80 px), so finding a
24 px face takes the frame enlarged 3 times (9 times the pixels, then a
pyramid of them). MTCNN's first network, P-Net, is fully convolutional over
12 px windows: the same face is found on the frame *halved*, a 36th of the
pixels, by three small convolutions. Its
candidates go through R-Net (a 24 px look at each), which drops most that
are not faces and tightens the boxes.

These are proposals, not answers. A new face counts only once dlib's HOG
finds it in the proposal's region, enlarged so the face is the HOG's
comfortable size (``tracking.py``), and faces are aligned and described from
dlib's detections only: what is matched, and the calibration, are dlib's as
before. MTCNN alone (:func:`find_near`) only follows a face already found,
through frames where its template no longer matches.

Weights: Zhang et al.'s trained networks (2016, released with their Caffe
models under the MIT licence), as converted and shipped in the ``mtcnn``
wheel (MIT licence, Iván de Paz Centeno: ``mtcnn/assets/weights/*.lz4``,
joblib files of Keras weights). Only those files are read; the package's
code needs TensorFlow and is never imported. OpenCV's dnn runs the networks
from an ONNX graph written here (:mod:`local.engine.onnx_graph`).

Input conventions are the package's: RGB, (value - 127.5) / 128, rows then
columns (Keras' NHWC; its dense layers read their input columns first).
"""
import importlib.util
import pathlib
import threading

import cv2
import numpy as np

from local.engine.boxes import iou_matrix
from local.engine.resnet import ModelFormatError

PNET_CELL = 12              # P-Net's window (px of the scaled image) ...
PNET_STRIDE = 2             # ... and the step between windows
RNET_PX = 24                # R-Net's input
PYRAMID_FACTOR = 0.709      # between P-Net's scales (half the area per step)
PNET_THRESHOLD = 0.6        # the package's defaults: P-Net keeps many, ...
RNET_THRESHOLD = 0.7        # ... R-Net fewer; HOG then confirms
_NMS_SCALE, _NMS_ALL, _NMS_RNET = 0.5, 0.7, 0.7

# name -> (shape of each weight array), in the file's order
_SHAPES = {
    "pnet": [(3, 3, 3, 10), (10,), (1, 1, 10), (3, 3, 10, 16), (16,), (1, 1, 16),
             (3, 3, 16, 32), (32,), (1, 1, 32), (1, 1, 32, 4), (4,), (1, 1, 32, 2), (2,)],
    "rnet": [(3, 3, 3, 28), (28,), (1, 1, 28), (3, 3, 28, 48), (48,), (1, 1, 48),
             (2, 2, 48, 64), (64,), (1, 1, 64), (576, 128), (128,), (128,),
             (128, 4), (4,), (128, 2), (2,)],
}


def weights_path(name):
    """The weights file ``name`` (pnet, rnet) in the installed ``mtcnn`` package."""
    spec = importlib.util.find_spec("mtcnn")       # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelFormatError("the mtcnn package (its weight files) is not installed: "
                               "pip install -r requirements-dev.txt")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights" / f"{name}.lz4"


def load_weights(name, path=None):
    """The arrays of network ``name``, checked against the shapes this module runs."""
    import joblib
    path = pathlib.Path(path) if path is not None else weights_path(name)
    try:
        arrays = joblib.load(path)
    except Exception as exc:        # a cut or foreign file: joblib/pickle/lz4 say why
        raise ModelFormatError(f"{path} is not MTCNN's {name} weights "
                               f"({exc.__class__.__name__}: {exc})") from exc
    shapes = _SHAPES[name]
    if (not isinstance(arrays, (list, tuple)) or len(arrays) != len(shapes)
            or any(not isinstance(a, np.ndarray) or a.shape != s for a, s in zip(arrays, shapes))):
        raise ModelFormatError(f"{path} does not hold the {name} layers this engine runs")
    arrays = [np.asarray(a, np.float32) for a in arrays]
    if not all(np.isfinite(a).all() for a in arrays):
        raise ModelFormatError(f"{path} holds values that are not numbers")
    return arrays


def _kernel(w):
    """Keras (rows, cols, in, out) -> ONNX (out, in, rows, cols)."""
    return w.transpose(3, 2, 0, 1)


def pnet_graph(w):
    from local.engine import onnx_graph as g
    weights = {"w1": _kernel(w[0]), "b1": w[1], "a1": w[2].reshape(-1, 1, 1),
               "w2": _kernel(w[3]), "b2": w[4], "a2": w[5].reshape(-1, 1, 1),
               "w3": _kernel(w[6]), "b3": w[7], "a3": w[8].reshape(-1, 1, 1),
               "wr": _kernel(w[9]), "br": w[10], "wc": _kernel(w[11]), "bc": w[12]}
    nodes = [g.node("Conv", ["image", "w1", "b1"], ["c1"], kernel_shape=[3, 3]),
             g.node("PRelu", ["c1", "a1"], ["p1"]),
             # Keras "same" pooling pads the end: ONNX's ceil mode
             g.node("MaxPool", ["p1"], ["m1"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
             g.node("Conv", ["m1", "w2", "b2"], ["c2"], kernel_shape=[3, 3]),
             g.node("PRelu", ["c2", "a2"], ["p2"]),
             g.node("Conv", ["p2", "w3", "b3"], ["c3"], kernel_shape=[3, 3]),
             g.node("PRelu", ["c3", "a3"], ["p3"]),
             g.node("Conv", ["p3", "wr", "br"], ["offsets"], kernel_shape=[1, 1]),
             g.node("Conv", ["p3", "wc", "bc"], ["logits"], kernel_shape=[1, 1])]
    return g.model(nodes, weights, [("image", [1, 3, "h", "w"])],
                   [("offsets", [1, 4, "oh", "ow"]), ("logits", [1, 2, "oh", "ow"])])


def rnet_graph(w):
    from local.engine import onnx_graph as g
    weights = {"w1": _kernel(w[0]), "b1": w[1], "a1": w[2].reshape(-1, 1, 1),
               "w2": _kernel(w[3]), "b2": w[4], "a2": w[5].reshape(-1, 1, 1),
               "w3": _kernel(w[6]), "b3": w[7], "a3": w[8].reshape(-1, 1, 1),
               "w4": w[9], "b4": w[10], "a4": w[11], "wr": w[12], "br": w[13],
               "wc": w[14], "bc": w[15]}
    nodes = [g.node("Conv", ["patches", "w1", "b1"], ["c1"], kernel_shape=[3, 3]),
             g.node("PRelu", ["c1", "a1"], ["p1"]),
             g.node("MaxPool", ["p1"], ["m1"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             g.node("Conv", ["m1", "w2", "b2"], ["c2"], kernel_shape=[3, 3]),
             g.node("PRelu", ["c2", "a2"], ["p2"]),
             g.node("MaxPool", ["p2"], ["m2"], kernel_shape=[3, 3], strides=[2, 2]),
             g.node("Conv", ["m2", "w3", "b3"], ["c3"], kernel_shape=[2, 2]),
             g.node("PRelu", ["c3", "a3"], ["p3"]),
             # the dense layer reads columns, then rows, then channels
             g.node("Transpose", ["p3"], ["t3"], perm=[0, 3, 2, 1]),
             g.node("Flatten", ["t3"], ["f3"], axis=1),
             g.node("Gemm", ["f3", "w4", "b4"], ["d4"]),
             g.node("PRelu", ["d4", "a4"], ["p4"]),
             g.node("Gemm", ["p4", "wr", "br"], ["offsets"]),
             g.node("Gemm", ["p4", "wc", "bc"], ["logits"])]
    return g.model(nodes, weights, [("patches", ["n", 3, RNET_PX, RNET_PX])],
                   [("offsets", ["n", 4]), ("logits", ["n", 2])])


_graphs = None
_graphs_lock = threading.Lock()
_local = threading.local()


def _networks():
    """This thread's (P-Net, R-Net): an OpenCV net must not run in two threads at once."""
    nets = getattr(_local, "nets", None)
    if nets is None:
        global _graphs
        with _graphs_lock:
            if _graphs is None:
                _graphs = (pnet_graph(load_weights("pnet")), rnet_graph(load_weights("rnet")))
        nets = tuple(cv2.dnn.readNetFromONNX(np.frombuffer(b, np.uint8)) for b in _graphs)
        _local.nets = nets
    return nets


def load():
    """Load the networks for this thread now (a worker's warm-up), not at the
    first frame: each runs once, as OpenCV finishes setting a net up then."""
    pnet, rnet = _networks()
    pnet.setInput(np.zeros((1, 3, 24, 24), np.float32), "image")
    pnet.forward(["offsets", "logits"])
    rnet.setInput(np.zeros((1, 3, RNET_PX, RNET_PX), np.float32), "patches")
    rnet.forward(["offsets", "logits"])


def _blob(rgb):
    return cv2.dnn.blobFromImage(rgb, 1.0 / 128, mean=(127.5, 127.5, 127.5))


def _face_probability(logits):
    """Softmax of (not face, face), as the face's share."""
    return 1.0 / (1.0 + np.exp(np.clip(logits[..., 0] - logits[..., 1], -50, 50)))


def nms(boxes, scores, overlap):
    """Indexes of the boxes kept, best first: each drops the later ones that
    overlap it by more than ``overlap`` (intersection over union)."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        order = rest[iou_matrix(boxes[i, :4], boxes[rest, :4])[0] <= overlap]
    return np.asarray(keep, int)


def dlib_box(box):
    """An MTCNN box as dlib would draw the same face: as wide, square, lower.

    MTCNN's boxes take in the forehead: on the shared photos their width
    is dlib's (median 0.96), their height 1.2 times it, their centre 0.1 of
    the width higher. Near enough to say where dlib should look and to
    follow a face already found; faces are aligned on dlib's own boxes."""
    l, t, r, b = box
    w = r - l
    cx, cy = (l + r) / 2, (t + b) / 2 + 0.1 * w
    return (cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2)


def _square(boxes):
    """Each box as the square of its longer side, on the same centre."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] += (w - side) / 2
    out[:, 1] += (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _pnet_boxes(rgb, min_face_px, threshold, max_face_px=None):
    """P-Net over the pyramid: candidate squares (n x 5: l, t, r, b, probability)
    of faces from ``min_face_px`` up (to about ``max_face_px``, if given)."""
    pnet, _ = _networks()
    h, w = rgb.shape[:2]
    first = PNET_CELL / float(min_face_px)
    # every level is made from the first (a few times fewer pixels to read
    # than the frame, and a 2:1 first step is OpenCV's fast path)
    size = (max(1, int(np.ceil(w * first))), max(1, int(np.ceil(h * first))))
    base = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if first < 1 else cv2.INTER_LINEAR)
    scale, found = first, []
    while min(h, w) * scale >= PNET_CELL and (max_face_px is None
                                              or PNET_CELL / scale <= max_face_px):
        size = (int(np.ceil(w * scale)), int(np.ceil(h * scale)))
        level = base if size == base.shape[1::-1] else \
            cv2.resize(base, size, interpolation=cv2.INTER_AREA)
        pnet.setInput(_blob(level), "image")
        offsets, logits = pnet.forward(["offsets", "logits"])
        prob = _face_probability(np.moveaxis(logits[0], 0, -1))
        ys, xs = np.nonzero(prob > threshold)
        if len(ys):
            corner = np.stack([xs, ys], 1).astype(np.float64) * PNET_STRIDE
            boxes = np.concatenate([corner, corner + PNET_CELL], 1)
            boxes += offsets[0][:, ys, xs].T * PNET_CELL
            boxes /= scale
            scores = prob[ys, xs].astype(np.float64)
            keep = nms(boxes, scores, _NMS_SCALE)
            found.append(np.concatenate([boxes[keep], scores[keep, None]], 1))
        scale *= PYRAMID_FACTOR
    if not found:
        return np.zeros((0, 5))
    boxes = np.concatenate(found)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], _NMS_ALL)]
    boxes[:, :4] = _square(boxes[:, :4])
    return boxes


def _patches(rgb, boxes):
    """R-Net's 24 px input for each box (outside the image: black, as in training)."""
    h, w = rgb.shape[:2]
    out = np.empty((len(boxes), RNET_PX, RNET_PX, 3), np.uint8)
    for n, (l, t, r, b) in enumerate(np.rint(boxes[:, :4]).astype(int)):
        r, b = max(r, l + 1), max(b, t + 1)
        # clipped to the image (a box wholly outside it must not become a
        # negative slice, which Python reads from the other end)
        y0, y1 = min(max(0, t), h), max(0, min(h, b))
        x0, x1 = min(max(0, l), w), max(0, min(w, r))
        crop = rgb[y0:y1, x0:x1]
        if crop.shape[0] != b - t or crop.shape[1] != r - l:
            canvas = np.zeros((b - t, r - l, 3), np.uint8)
            if crop.size:
                canvas[y0 - t:y0 - t + crop.shape[0], x0 - l:x0 - l + crop.shape[1]] = crop
            crop = canvas
        # shrunk by area; enlarged (a candidate under 24 px) smoothly, as the
        # package's crop_and_resize does, not in blocks
        grow = crop.shape[0] < RNET_PX or crop.shape[1] < RNET_PX
        out[n] = cv2.resize(crop, (RNET_PX, RNET_PX),
                            interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA)
    return out


def propose(rgb, min_face_px=24.0, known=(), max_face_px=None):
    """Boxes where a face of ``min_face_px`` px or more may be, in ``rgb``'s pixels.

    Answers an n x 5 array (left, top, right, bottom, R-Net's probability),
    best first. A P-Net candidate whose centre lies in one of the ``known``
    boxes (faces already followed) is not looked at again; ``max_face_px``
    (about) ends the pyramid where the faces it would find are larger. MTCNN's
    boxes take in forehead and chin: they are larger than dlib's."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("propose() takes an RGB image (rows x columns x 3)")
    if min(rgb.shape[:2]) < 1 or not min_face_px > 0:
        return np.zeros((0, 5))
    candidates = _pnet_boxes(rgb, min_face_px, PNET_THRESHOLD, max_face_px)
    if len(candidates) and len(known):
        known = np.asarray(known, np.float64).reshape(-1, 4)
        cx = (candidates[:, 0] + candidates[:, 2])[:, None] / 2
        cy = (candidates[:, 1] + candidates[:, 3])[:, None] / 2
        inside = ((cx >= known[:, 0]) & (cx <= known[:, 2])
                  & (cy >= known[:, 1]) & (cy <= known[:, 3])).any(axis=1)
        candidates = candidates[~inside]
    if not len(candidates):
        return np.zeros((0, 5))
    _, rnet = _networks()
    patches = cv2.dnn.blobFromImages(_patches(rgb, candidates), 1.0 / 128,
                                     mean=(127.5, 127.5, 127.5))
    rnet.setInput(patches, "patches")
    offsets, logits = rnet.forward(["offsets", "logits"])
    prob = _face_probability(logits)
    keep = prob > RNET_THRESHOLD
    boxes = candidates[keep, :4]
    if not len(boxes):
        return np.zeros((0, 5))
    side = (boxes[:, 2] - boxes[:, 0])[:, None]
    boxes = boxes + offsets[keep] * side
    scores = prob[keep].astype(np.float64)
    order = nms(boxes, scores, _NMS_RNET)
    return np.concatenate([boxes[order], scores[order, None]], 1)


def find_near(rgb, box, margin=0.6):
    """The face proposed nearest ``box`` (l, t, r, b, a dlib-like face box) in
    its region grown by ``margin`` face widths on each side, as an MTCNN box
    (l, t, r, b, probability) in ``rgb``'s pixels, or None.

    For following a face already found: a look at a few thousand pixels."""
    l, t, r, b = box
    size = max(r - l, b - t, 1.0)
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(l - margin * size)), max(0, int(t - margin * size))
    x1, y1 = min(w, int(r + margin * size) + 1), min(h, int(b + margin * size) + 1)
    if x1 - x0 < PNET_CELL or y1 - y0 < PNET_CELL:
        return None
    # a face a little smaller or larger than before is still found
    found = propose(rgb[y0:y1, x0:x1], max(PNET_CELL, 0.6 * size), max_face_px=2.0 * size)
    if not len(found):
        return None
    found[:, [0, 2]] += x0
    found[:, [1, 3]] += y0
    cx, cy = (l + r) / 2, (t + b) / 2
    distance = np.hypot((found[:, 0] + found[:, 2]) / 2 - cx, (found[:, 1] + found[:, 3]) / 2 - cy)
    return found[int(np.argmin(distance))]
