"""A thin wrapper over the Rekognition face collection.

Only boto3 calls live here (DetectFaces, SearchFacesByImage, IndexFaces,
DeleteFaces); whether Amazon Rekognition or the built-in engine answers is
the endpoint configuration's business. Images are read by Rekognition from
S3 (``S3Object``), never passed as bytes through the Lambda.

What makes a face usable for registration (see :meth:`FaceCollection.check_photo`):

* exactly one face detected with ``Confidence`` >= :attr:`MIN_CONFIDENCE`;
* the face box is at least :attr:`MIN_FACE_PIXELS` pixels a side. Rekognition
  gives the ``BoundingBox`` as fractions of the image, so we measure the
  image's own width and height (:func:`image_size`) and take the geometric
  mean of the box's sides, sqrt(w * W * h * H): that is the side of a square
  of the same area, which does not change when an EXIF orientation swaps
  width and height. 80 px is the face detector's own window (dlib's HOG
  works on 80x80; smaller faces are found only by upsampling, and their
  descriptor is computed from an enlarged blur), and it is small enough for
  any phone or webcam photo taken at arm's length (faces of 150-600 px);
* ``Quality.Sharpness`` >= :attr:`MIN_SHARPNESS` (out of focus or shaken
  photos below that) and ``Quality.Brightness`` between
  :attr:`MIN_BRIGHTNESS` and :attr:`MAX_BRIGHTNESS` (too dark, or burnt out
  by a flash or a window behind). Both are Rekognition's 0-100 scores.
  Measured with the built-in engine on a 1137x910 portrait (face 268 px):
  crisp 100, Gaussian blur radius 4 77, radius 8 20, radius 12 9; darkened
  to 30% brightness 17, to 12% 7; brightened 1.8x 88, 2.5x 95 (washed out).
  The 70 real test photos score sharpness 67-100 and brightness 33-71. The
  limits sit between "still recognisable" and "clearly not", and are
  deliberately lenient: ``IndexFaces`` with ``QualityFilter=AUTO`` filters
  again with the service's own judgement.
"""
import contextlib
import struct

from botocore.exceptions import ClientError

#: Rekognition errors that mean "this file is not an image we can read".
_BAD_IMAGE_ERRORS = {"InvalidImageFormatException", "ImageTooLargeException",
                     "InvalidS3ObjectException", "InvalidParameterException"}

#: DeleteFaces takes at most this many ids a call.
_DELETE_BATCH = 4096


class FaceProblem(ValueError):
    """The photo cannot be used: ``code`` is the API's error code (422)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def image_size(data):
    """(width, height) of JPEG or PNG bytes as stored (EXIF ignored), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        # A file cut off inside IHDR has no size to read: damaged, not a crash.
        return struct.unpack(">II", data[16:24]) if len(data) >= 24 else None
    if not data.startswith(b"\xff\xd8"):
        return None
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without length
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2:offset + 4])
        # SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if offset + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
            return (width, height)
        if marker == 0xDA:  # start of scan before any frame header: broken file
            return None
        offset += 2 + length
    return None


class FaceCollection:
    #: Faces detected with less confidence are ignored (posters, shadows).
    MIN_CONFIDENCE = 90.0
    #: Smallest face side, in pixels, accepted for registration.
    MIN_FACE_PIXELS = 80
    #: Rekognition Quality.Sharpness (0-100) below this is "blurred".
    MIN_SHARPNESS = 25.0
    #: Rekognition Quality.Brightness (0-100) outside this is "too dark/bright".
    MIN_BRIGHTNESS = 15.0
    MAX_BRIGHTNESS = 92.0

    def __init__(self, rekognition, collection_id, *, match_threshold=80.0):
        self._rekognition = rekognition
        self.collection_id = collection_id
        self.match_threshold = match_threshold

    @staticmethod
    def _image(bucket, key):
        return {"S3Object": {"Bucket": bucket, "Name": key}}

    @staticmethod
    @contextlib.contextmanager
    def _reading_image():
        """Unreadable images become a ``bad_photo`` problem.

        Calls stay written out (``self._rekognition.detect_faces(...)``) so the
        IAM policy test can see every Rekognition action the code uses.
        """
        try:
            yield
        except ClientError as error:
            if error.response["Error"]["Code"] in _BAD_IMAGE_ERRORS:
                raise FaceProblem("bad_photo", "The photo could not be read as an image "
                                  "of a face. Take a new JPEG or PNG photo and upload it.")
            raise

    # -- checks -------------------------------------------------------------
    def check_photo(self, bucket, key, size):
        """The one usable face's detail, or :class:`FaceProblem` saying why not.

        ``size`` is the image's (width, height) in pixels, from :func:`image_size`.
        """
        with self._reading_image():
            details = self._rekognition.detect_faces(
                Image=self._image(bucket, key), Attributes=["DEFAULT"])["FaceDetails"]
        faces = [f for f in details if f.get("Confidence", 100.0) >= self.MIN_CONFIDENCE]
        if not faces:
            raise FaceProblem("no_face", "No face was found in the photo. Use a photo "
                              "where the person looks at the camera, face fully visible.")
        if len(faces) > 1:
            raise FaceProblem("several_faces", f"The photo shows {len(faces)} faces. "
                              "Use a photo of this person alone, or crop it to their face.")
        face = faces[0]
        side = self.face_pixels(face["BoundingBox"], size)
        if side < self.MIN_FACE_PIXELS:
            raise FaceProblem("face_too_small", f"The face is only about {side:.0f} pixels "
                              f"wide; it needs at least {self.MIN_FACE_PIXELS}. Take the "
                              "photo closer, or crop it around the face.")
        quality = face.get("Quality", {})
        if quality.get("Sharpness", 100.0) < self.MIN_SHARPNESS:
            raise FaceProblem("face_unclear", "The face is blurred. Take a sharper photo: "
                              "hold the camera still and focus on the face.")
        brightness = quality.get("Brightness", 50.0)
        if brightness < self.MIN_BRIGHTNESS:
            raise FaceProblem("face_unclear", "The face is too dark to recognise. Take the "
                              "photo in better light, facing the light.")
        if brightness > self.MAX_BRIGHTNESS:
            raise FaceProblem("face_unclear", "The face is too bright (overexposed). Take "
                              "the photo without a flash or a window right behind.")
        return face

    @staticmethod
    def face_pixels(box, size):
        """Side in pixels of a square with the face box's area (rotation-proof)."""
        width, height = size
        return (box["Width"] * width * box["Height"] * height) ** 0.5

    # -- collection ---------------------------------------------------------
    def search(self, bucket, key, max_faces=10):
        """Registered faces like the photo's largest face, above the threshold.

        Answers ``[{"student_id", "face_id", "similarity"}]``, best first; the
        student_id is the face's ExternalImageId (the identity mapping).
        """
        with self._reading_image():
            answer = self._rekognition.search_faces_by_image(
                CollectionId=self.collection_id, Image=self._image(bucket, key),
                MaxFaces=max_faces, FaceMatchThreshold=self.match_threshold)
        matches = [{"student_id": m["Face"].get("ExternalImageId"),
                    "face_id": m["Face"]["FaceId"], "similarity": m["Similarity"]}
                   for m in answer.get("FaceMatches", [])]
        return sorted(matches, key=lambda m: -m["similarity"])

    def index(self, bucket, key, student_id):
        """Index the photo's one face under ``student_id``: ``(face ids, box)``.

        ``box`` is the indexed face's ``{left, top, width, height}`` (ratios of
        the image, for cropping thumbnails around the face), or None.

        ``MaxFaces=1`` keeps only the largest face; ``QualityFilter=AUTO``
        lets the service refuse a face it would not recognise well, which
        we answer as ``face_unclear``.
        """
        with self._reading_image():
            answer = self._rekognition.index_faces(
                CollectionId=self.collection_id, Image=self._image(bucket, key),
                ExternalImageId=student_id, MaxFaces=1, QualityFilter="AUTO",
                DetectionAttributes=["DEFAULT"])
        face_ids = [record["Face"]["FaceId"] for record in answer.get("FaceRecords", [])]
        if not face_ids:
            reasons = sorted({reason.lower().replace("_", " ")
                              for unindexed in answer.get("UnindexedFaces", [])
                              for reason in unindexed.get("Reasons", [])})
            why = f" ({', '.join(reasons)})" if reasons else ""
            raise FaceProblem("face_unclear", f"The face is not clear enough to recognise"
                              f"{why}. Take a sharper, well-lit photo, looking at the camera.")
        return face_ids, face_box(answer["FaceRecords"][0]["Face"].get("BoundingBox"))

    def delete(self, face_ids):
        """Remove faces from the collection (ids not there are ignored)."""
        face_ids = list(face_ids)
        for start in range(0, len(face_ids), _DELETE_BATCH):
            self._rekognition.delete_faces(CollectionId=self.collection_id,
                                           FaceIds=face_ids[start:start + _DELETE_BATCH])


def face_box(box):
    """Rekognition's ``BoundingBox`` as ``{left, top, width, height}`` ratios, clamped
    to the image (a box may reach past an edge), or None without a usable box."""
    try:
        left, top = float(box["Left"]), float(box["Top"])
        width, height = float(box["Width"]), float(box["Height"])
    except (TypeError, KeyError, ValueError):
        return None
    right, bottom = min(1.0, left + width), min(1.0, top + height)
    left, top = max(0.0, left), max(0.0, top)
    if right <= left or bottom <= top:
        return None
    return {"left": round(left, 4), "top": round(top, 4),
            "width": round(right - left, 4), "height": round(bottom - top, 4)}
