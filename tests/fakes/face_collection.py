"""An in-memory stand-in for Rekognition's photo calls on a face collection.

moto has no DetectFaces, IndexFaces, SearchFacesByImage or DeleteFaces.
:class:`FakeFaceCollection` answers them for photos the test describes (who
is in the photo, where, how sharp), reading the photo from S3 just as
Rekognition would, or from the request's ``Bytes``. It also keeps other
collections than the app's (CreateCollection, DeleteCollection) and answers
SearchFaces within one: the same person at similarity 99, two people at the
similarity the test gave their ``resemblance`` (none: no match).
"""
import hashlib
import io
import itertools
import uuid

from botocore.exceptions import ClientError
from PIL import Image

from tests.fakes.base import ModelCheckedFake, aws_error

_colours = itertools.count(1)


def face(person, left=0.3, top=0.2, width=0.4, height=0.5, sharpness=80.0,
         brightness=60.0, confidence=99.9, indexable=True):
    """One face in a described photo (box as fractions of the image)."""
    return {"person": person, "box": {"Left": left, "Top": top, "Width": width,
                                      "Height": height},
            "sharpness": sharpness, "brightness": brightness, "confidence": confidence,
            "indexable": indexable}


def png_bytes(width=640, height=480):
    """A real PNG, a different colour each call (so each photo's bytes differ)."""
    n = next(_colours)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (n % 251, n // 251 % 251, 77)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(width=640, height=480):
    """A real JPEG, a different colour each call."""
    n = next(_colours)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (n % 251, 33, n // 251 % 251)).save(buffer, "JPEG")
    return buffer.getvalue()


class FakeFaceCollection(ModelCheckedFake):
    """DetectFaces, SearchFacesByImage, IndexFaces and DeleteFaces on described photos."""

    service = "rekognition"

    def __init__(self, s3):
        super().__init__()
        self._s3 = s3
        self._photos = {}       # sha256 of bytes -> [face, ...]
        self.faces = {}         # face_id -> {"person", "external_id", "collection"}
        self.collections = set()  # collections made with CreateCollection (and not deleted)
        self.deleted = set()      # collections deleted: indexing into one fails
        self.resemblance = {}     # frozenset({person, person}) -> similarity
        #: Bytes nobody described: ``recognise(data)`` says who is in them (None: not an image).
        self.recognise = None

    # -- test side -----------------------------------------------------------
    def describe(self, data, faces):
        """Say who is in the photo with these bytes."""
        self._photos[hashlib.sha256(data).hexdigest()] = list(faces)
        return data

    def faces_of(self, external_id):
        return [fid for fid, f in self.faces.items() if f["external_id"] == external_id]

    # -- API side ------------------------------------------------------------
    def similarity(self, a, b):
        """How alike two described people look to the fake (99 for the same person)."""
        return 99.0 if a == b else self.resemblance.get(frozenset((a, b)), 0.0)

    def _faces_in(self, image):
        if "Bytes" in image:
            data = image["Bytes"]
        else:
            s3obj = image["S3Object"]
            try:
                data = self._s3.get_object(Bucket=s3obj["Bucket"],
                                           Key=s3obj["Name"])["Body"].read()
            except ClientError:
                raise aws_error("InvalidS3ObjectException",
                                "Unable to get object metadata from S3.")
        described = self._photos.get(hashlib.sha256(data).hexdigest())
        if described is None and self.recognise is not None:
            described = self.recognise(data)
        if described is None:
            raise aws_error("InvalidImageFormatException", "Request has invalid image format")
        return described

    @staticmethod
    def _detail(f):
        return {"BoundingBox": f["box"], "Confidence": f["confidence"],
                "Quality": {"Sharpness": f["sharpness"], "Brightness": f["brightness"]}}

    @staticmethod
    def _largest(faces):
        return max(faces, key=lambda f: f["box"]["Width"] * f["box"]["Height"])

    def detect_faces(self, **params):
        self._enter("DetectFaces", params)
        faces = self._faces_in(params["Image"])
        return self._answer("DetectFaces", {"FaceDetails": [self._detail(f) for f in faces]})

    def search_faces_by_image(self, **params):
        self._enter("SearchFacesByImage", params)
        faces = self._faces_in(params["Image"])
        if not faces:
            raise aws_error("InvalidParameterException", "There are no faces in the image.")
        probe = self._largest(faces)
        matches = [{"Similarity": 99.0,
                    "Face": {"FaceId": fid, "ExternalImageId": f["external_id"],
                             "Confidence": 99.9}}
                   for fid, f in self.faces.items() if f["person"] == probe["person"]]
        matches = [m for m in matches
                   if m["Similarity"] >= params.get("FaceMatchThreshold", 80.0)]
        return self._answer("SearchFacesByImage", {
            "SearchedFaceBoundingBox": probe["box"], "SearchedFaceConfidence": 99.9,
            "FaceMatches": matches[:params.get("MaxFaces", 4096)]})

    def create_collection(self, **params):
        self._enter("CreateCollection", params)
        if params["CollectionId"] in self.collections:
            raise aws_error("ResourceAlreadyExistsException", "The collection exists.")
        self.collections.add(params["CollectionId"])
        self.deleted.discard(params["CollectionId"])
        return self._answer("CreateCollection", {
            "StatusCode": 200, "FaceModelVersion": "7.0",
            "CollectionArn": f"aws:rekognition:us-east-1:123456789012:collection/"
                             f"{params['CollectionId']}"})

    def delete_collection(self, **params):
        self._enter("DeleteCollection", params)
        if params["CollectionId"] not in self.collections:
            raise aws_error("ResourceNotFoundException", "The collection does not exist.")
        self.collections.discard(params["CollectionId"])
        self.deleted.add(params["CollectionId"])
        self.faces = {fid: f for fid, f in self.faces.items()
                      if f["collection"] != params["CollectionId"]}
        return self._answer("DeleteCollection", {"StatusCode": 200})

    def search_faces(self, **params):
        self._enter("SearchFaces", params)
        collection = params["CollectionId"]
        probe = self.faces.get(params["FaceId"])
        if probe is None or probe["collection"] != collection:
            raise aws_error("InvalidParameterException", "The face is not in the collection.")
        matches = sorted(
            ({"Similarity": self.similarity(probe["person"], f["person"]),
              "Face": {"FaceId": fid, "ExternalImageId": f["external_id"],
                       "Confidence": 99.9}}
             for fid, f in self.faces.items()
             if f["collection"] == collection and fid != params["FaceId"]),
            key=lambda m: -m["Similarity"])
        matches = [m for m in matches
                   if m["Similarity"] >= params.get("FaceMatchThreshold", 80.0)]
        return self._answer("SearchFaces", {"SearchedFaceId": params["FaceId"],
                                            "FaceMatches": matches[:params.get("MaxFaces", 80)]})

    def index_faces(self, **params):
        self._enter("IndexFaces", params)
        if params["CollectionId"] in self.deleted:
            raise aws_error("ResourceNotFoundException", "The collection does not exist.")
        faces = sorted(self._faces_in(params["Image"]),
                       key=lambda f: -f["box"]["Width"] * f["box"]["Height"])
        kept = faces[:params.get("MaxFaces", 100)]
        records, unindexed = [], []
        for f in kept:
            if not f["indexable"]:
                unindexed.append({"Reasons": ["LOW_SHARPNESS"], "FaceDetail": self._detail(f)})
                continue
            face_id = str(uuid.uuid4())
            self.faces[face_id] = {"person": f["person"],
                                   "external_id": params.get("ExternalImageId"),
                                   "collection": params["CollectionId"]}
            records.append({"Face": {"FaceId": face_id, "BoundingBox": f["box"],
                                     "ExternalImageId": params.get("ExternalImageId"),
                                     "Confidence": f["confidence"]},
                            "FaceDetail": self._detail(f)})
        unindexed += [{"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": self._detail(f)}
                      for f in faces[len(kept):]]
        return self._answer("IndexFaces", {"FaceRecords": records,
                                           "UnindexedFaces": unindexed})

    def delete_faces(self, **params):
        self._enter("DeleteFaces", params)
        deleted = [fid for fid in params["FaceIds"] if self.faces.pop(fid, None)]
        # Like the service, leave DeletedFaces out rather than send an empty list.
        return self._answer("DeleteFaces", {"DeletedFaces": deleted} if deleted else {})
