"""MTCNN's proposals: the ONNX graphs compute the networks as the weights
define them, small faces in real photos are proposed, bad weights are refused."""
import joblib
import numpy as np
import pytest
import cv2

from local.engine import face_engine, mtcnn, onnx_graph
from local.engine.resnet import ModelFormatError


# -- the networks, written plainly (Keras semantics: rows x columns x channels) ----

def _conv(x, w, b):
    """Valid convolution of an (H, W, C) array with a (kh, kw, C, O) kernel."""
    kh, kw, _, out = w.shape
    h, wd = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    y = np.zeros((h, wd, out), np.float64)
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("hwc,co->hwo", x[i:i + h, j:j + wd], w[i, j])
    return y + b


def _prelu(x, a):
    return np.where(x > 0, x, x * a.reshape(-1))


def _pool(x, k, s, same):
    """Max pooling; "same" pads the end (Keras) so the output is ceil(H / s)."""
    h, w, c = x.shape
    if same:
        oh, ow = -(-h // s), -(-w // s)
        x = np.pad(x, ((0, max(0, (oh - 1) * s + k - h)), (0, max(0, (ow - 1) * s + k - w)),
                       (0, 0)), constant_values=-np.inf)
    else:
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
    return np.array([[x[i * s:i * s + k, j * s:j * s + k].max(axis=(0, 1))
                      for j in range(ow)] for i in range(oh)])


def _pnet(x, p):
    x = _pool(_prelu(_conv(x, p[0], p[1]), p[2]), 2, 2, True)
    x = _prelu(_conv(x, p[3], p[4]), p[5])
    x = _prelu(_conv(x, p[6], p[7]), p[8])
    return _conv(x, p[9], p[10]), _conv(x, p[11], p[12])


def _rnet(x, r):
    x = _pool(_prelu(_conv(x, r[0], r[1]), r[2]), 3, 2, True)
    x = _pool(_prelu(_conv(x, r[3], r[4]), r[5]), 3, 2, False)
    x = _prelu(_conv(x, r[6], r[7]), r[8])
    flat = x.transpose(1, 0, 2).ravel()         # Keras: Permute((2, 1, 3)), Flatten
    hidden = _prelu(flat @ r[9] + r[10], r[11])
    return hidden @ r[12] + r[13], hidden @ r[14] + r[15]


def _net(graph):
    return cv2.dnn.readNetFromONNX(np.frombuffer(graph, np.uint8))


def test_pnet_graph_computes_pnet_on_any_size():
    p = mtcnn.load_weights("pnet")
    net = _net(mtcnn.pnet_graph(p))
    rng = np.random.default_rng(3)
    for h, w in ((12, 12), (37, 53), (40, 31)):     # odd sizes: the pooling's padded end
        x = rng.uniform(-1, 1, (h, w, 3)).astype(np.float32)
        net.setInput(x.transpose(2, 0, 1)[None].copy(), "image")
        offsets, logits = net.forward(["offsets", "logits"])
        want_offsets, want_logits = _pnet(x.astype(np.float64), p)
        assert offsets[0].transpose(1, 2, 0).shape == want_offsets.shape
        assert np.abs(offsets[0].transpose(1, 2, 0) - want_offsets).max() < 1e-4
        assert np.abs(logits[0].transpose(1, 2, 0) - want_logits).max() < 1e-4


def test_rnet_graph_computes_rnet_for_a_batch():
    r = mtcnn.load_weights("rnet")
    net = _net(mtcnn.rnet_graph(r))
    x = np.random.default_rng(4).uniform(-1, 1, (3, 24, 24, 3)).astype(np.float32)
    net.setInput(x.transpose(0, 3, 1, 2).copy(), "patches")
    offsets, logits = net.forward(["offsets", "logits"])
    for n in range(3):
        want_offsets, want_logits = _rnet(x[n].astype(np.float64), r)
        assert np.abs(offsets[n] - want_offsets).max() < 1e-4
        assert np.abs(logits[n] - want_logits).max() < 1e-4


def test_onnx_writer_encodes_negative_and_large_integers():
    # int64 -1 is ten bytes on the wire; 300 needs two
    assert onnx_graph._varint(-1) == b"\xff" * 9 + b"\x01"
    assert onnx_graph._varint(300) == b"\xac\x02"
    graph = onnx_graph.model([onnx_graph.node("Add", ["x", "w"], ["y"])],
                             {"w": np.array([1.5, -2.0], np.float32)},
                             [("x", ["n", 2])], [("y", ["n", 2])])
    net = _net(graph)
    net.setInput(np.array([[1.0, 1.0], [0.0, 3.0]], np.float32), "x")
    assert np.allclose(net.forward("y"), [[2.5, -1.0], [1.5, 1.0]])


# -- proposals on real faces ---------------------------------------------------------

def _scene(photo_rgb, box, face_px, rng, size=(640, 360), with_box=False):
    """The photo shrunk so the face is ``face_px`` wide, its surroundings (4 faces
    wide) pasted at a random place on a gray frame; answers (frame, face centre)
    (and dlib's face box there, ``with_box``)."""
    l, t, r, b = box
    s = face_px / float(r - l)
    small = cv2.resize(photo_rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    cx, cy = (l + r) / 2 * s, (t + b) / 2 * s
    x0, y0 = int(max(0, cx - 2 * face_px)), int(max(0, cy - 2 * face_px))
    crop = small[y0:y0 + 4 * face_px, x0:x0 + 4 * face_px]
    frame = np.full((size[1], size[0], 3), 128, np.uint8)
    ox = int(rng.integers(0, size[0] - crop.shape[1]))
    oy = int(rng.integers(0, size[1] - crop.shape[0]))
    frame[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
    centre = (cx - x0 + ox, cy - y0 + oy)
    if with_box:
        dx, dy = ox - x0, oy - y0
        return frame, centre, (l * s + dx, t * s + dy, r * s + dx, b * s + dy)
    return frame, centre


@pytest.fixture(scope="module")
def shared_faces(faces_dir_module):
    """(RGB, dlib's face box) of every photo of the face set with a face found."""
    out = []
    for path in sorted((faces_dir_module / "people").glob("*/*.jpg")):
        rgb = face_engine.decode_image(path.read_bytes())
        found = face_engine.find_faces(rgb, describe=False)
        if found:
            out.append((rgb, found[0].box))
    if len(out) < 20:
        pytest.skip("too few faces found in the shared photos")
    return out


def _covers(proposals, point):
    x, y = point
    return any(l <= x <= r and t <= y <= b for l, t, r, b, _ in proposals)


@pytest.mark.parametrize("face_px", [24, 32, 48])
def test_small_faces_of_real_photos_are_proposed(shared_faces, face_px):
    """Where dlib would draw the face: a proposal, as the tracker maps it to
    dlib's box, overlaps dlib's own box of that face by half or more."""
    from local.engine.boxes import iou
    rng = np.random.default_rng(face_px)
    missed = 0
    for rgb, box in shared_faces:
        frame, _, face = _scene(rgb, box, face_px, rng, with_box=True)
        proposals = mtcnn.propose(frame, 24)
        assert proposals.shape[1] == 5 and np.all(proposals[:, 4] > mtcnn.RNET_THRESHOLD)
        missed += not any(iou(mtcnn.dlib_box(p[:4]), face) >= 0.5 for p in proposals)
    # every one is found today; a face or two of margin for other machines' rounding
    assert missed <= max(1, len(shared_faces) // 30)


def test_a_known_face_is_not_proposed_again(shared_faces):
    rng = np.random.default_rng(7)
    rgb, box = shared_faces[0]
    frame, (x, y) = _scene(rgb, box, 32, rng)
    assert _covers(mtcnn.propose(frame, 24), (x, y))
    known = [(x - 30, y - 30, x + 30, y + 30)]
    assert not _covers(mtcnn.propose(frame, 24, known=known), (x, y))


def test_find_near_finds_the_face_beside_its_last_place(shared_faces):
    rng = np.random.default_rng(8)
    rgb, box = shared_faces[1]
    frame, (x, y) = _scene(rgb, box, 30, rng)
    moved = (x - 15 + 6, y - 15 + 4, x + 15 + 6, y + 15 + 4)     # a few px off
    found = mtcnn.find_near(frame, moved)
    assert found is not None and found[0] <= x <= found[2] and found[1] <= y <= found[3]
    blank = np.full_like(frame, 128)
    assert mtcnn.find_near(blank, moved) is None
    assert mtcnn.find_near(frame, (-50, -50, -40, -40)) is None     # outside the frame


def test_candidates_at_or_past_the_frames_edges_are_looked_at_on_black():
    rgb = np.random.default_rng(9).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = np.array([[5, -30, 25, -5, 1.0],        # wholly above
                      [-40, 10, -10, 40, 1.0],      # wholly left
                      [70, 50, 100, 80, 1.0],       # over the bottom-right corner
                      [10, 10, 30, 30, 1.0],        # inside, under 24 px
                      [0, 0, 80, 60, 1.0]], float)  # the whole frame
    patches = mtcnn._patches(rgb, boxes)
    assert patches.shape == (5, 24, 24, 3)
    assert not patches[0].any() and not patches[1].any()
    corner = cv2.resize(np.pad(rgb[50:, 70:], ((0, 20), (0, 20), (0, 0))), (24, 24),
                        interpolation=cv2.INTER_AREA)
    assert np.array_equal(patches[2], corner)
    assert np.array_equal(patches[3], cv2.resize(rgb[10:30, 10:30], (24, 24),
                                                 interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(patches[4], cv2.resize(rgb, (24, 24), interpolation=cv2.INTER_AREA))


def test_propose_refuses_a_gray_image_and_answers_nothing_for_an_empty_one():
    with pytest.raises(ValueError):
        mtcnn.propose(np.zeros((40, 40), np.uint8))
    assert mtcnn.propose(np.zeros((0, 40, 3), np.uint8)).shape == (0, 5)
    assert mtcnn.propose(np.zeros((40, 40, 3), np.uint8)).shape == (0, 5)


# -- the weight files ----------------------------------------------------------------

def test_weights_come_from_the_installed_package():
    path = mtcnn.weights_path("pnet")
    assert path.is_file() and path.parts[-4:] == ("mtcnn", "assets", "weights", "pnet.lz4")


def test_a_file_that_is_not_the_weights_is_refused(tmp_path):
    garbage = tmp_path / "pnet.lz4"
    garbage.write_bytes(b"not a joblib file" * 10)
    with pytest.raises(ModelFormatError, match="pnet.lz4"):
        mtcnn.load_weights("pnet", garbage)
    cut = tmp_path / "cut.lz4"
    cut.write_bytes(mtcnn.weights_path("pnet").read_bytes()[:2000])
    with pytest.raises(ModelFormatError, match="cut.lz4"):
        mtcnn.load_weights("pnet", cut)


def test_weights_of_another_shape_or_not_numbers_are_refused(tmp_path):
    good = mtcnn.load_weights("pnet")
    other = tmp_path / "other.lz4"
    joblib.dump(good[:-1], other, compress="lz4")
    with pytest.raises(ModelFormatError, match="does not hold"):
        mtcnn.load_weights("pnet", other)
    rnet_as_pnet = tmp_path / "rnet.lz4"
    joblib.dump(mtcnn.load_weights("rnet"), rnet_as_pnet, compress="lz4")
    with pytest.raises(ModelFormatError):
        mtcnn.load_weights("pnet", rnet_as_pnet)
    nan = [a.copy() for a in good]
    nan[3][0, 0, 0, 0] = np.nan
    bad = tmp_path / "nan.lz4"
    joblib.dump(nan, bad, compress="lz4")
    with pytest.raises(ModelFormatError, match="not numbers"):
        mtcnn.load_weights("pnet", bad)
