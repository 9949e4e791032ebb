"""The built-in face engine: dlib detection, 5-point alignment, 128-D descriptor.

The descriptor is dlib's ResNet with dlib's weights, run by numpy
(:mod:`local.engine.resnet`: the same vectors, several times faster).

Everything here is pure computation on pixels (no HTTP, no AWS): images in,
faces out. The Rekognition-compatible endpoint (``local/rekognition_server.py``)
and the video pipeline (``local/video.py``) build on it.

Models come from the ``face-recognition-models`` package (weights shipped in
the wheel, never downloaded) and are loaded once per process (:func:`models`);
the endpoint's still-image requests lease further sets from a :class:`ModelPool`
(:class:`PhotoAnalyser`, which also keeps the faces of the last photos).

Similarity
----------
dlib's ResNet maps an aligned face to a 128-D vector; two photos of the same
person lie at a Euclidean distance below about 0.6 (dlib reports 99.38% on
LFW at 0.6). Rekognition speaks "similarity" from 0 to 100 with a default
threshold of 80, so :func:`similarity` maps a distance ``d`` with a logistic
curve::

    similarity(d) = 100 / (1 + exp((d - D50) / SCALE)),  D50 = 0.6473, SCALE = 0.05

chosen so that ``similarity(MATCH_DISTANCE) == 80`` with ``MATCH_DISTANCE =
0.578``. Calibration on the shared face set (``../shared/faces``: 70 photos of 11 people, each photo
detected, aligned and described by this module; the calibration test in
``tests/test_face_engine.py`` recomputes it): same person, 261 pairs,
distance 0.183 .. 0.548 (mean 0.332); different people, 2154 pairs, 0.608 ..
1.112 (mean 0.894). The threshold distance 0.578 is the middle of the gap
between the two (0.548 .. 0.608), so: same person -> similarity >= 87.8
(at the mean distance 99.8), different people -> <= 68.8 (at the mean 0.2).
A face's score against itself is 100. SCALE 0.05 makes the curve as steep
as the gap is narrow: 10 points of similarity around 80 are 0.02 of distance.
"""
import collections
import contextlib
import hashlib
import io
import math
import queue
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from local.engine import resnet

MATCH_DISTANCE = 0.578      # distance that maps to similarity 80 (see module doc)
SCALE = 0.05                # steepness of the logistic curve
D50 = MATCH_DISTANCE + SCALE * math.log(4.0)   # distance at similarity 50

# Rekognition finds faces down to 40x40 px in a 1920x1080 image; bigger photos
# are scaled down to that many pixels before detection (the detector's cost
# grows with the pixel count, and registration photos can be 12 MP).
MAX_DETECT_PIXELS = 1920 * 1080

# The detector's five sub-detectors (dlib's frontal_face_detector).
_DETECTOR_VIEWS = ("front", "left", "right", "front-rotated-left", "front-rotated-right")

FACE_MODEL_VERSION = "6.0"


class ImageFormatError(ValueError):
    """The bytes are not an image this engine can read."""


class ImageTooLargeError(ValueError):
    """The image has more pixels than PIL will safely decode (a decompression bomb)."""


@dataclass
class Models:
    detector: object
    predictor: object
    # dlib's detector keeps scratch buffers and must not be used by two
    # threads at once: every call takes the set's lock (the ResNet is
    # resnet.network(), read-only, shared by all threads). A still-image
    # request leases a set of its own from a :class:`ModelPool` (so the lock is
    # free); videos run in worker processes, one model set each.
    lock: object = field(default_factory=threading.Lock)


_models = None
_models_lock = threading.Lock()
_leased = threading.local()     # .models: the set this thread holds from a ModelPool


_mouth_predictor = None


def mouth_predictor():
    """dlib's 68-point shape predictor (for the mouth corners), loaded on first use.

    Only photos need it (DetectFaces, IndexFaces, CompareFaces report 5
    landmarks); video workers never load it, so they do not hold its 100 MB.
    One copy serves every thread: a shape predictor's call only reads its
    trees (dlib's ``operator() const``), and the binding holds the GIL anyway."""
    global _mouth_predictor
    if _mouth_predictor is None:
        with _models_lock:
            if _mouth_predictor is None:
                import dlib
                import face_recognition_models as weights
                _mouth_predictor = dlib.shape_predictor(
                    weights.pose_predictor_model_location())
    return _mouth_predictor


def _load_models(predictor=None):
    import dlib
    import face_recognition_models as weights
    return Models(
        detector=dlib.get_frontal_face_detector(),
        predictor=predictor or dlib.shape_predictor(
            weights.pose_predictor_five_point_model_location()))


def models():
    """The model set this thread works with.

    Inside :meth:`ModelPool.lease`, the leased set; otherwise the process's
    own set (dlib's detector and 5-point shape predictor), loaded once; the
    ResNet is :func:`resnet.network`, one per process."""
    leased = getattr(_leased, "models", None)
    if leased is not None:
        return leased
    global _models
    if _models is None:
        with _models_lock:
            if _models is None:
                _models = _load_models()
    return _models


class ModelPool:
    """Up to ``size`` model sets for still images, one per request at a time.

    dlib's HOG detector releases the GIL while it scans, so requests holding
    different sets detect on different cores at once (so does numpy's BLAS in
    the ResNet, shared by all; the shape predictors keep the GIL).
    The first set is the process's own (:func:`models`); the others are made
    on first need and share its 5-point predictor (read-only), each with its own
    detector. A request that finds every set in use waits for one.
    """

    def __init__(self, size):
        if size < 1:
            raise ValueError("a model pool needs at least one set")
        self.size = size
        self._free = queue.LifoQueue()      # the most recently used set first (warm caches)
        self._made = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self):
        """Hold one set for this thread; :func:`models` answers it meanwhile."""
        if getattr(_leased, "models", None) is not None:     # already holding one
            yield _leased.models
            return
        m = self._take()
        _leased.models = m
        try:
            yield m
        finally:
            _leased.models = None
            self._free.put(m)

    def _take(self):
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            index = self._made
            if index < self.size:
                self._made += 1
        if index >= self.size:
            return self._free.get()
        try:
            if index == 0:
                return models()
            return _load_models(predictor=models().predictor)
        except BaseException:
            with self._lock:
                self._made -= 1
            raise

    @property
    def loaded(self):
        """How many sets exist so far."""
        return self._made


# -- images ------------------------------------------------------------------

def decode_image(data):
    """RGB uint8 array from JPEG/PNG bytes, turned upright by EXIF orientation.

    Raises ImageFormatError for anything else (PIL reads more formats than
    Rekognition accepts, so only JPEG and PNG pass, as in Rekognition)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("JPEG", "PNG", "MPO"):
                raise ImageFormatError(f"unsupported image format {img.format}")
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "P", "PA"):
                # Transparent pixels become white, not black (a PNG with alpha).
                img = img.convert("RGBA")
                white = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, img)
            return np.asarray(img.convert("RGB"))
    except ImageFormatError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageFormatError(str(exc)) from exc


def to_gray(rgb):
    import cv2
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# -- detection -----------------------------------------------------------------

@dataclass
class Detection:
    """A face box (l, t, r, b in pixels of the image it came from) and its score."""
    box: tuple
    score: float
    view: int = 0

    @property
    def width(self):
        return self.box[2] - self.box[0]

    @property
    def height(self):
        return self.box[3] - self.box[1]


def detect(image, upsample=0, adjust_threshold=0.0):
    """Run dlib's HOG detector on a gray or RGB array (it releases the GIL)."""
    # dlib misreads strided views (a slice of a frame): hand it contiguous pixels
    image = np.ascontiguousarray(image)
    m = models()
    with m.lock:
        rects, scores, views = m.detector.run(image, upsample, adjust_threshold)
    return [Detection((r.left(), r.top(), r.right(), r.bottom()), float(s), int(v))
            for r, s, v in zip(rects, scores, views)]


def detect_in_region(gray, box, target_face=90, margin=0.6, adjust_threshold=0.0):
    """Find the face near ``box`` in a region scaled so a face is ~target_face px.

    The HOG window is 80 px: a 45 px face must be enlarged to be seen, a 200 px
    face can be shrunk (faster). Returns detections in full-image coordinates.
    """
    import cv2
    l, t, r, b = box
    size = max(r - l, b - t, 1)
    m = margin * size
    h, w = gray.shape[:2]
    x0, y0 = max(0, int(l - m)), max(0, int(t - m))
    x1, y1 = min(w, int(r + m)), min(h, int(b + m))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return []
    scale = target_face / float(size)
    roi = gray[y0:y1, x0:x1]
    if abs(scale - 1.0) > 0.05:
        roi = cv2.resize(roi, None, fx=scale, fy=scale,
                         interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    found = detect(roi, 0, adjust_threshold)
    return [Detection((x0 + d.box[0] / scale, y0 + d.box[1] / scale,
                       x0 + d.box[2] / scale, y0 + d.box[3] / scale), d.score, d.view)
            for d in found]


# -- description ---------------------------------------------------------------

def shape_of(rgb, box):
    """The 5-point landmarks of the face in ``box``."""
    import dlib
    l, t, r, b = (int(round(v)) for v in box)
    m = models()
    with m.lock:
        return m.predictor(rgb, dlib.rectangle(l, t, r, b))


def face_chip(rgb, shape):
    """The aligned 150x150 face dlib's ResNet expects."""
    import dlib
    return dlib.get_face_chip(rgb, shape, 150, 0.25)


def chip_of(rgb, box, small_px=60, target_px=100):
    """The aligned chip of the face in ``box``.

    A face under ``small_px`` is first enlarged (bicubic) so it is about
    ``target_px`` across: the 5-point predictor and the chip's resampling
    then work on smooth pixels instead of a few blocky ones (same-person
    distances at 24-26 px drop by about 0.02)."""
    import cv2
    l, t, r, b = box
    size = max(r - l, b - t, 1.0)
    if size >= small_px:
        return face_chip(rgb, shape_of(rgb, box))
    m = 0.5 * size
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(l - m)), max(0, int(t - m))
    x1, y1 = min(w, int(r + m) + 1), min(h, int(b + m) + 1)
    scale = target_px / size
    roi = cv2.resize(np.ascontiguousarray(rgb[y0:y1, x0:x1]), None, fx=scale, fy=scale,
                     interpolation=cv2.INTER_CUBIC)
    inner = ((l - x0) * scale, (t - y0) * scale, (r - x0) * scale, (b - y0) * scale)
    return face_chip(roi, shape_of(roi, inner))


#: Chips per pass through the network: a group photo's forty faces at once
#: would hold over 100 MB of the first layer's windows, for no gain.
DESCRIBE_BATCH = 8


def describe_chips(chips):
    """The descriptors of several chips, a few per pass through the network."""
    out = []
    for i in range(0, len(chips), DESCRIBE_BATCH):
        out.extend(resnet.network().descriptors(np.stack(chips[i:i + DESCRIBE_BATCH])))
    return out


def distances(descriptor, matrix):
    """Euclidean distances from one descriptor to each row of ``matrix``."""
    if len(matrix) == 0:
        return np.zeros((0,), np.float32)
    return np.linalg.norm(np.asarray(matrix, np.float32) - np.asarray(descriptor, np.float32),
                          axis=1)


def similarity(distance):
    """Rekognition-style similarity (0-100) for a descriptor distance (module doc)."""
    d = np.asarray(distance, dtype=np.float64)
    sim = 100.0 / (1.0 + np.exp((d - D50) / SCALE))
    sim = np.where(d <= 1e-6, 100.0, sim)
    return float(sim) if sim.ndim == 0 else sim


def distance_for(similarity_value):
    """The distance at which :func:`similarity` equals ``similarity_value``."""
    s = min(max(float(similarity_value), 1e-6), 100 - 1e-6)
    return D50 + SCALE * math.log(100.0 / s - 1.0)


# -- face details (what DetectFaces reports) -------------------------------------

def confidence(score):
    """Detector score -> 0-100. Photos keep boxes with score >= 0 (-> >= 88);
    video keeps those from -0.25 (-> >= 73) where MTCNN proposed a face too."""
    return float(100.0 / (1.0 + math.exp(-4.0 * (score + 0.5))))


def landmarks(shape, mouth=None):
    """Rekognition's 5 default landmarks as pixel (x, y) pairs.

    Eye centres and nose from the 5-point shape (the one the descriptor's
    alignment uses); mouth corners from ``mouth``, a 68-point shape of the same
    face (points 48 and 54), when given. Left = on the image's left."""
    pts = [(shape.part(i).x, shape.part(i).y) for i in range(5)]
    eye_a = ((pts[0][0] + pts[1][0]) / 2.0, (pts[0][1] + pts[1][1]) / 2.0)
    eye_b = ((pts[2][0] + pts[3][0]) / 2.0, (pts[2][1] + pts[3][1]) / 2.0)
    left, right = sorted((eye_a, eye_b))
    marks = {"eyeLeft": left, "eyeRight": right}
    if mouth is not None:
        corners = sorted([(mouth.part(48).x, mouth.part(48).y),
                          (mouth.part(54).x, mouth.part(54).y)])
        marks["mouthLeft"], marks["mouthRight"] = corners
    marks["nose"] = pts[4]
    return marks


def mouth_shape(rgb, box):
    """The 68-point shape of the face in ``box`` (for its mouth corners)."""
    import dlib
    l, t, r, b = (int(round(v)) for v in box)
    m = models()
    with m.lock:
        return mouth_predictor()(rgb, dlib.rectangle(l, t, r, b))


def pose(marks):
    """Roll, yaw and pitch in degrees estimated from eyes and nose.

    Roll is the eye line's angle. Yaw comes from how far the nose sits from
    the eyes' midpoint across the face, pitch from how far below the eyes it
    sits compared with a frontal face (0.8 eye-distances, measured on the
    frontal photos). Estimates, good to about 10-15 degrees."""
    (lx, ly), (rx, ry), (nx, ny) = marks["eyeLeft"], marks["eyeRight"], marks["nose"]
    dx, dy = rx - lx, ry - ly
    eye_dist = math.hypot(dx, dy) or 1.0
    roll = math.degrees(math.atan2(dy, dx))
    mx, my = (lx + rx) / 2.0, (ly + ry) / 2.0
    # nose offset in the face's own frame (undo the roll)
    cos_r, sin_r = dx / eye_dist, dy / eye_dist
    across = ((nx - mx) * cos_r + (ny - my) * sin_r) / eye_dist
    down = (-(nx - mx) * sin_r + (ny - my) * cos_r) / eye_dist
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * across))))
    pitch = max(-90.0, min(90.0, (0.8 - down) * 90.0))
    return {"Roll": round(roll, 2), "Yaw": round(yaw, 2), "Pitch": round(pitch, 2)}


def quality(gray, box):
    """Brightness and sharpness (0-100) of the face region.

    Brightness is the region's mean luminance in percent. Sharpness is the
    variance of the Laplacian on the face scaled to 64x64 (so faces of any
    size compare), mapped by 100 * (1 - exp(-var / 100)): a crisp photo scores
    90+, a blurred or heavily compressed face under 20."""
    import cv2
    h, w = gray.shape[:2]
    l, t, r, b = (int(round(v)) for v in box)
    l, t, r, b = max(0, l), max(0, t), min(w, r), min(h, b)
    if r - l < 2 or b - t < 2:
        return {"Brightness": 0.0, "Sharpness": 0.0}
    region = gray[t:b, l:r]
    brightness = float(region.mean()) / 255.0 * 100.0
    small = cv2.resize(region, (64, 64), interpolation=cv2.INTER_AREA)
    var = float(cv2.Laplacian(small, cv2.CV_64F).var())
    sharpness = 100.0 * (1.0 - math.exp(-var / 100.0))
    return {"Brightness": round(brightness, 3), "Sharpness": round(sharpness, 3)}


@dataclass
class Face:
    """One face found in an image: box in pixels plus what DetectFaces reports."""
    box: tuple
    score: float
    view: int
    landmarks: dict
    pose: dict
    quality: dict
    descriptor: np.ndarray = field(default=None, repr=False)
    shape: object = field(default=None, repr=False)     # dlib's 5-point shape
    chip: np.ndarray = field(default=None, repr=False)  # aligned 150x150, the ResNet's input

    @property
    def confidence(self):
        return confidence(self.score)

    @property
    def size(self):
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def find_faces(rgb, describe=True, upsample=1, max_pixels=MAX_DETECT_PIXELS):
    """Every face in a photo, largest first, each aligned and (optionally) described.

    Detection runs on a gray copy scaled down to at most ``max_pixels``,
    upsampled once (faces down to about 40 px at that scale); landmarks, chips
    and descriptors use the full-resolution pixels."""
    import cv2
    h, w = rgb.shape[:2]
    gray = to_gray(rgb)
    scale = min(1.0, math.sqrt(max_pixels / float(w * h)))
    small = gray if scale >= 1.0 else cv2.resize(
        gray, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    found = detect(small, upsample)
    faces = []
    for det in found:
        box = tuple(v / scale for v in det.box)
        shape = shape_of(rgb, box)
        marks = landmarks(shape, mouth_shape(rgb, box))
        face = Face(box=box, score=det.score, view=det.view, landmarks=marks,
                    pose=pose(marks), quality=quality(gray, box), shape=shape,
                    chip=face_chip(rgb, shape))
        faces.append(face)
    if describe:
        for face, descriptor in zip(faces, describe_chips([f.chip for f in faces])):
            face.descriptor = descriptor
    faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return faces


# -- still photos: a pool of model sets and the last photos' faces ---------------

#: Distinct photos whose faces are kept. A registration looks at its photo
#: four times (face check, duplicate search, indexing, the search after its
#: record is written, on a byte-identical copy); a few registrations run at once.
PHOTO_CACHE_SIZE = 16


@dataclass(frozen=True)
class Photo:
    """The faces found in one image (largest first) and its upright size.

    Kept in :class:`PhotoAnalyser`'s cache and handed to several requests:
    read it, never change it (descriptors are filled in by
    :meth:`PhotoAnalyser.describe` only)."""
    digest: str
    width: int
    height: int
    faces: tuple


class PhotoAnalyser:
    """Faces in still photos, for the endpoint's image operations.

    :meth:`analyse` decodes the bytes and finds the faces (:func:`find_faces`)
    with a model set leased from a :class:`ModelPool` of ``workers`` sets, so
    that many requests detect at once. The answer is kept, least recently
    used out after ``cache_size`` photos, under the SHA-256 digest and length
    of the exact bytes: the same bytes give the same pixels (decoding is
    deterministic, EXIF included), so a repeated photo is answered without
    looking at it again, and any other bytes, even one changed pixel, are a
    different key. Descriptors (the ResNet's pass) are computed
    only for the faces an operation needs (:meth:`describe`) and kept on them.
    """

    def __init__(self, workers=1, cache_size=PHOTO_CACHE_SIZE):
        if cache_size < 0:
            raise ValueError("cache_size must be 0 or more")
        self.pool = ModelPool(workers)
        self.cache_size = cache_size
        self._cache = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def analyse(self, data):
        """The :class:`Photo` of JPEG/PNG bytes (ImageFormatError, ImageTooLargeError)."""
        key = (hashlib.sha256(data).hexdigest(), len(data))
        with self._lock:
            photo = self._cache.get(key)
            if photo is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return photo
            self.misses += 1
        rgb = decode_image(data)
        with self.pool.lease():
            faces = find_faces(rgb, describe=False)
        photo = Photo(digest=key[0], width=rgb.shape[1], height=rgb.shape[0],
                      faces=tuple(faces))
        if self.cache_size:
            with self._lock:
                self._cache[key] = photo
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return photo

    def describe(self, faces):
        """The descriptors of ``faces`` (of photos from :meth:`analyse`), each computed once."""
        missing = [f for f in faces if f.descriptor is None]
        if missing:
            # The lease bounds how many requests describe at once (CPU, and
            # each pass's windows). Two may compute one: the same value, set whole.
            with self.pool.lease():
                descriptors = describe_chips([f.chip for f in missing])
            for face, descriptor in zip(missing, descriptors):
                face.descriptor = descriptor
        return [f.descriptor for f in faces]

    def cached(self):
        """How many photos are kept now."""
        with self._lock:
            return len(self._cache)
