"""dlib's face-recognition ResNet, run with numpy.

The weights are dlib's own (``dlib_face_recognition_resnet_model_v1.dat``
from the ``face_recognition_models`` package, read here from dlib's
serialization format); the network is the one dlib's Python binding builds
(``tools/python/src/face_recognition.cpp``, ``anet_type``):

    input 150x150 RGB, (value - channel mean) / 256
    conv 7x7/2 (32), affine, relu, max pool 3x3/2
    level 4: 3 x res(32)          level 3: res_down(64), 3 x res(64)
    level 2: res_down(128), 2 x res(128)
    level 1: res_down(256), 2 x res(256)        level 0: res_down(256)
    mean over the picture, fully connected 256 -> 128 (no bias)

    res(N)      = relu(x + affine(conv3x3(relu(affine(conv3x3(x))))))
    res_down(N) = relu(avgpool2x2/2(x) + the same block, first conv stride 2)

dlib adds tensors of different shapes by padding the smaller with zeros at
the end of each axis (more channels, or a 4x4 pool beside a 3x3 conv); so
does :func:`_add`. A convolution is a cross-correlation, padded by half the
filter when its stride is 1 and not at all otherwise.

Why not dlib itself: the ``dlib-bin`` wheel has no BLAS, and its network
runs its own matrix code; numpy's OpenBLAS does the same arithmetic several
times faster, and a batch of faces shares each weight matrix. The
descriptors are dlib's to float32 rounding (tests/engine/test_resnet.py
compares them on real photos), so the calibration in face_engine holds.
"""
import threading

import numpy as np

CHIP_PX = 150


class ModelFormatError(ValueError):
    """The weights file is not the network this module runs."""


class _Reader:
    """dlib's serialization primitives (dlib/serialize.h, dlib/cuda/tensor.h)."""

    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def _need(self, count):
        if self.pos + count > len(self.data):
            raise ModelFormatError(f"the file ends at byte {len(self.data)}, inside a layer")

    def int(self):
        self._need(1)
        control = self.data[self.pos]
        size, negative = control & 0x0F, bool(control & 0x80)
        if size == 0 or size > 8:
            raise ModelFormatError(f"bad integer at byte {self.pos}")
        self._need(1 + size)
        raw = self.data[self.pos + 1:self.pos + 1 + size]
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if negative else value

    def real(self):
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0 ** exponent

    def tensor(self):
        if self.int() != 2:
            raise ModelFormatError(f"unknown tensor version at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        self._need(4 * count)
        values = np.frombuffer(self.data, "<f4", count, self.pos)     # a view: layers copy
        self.pos += 4 * count
        if not np.isfinite(values).all():
            raise ModelFormatError("the weights hold NaN or infinite values")
        return shape, values

    def alias(self):
        if self.int() != 1:
            raise ModelFormatError(f"unknown alias version at byte {self.pos}")
        return tuple(self.int() for _ in range(4))


def _records(data, tag):
    """Offsets just past each serialized ``tag`` string, in file order."""
    needle = bytes([1, len(tag)]) + tag.encode("ascii")
    found, start = [], 0
    while True:
        at = data.find(needle, start)
        if at < 0:
            return found
        found.append(at + len(needle))
        start = at + len(needle)


def _read_conv(reader):
    (_, _, _, _), params = reader.tensor()
    filters_n = reader.int()
    kh, kw = reader.int(), reader.int()
    stride_y, stride_x = reader.int(), reader.int()
    pad_y, pad_x = reader.int(), reader.int()
    shape = reader.alias()
    if shape[0] != filters_n or shape[2:] != (kh, kw) or stride_y != stride_x:
        raise ModelFormatError("unexpected convolution layout")
    weights = params[:int(np.prod(shape))].reshape(shape)          # F, C, kh, kw
    bias = params[weights.size:weights.size + filters_n]
    # Rows in (kh, kw, C) order: the order _patches lays each window out.
    matrix = np.array(weights.transpose(2, 3, 1, 0).reshape(-1, filters_n), np.float32)
    return {"w": matrix, "b": bias.astype(np.float32), "k": (kh, kw),
            "stride": stride_y, "pad": (pad_y, pad_x)}


def _read_affine(reader):
    (_, _, _, _), params = reader.tensor()
    gamma, beta = reader.alias(), reader.alias()
    n = int(np.prod(gamma))
    if int(np.prod(beta)) != n or params.size != 2 * n:
        raise ModelFormatError("unexpected affine layout")
    return {"gamma": params[:n].copy(), "beta": params[n:].copy()}


def _read_pool(reader):
    kh, kw = reader.int(), reader.int()
    stride_y, stride_x = reader.int(), reader.int()
    pad_y, pad_x = reader.int(), reader.int()
    if pad_y or pad_x or stride_y != stride_x or kh != kw:
        raise ModelFormatError("unexpected pooling layout")
    return {"k": kh, "stride": stride_y}


def _read_fc(reader):
    outputs, inputs = reader.int(), reader.int()
    (_, _, _, _), params = reader.tensor()
    if params.size != outputs * inputs:
        raise ModelFormatError("expected a fully connected layer without bias")
    return params.reshape(inputs, outputs).copy()


# The network after its first convolution, input to output: (filters, blocks
# of two convolutions, whether the first block is a "down" one), each
# convolution followed by an affine.
_LEVELS = [(32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)]


class FaceResNet:
    """dlib's face-recognition network with its trained weights."""

    def __init__(self, data):
        data = bytes(data)
        if data.find(b"\x01\x0dloss_metric_2") < 0:
            raise ModelFormatError("not dlib's face-recognition ResNet")
        inputs = _records(data, "input_rgb_image_sized")
        if len(inputs) != 1:
            raise ModelFormatError("not dlib's face-recognition ResNet")
        reader = _Reader(data, inputs[0])
        self._means = np.array([reader.real() for _ in range(3)], np.float32)
        if reader.int() != CHIP_PX or reader.int() != CHIP_PX:
            raise ModelFormatError("the network's input is not 150x150")
        convs = [_read_conv(_Reader(data, end)) for end in _records(data, "con_4")]
        affines = [_read_affine(_Reader(data, end)) for end in _records(data, "affine_")]
        maxpools = [_read_pool(_Reader(data, end)) for end in _records(data, "max_pool_2")]
        avgpools = [_read_pool(_Reader(data, end)) for end in _records(data, "avg_pool_2")]
        fcs = [_read_fc(_Reader(data, end)) for end in _records(data, "fc_2")]
        widths = [32] + [n for n, blocks, _ in _LEVELS for _ in range(2 * blocks)]
        if (len(convs) != len(widths) or len(affines) != len(convs) or len(maxpools) != 1
                or len(avgpools) != 1 + sum(down for *_, down in _LEVELS) or len(fcs) != 1):
            raise ModelFormatError("unexpected number of layers")
        if [conv["w"].shape[1] for conv in convs] != widths:
            raise ModelFormatError("unexpected number of filters in a convolution")
        # Fold each affine into the convolution before it: the same sums, one pass fewer.
        self._convs = []
        for conv, affine in zip(convs, affines):
            if affine["gamma"].size != conv["b"].size:
                raise ModelFormatError("affine does not match its convolution")
            conv["w"] *= affine["gamma"]
            conv["b"] = conv["b"] * affine["gamma"] + affine["beta"]
            self._convs.append(conv)
        self._maxpool = maxpools[0]
        self._avgpool = avgpools[0]             # the 2x2 of the down blocks (file order)
        if (self._avgpool["k"], self._avgpool["stride"]) != (2, 2):
            raise ModelFormatError("unexpected pooling in a down block")
        self._fc = fcs[0]
        if self._convs[0]["w"].shape[0] != 7 * 7 * 3 or self._fc.shape != (256, 128):
            raise ModelFormatError("unexpected first or last layer")

    @classmethod
    def from_file(cls, path):
        with open(path, "rb") as f:
            data = f.read()
        try:
            return cls(data)
        except ModelFormatError as error:
            raise ModelFormatError(f"{path}: {error}") from None

    def descriptors(self, chips):
        """The 128-D descriptors of aligned 150x150 RGB chips (uint8), one row each."""
        batch = np.asarray(chips)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.shape[1:] != (CHIP_PX, CHIP_PX, 3):
            raise ValueError(f"chips must be {CHIP_PX}x{CHIP_PX} RGB")
        x = (batch.astype(np.float32) - self._means) * np.float32(1 / 256)
        convs = iter(self._convs)
        x = np.maximum(_conv(x, next(convs)), 0)
        x = _max_pool(x, self._maxpool["k"], self._maxpool["stride"])
        for _, blocks, down in _LEVELS:
            for i in range(blocks):
                first, second = next(convs), next(convs)
                y = _conv(np.maximum(_conv(x, first), 0), second)
                skip = (_avg_pool(x, self._avgpool["k"], self._avgpool["stride"])
                        if down and i == 0 else x)
                x = np.maximum(_add(y, skip), 0)
        return x.mean(axis=(1, 2)) @ self._fc


def _patches(x, kh, kw, stride, pad):
    """im2col: every window of ``x`` (N, H, W, C) as one row, in (kh, kw, C) order."""
    if pad[0] or pad[1]:
        n, h, w, c = x.shape
        padded = np.zeros((n, h + 2 * pad[0], w + 2 * pad[1], c), np.float32)
        padded[:, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
        x = padded
    x = np.ascontiguousarray(x)
    n, h, w, c = x.shape
    ho, wo = 1 + (h - kh) // stride, 1 + (w - kw) // stride
    out = np.empty((n, ho, wo, kh, kw * c), np.float32)
    sn, sh, sw, sc = x.strides
    for i in range(kh):
        # one kernel row of a window: kw pixels side by side, contiguous in x
        rows = np.lib.stride_tricks.as_strided(
            x[:, i:], shape=(n, ho, wo, kw * c), strides=(sn, sh * stride, sw * stride, sc),
            writeable=False)
        out[:, :, :, i, :] = rows
    return out.reshape(n * ho * wo, kh * kw * c), (n, ho, wo)


def _conv(x, layer):
    rows, (n, ho, wo) = _patches(x, *layer["k"], layer["stride"], layer["pad"])
    out = rows @ layer["w"]
    out += layer["b"]
    return out.reshape(n, ho, wo, -1)


def _windows(x, k, stride):
    n, h, w, c = x.shape
    ho, wo = 1 + (h - k) // stride, 1 + (w - k) // stride
    return [x[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            for i in range(k) for j in range(k)]


def _max_pool(x, k, stride):
    parts = _windows(x, k, stride)
    out = parts[0].copy()
    for part in parts[1:]:
        np.maximum(out, part, out=out)
    return out


def _avg_pool(x, k, stride):
    parts = _windows(x, k, stride)
    out = parts[0].copy()
    for part in parts[1:]:
        out += part
    out *= np.float32(1.0 / len(parts))
    return out


def _add(a, b):
    """a + b, the smaller padded with zeros at the end of each axis (dlib's add_prev)."""
    if a.shape == b.shape:
        return a + b
    shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape))
    out = np.zeros(shape, np.float32)
    out[tuple(slice(0, s) for s in a.shape)] += a
    out[tuple(slice(0, s) for s in b.shape)] += b
    return out


_network = None
_network_lock = threading.Lock()


def network():
    """The process's network, read from face_recognition_models on first use."""
    global _network
    if _network is None:
        with _network_lock:
            if _network is None:
                import face_recognition_models as weights
                _network = FaceResNet.from_file(weights.face_recognition_model_location())
    return _network


def one_blas_thread():
    """Keep the BLAS libraries loaded in this process (numpy's) to one thread each.

    For the engine's processes, called where they start, before any thread
    can be inside BLAS: their parallelism is their own (a worker process per
    core, a thread per photo request), and BLAS threads on top would only
    contend for the same cores."""
    import threadpoolctl
    threadpoolctl.threadpool_limits(1, user_api="blas")
