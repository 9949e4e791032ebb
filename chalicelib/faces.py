"""A thin wrapper over the Rekognition face collection.

Only boto3 calls live here (DetectFaces, SearchFacesByImage, IndexFaces,
DeleteFaces); whether Amazon Rekognition or the built-in engine answers is
the endpoint configuration's business. Images are always read by Rekognition
from S3 (``S3Object``), never passed as bytes through the Lambda.
"""


class FaceCollection:
    def __init__(self, rekognition, collection_id, *, match_threshold=80.0):
        self._rekognition = rekognition
        self.collection_id = collection_id
        self.match_threshold = match_threshold
