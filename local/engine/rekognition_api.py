"""Rekognition's operations, answered by the built-in face engine.

:class:`RekognitionApi` takes an operation name and its decoded JSON request,
checks it against botocore's model, and answers the response dict (or raises
:class:`~local.engine.service_model.RekognitionError`). It holds no HTTP: the
server in ``local/rekognition_server.py`` is a thin shell around it.

Response shapes follow the service model so that boto3 parses them as it
parses Amazon's; the tests let boto3 do exactly that.
"""
import base64
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from botocore.exceptions import ClientError

from local.engine import face_engine, persons, video
from local.engine.collections_store import CollectionStore, JobStore
from local.engine.face_engine import FACE_MODEL_VERSION
from local.engine.service_model import RekognitionError, invalid, operation_model, validate

log = logging.getLogger("rollcall.face_engine")

MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024          # Rekognition's limit for S3 images
MAX_VIDEO_BYTES = 10 * 1024 ** 3               # ... and for stored videos

# QualityFilter: the least a face must have to be indexed (confidence 0-100,
# sharpness 0-100, shorter box side in px, |yaw| in degrees). AUTO = MEDIUM.
# Every photo in the shared set passes MEDIUM (weakest: sharpness 63, 74 px).
_QUALITY_BARS = {
    "LOW": {"confidence": 50.0, "sharpness": 3.0, "size": 20, "yaw": 75.0},
    "MEDIUM": {"confidence": 80.0, "sharpness": 8.0, "size": 36, "yaw": 60.0},
    "HIGH": {"confidence": 95.0, "sharpness": 20.0, "size": 60, "yaw": 45.0},
}
_QUALITY_BARS["AUTO"] = _QUALITY_BARS["MEDIUM"]

_OPERATIONS = ("CreateCollection", "DescribeCollection", "ListCollections",
               "DeleteCollection", "IndexFaces", "ListFaces", "DeleteFaces", "DetectFaces",
               "SearchFaces", "SearchFacesByImage", "CompareFaces", "StartFaceSearch",
               "GetFaceSearch")


def _encode_token(payload):
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def _decode_token(token, expect_keys):
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(payload, dict) or not set(expect_keys) <= set(payload):
            raise ValueError
        return payload
    except (ValueError, TypeError):
        raise RekognitionError("InvalidPaginationTokenException",
                               "NextToken is not a token this endpoint gave out") from None


_ratio_box = persons.ratio_box


def _face_detail(face, width, height):
    marks = [{"Type": name, "X": round(x / width, 6), "Y": round(y / height, 6)}
             for name, (x, y) in face.landmarks.items()]
    return {"BoundingBox": _ratio_box(face.box, width, height),
            "Landmarks": marks, "Pose": face.pose, "Quality": face.quality,
            "Confidence": round(face.confidence, 4)}


def _compared_face(face, width, height):
    """Rekognition's ComparedFace shape (CompareFaces' faces)."""
    detail = _face_detail(face, width, height)
    return {k: detail[k] for k in ("BoundingBox", "Confidence", "Landmarks", "Pose", "Quality")}


def _public_face(record):
    """A stored face as Rekognition's Face shape (without the descriptor)."""
    return {k: v for k, v in record.items() if k != "Descriptor"}


def _quality_reasons(face, bar):
    reasons = []
    if face.confidence < bar["confidence"]:
        reasons.append("LOW_CONFIDENCE")
    if face.quality["Sharpness"] < bar["sharpness"]:
        reasons.append("LOW_SHARPNESS")
    if face.size < bar["size"]:
        reasons.append("SMALL_BOUNDING_BOX")
    if abs(face.pose["Yaw"]) > bar["yaw"]:
        reasons.append("EXTREME_POSE")
    if face.quality["Brightness"] < 5:
        reasons.append("LOW_BRIGHTNESS")
    return reasons


def _unreadable_s3_object(exc, obj):
    """Rekognition's own answer when it cannot read an image or video from S3."""
    return RekognitionError(
        "InvalidS3ObjectException",
        "Unable to get object metadata from S3. Check object key, region and/or "
        f"access permissions ({exc.response['Error'].get('Code')}: "
        f"s3://{obj['Bucket']}/{obj['Name']})")


class RekognitionApi:
    """The operations. ``s3`` and ``sns`` are boto3 clients (moto on one machine)."""

    def __init__(self, s3, sns, data_dir=None, video_settings=None, region="us-east-1",
                 max_video_bytes=MAX_VIDEO_BYTES, max_jobs=None, image_workers=None,
                 photo_cache_size=None):
        self.s3 = s3
        self.sns = sns
        self.region = region
        self.collections = CollectionStore(data_dir, region)
        self.jobs = JobStore(data_dir)
        self.video_settings = video_settings or video.VideoSettings.from_env()
        self.max_video_bytes = max_video_bytes
        # Image requests analyse photos on their own model sets, as many at once
        # as there are video workers (ROLLCALL_FACE_WORKERS, else the CPU count);
        # a photo's faces are kept for the next requests on the same bytes
        # (ROLLCALL_FACE_PHOTO_CACHE photos, default 16; 0 keeps none).
        if image_workers is None:
            image_workers = max(1, self.video_settings.workers)
        if photo_cache_size is None:
            photo_cache_size = int(os.environ.get("ROLLCALL_FACE_PHOTO_CACHE")
                                   or face_engine.PHOTO_CACHE_SIZE)
        self.photos = face_engine.PhotoAnalyser(image_workers, photo_cache_size)
        self._scratch = os.path.join(data_dir, "tmp") if data_dir else None
        if self._scratch:
            # Videos a stopped or killed engine was still reading (a stop
            # exits without waiting for them): no job can use them now.
            shutil.rmtree(self._scratch, ignore_errors=True)
        # Several jobs at once (ROLLCALL_FACE_MAX_JOBS, default 2): their
        # segments share the worker processes in turns (video.analyse); the
        # others wait in order, and GetFaceSearch tells them their place.
        self.max_jobs = max_jobs or int(os.environ.get("ROLLCALL_FACE_MAX_JOBS") or 2)
        if self.max_jobs < 1:
            raise ValueError("max_jobs must be 1 or more")
        self._runner = ThreadPoolExecutor(max_workers=self.max_jobs,
                                          thread_name_prefix="face-search")
        self._queue_lock = threading.Lock()
        self._waiting = []              # JobIds submitted, not started, in order
        self._progress = {}             # JobId -> (segments done, segments) while running
        self._closed = threading.Event()

    def close(self):
        self._closed.set()
        self._runner.shutdown(wait=False, cancel_futures=True)

    def wait_for_jobs(self, timeout):
        """After :meth:`close`: wait up to ``timeout`` s for running face searches
        to end; True when they all did."""
        deadline = time.monotonic() + timeout
        for thread in list(getattr(self._runner, "_threads", ())):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in getattr(self._runner, "_threads", ()))

    def handle(self, operation, body):
        if operation not in _OPERATIONS:
            raise RekognitionError("UnknownOperationException",
                                   f"Operation {operation!r} is not supported by the "
                                   f"built-in face engine")
        request = validate(operation_model(operation).input_shape, body)
        return getattr(self, "op_" + operation)(request)

    # -- collections ---------------------------------------------------------------

    def op_CreateCollection(self, req):
        self.collections.create(req["CollectionId"])
        return {"StatusCode": 200, "CollectionArn": self.collections.arn(req["CollectionId"]),
                "FaceModelVersion": FACE_MODEL_VERSION}

    def op_DescribeCollection(self, req):
        info = self.collections.describe(req["CollectionId"])
        return {"FaceCount": info["FaceCount"], "FaceModelVersion": FACE_MODEL_VERSION,
                "CollectionARN": self.collections.arn(req["CollectionId"]),
                "CreationTimestamp": info["Created"], "UserCount": 0}

    def op_ListCollections(self, req):
        ids = self.collections.ids()
        start = _decode_token(req["NextToken"], ["o"])["o"] if req.get("NextToken") else 0
        limit = req.get("MaxResults") or 1000
        page = ids[start:start + limit]
        answer = {"CollectionIds": page, "FaceModelVersions": [FACE_MODEL_VERSION] * len(page)}
        if start + limit < len(ids):
            answer["NextToken"] = _encode_token({"o": start + limit})
        return answer

    def op_DeleteCollection(self, req):
        self.collections.delete(req["CollectionId"])
        return {"StatusCode": 200}

    # -- faces in images -------------------------------------------------------------

    def _image(self, image):
        """The faces of an Image (Bytes or S3Object): a :class:`face_engine.Photo`."""
        if "Bytes" in image and "S3Object" in image:
            raise invalid("Image must have Bytes or S3Object, not both")
        if "Bytes" in image:
            data = image["Bytes"]
        elif "S3Object" in image:
            data = self._s3_image(image["S3Object"])
        else:
            raise invalid("Image must have Bytes or S3Object")
        try:
            return self.photos.analyse(data)
        except face_engine.ImageTooLargeError:
            raise RekognitionError("ImageTooLargeException",
                                   "The image has too many pixels to analyse") from None
        except face_engine.ImageFormatError:
            raise RekognitionError("InvalidImageFormatException",
                                   "Request has invalid image format: send a JPEG or PNG "
                                   "image") from None

    def _s3_image(self, obj):
        if not obj.get("Bucket") or not obj.get("Name"):
            raise invalid("Image.S3Object needs Bucket and Name")
        kwargs = {"Bucket": obj["Bucket"], "Key": obj["Name"]}
        if obj.get("Version"):
            kwargs["VersionId"] = obj["Version"]
        try:
            response = self.s3.get_object(**kwargs)
            if response.get("ContentLength", 0) > MAX_S3_IMAGE_BYTES:
                raise RekognitionError("ImageTooLargeException",
                                       f"The image is over {MAX_S3_IMAGE_BYTES} bytes")
            return response["Body"].read()
        except ClientError as exc:
            raise _unreadable_s3_object(exc, obj) from None

    def op_DetectFaces(self, req):
        photo = self._image(req["Image"])
        return {"FaceDetails": [_face_detail(f, photo.width, photo.height)
                                for f in photo.faces]}

    def op_IndexFaces(self, req):
        collection_id = req["CollectionId"]
        self.collections.describe(collection_id)          # ResourceNotFound before work
        photo = self._image(req["Image"])
        w, h = photo.width, photo.height
        bar = _QUALITY_BARS.get(req.get("QualityFilter", "AUTO"))
        max_faces = req.get("MaxFaces")
        image_id = str(uuid.uuid4())
        records, unindexed, new_faces, indexed = [], [], [], []
        for face in photo.faces:                              # largest first
            detail = _face_detail(face, w, h)
            reasons = _quality_reasons(face, bar) if bar else []
            if not reasons and max_faces is not None and len(records) >= max_faces:
                reasons = ["EXCEEDS_MAX_FACES"]
            if reasons:
                unindexed.append({"Reasons": reasons, "FaceDetail": detail})
                continue
            stored = {"FaceId": str(uuid.uuid4()), "BoundingBox": detail["BoundingBox"],
                      "ImageId": image_id, "Confidence": detail["Confidence"],
                      "IndexFacesModelVersion": FACE_MODEL_VERSION}
            if req.get("ExternalImageId"):
                stored["ExternalImageId"] = req["ExternalImageId"]
            records.append({"Face": dict(stored), "FaceDetail": detail})
            new_faces.append(stored)
            indexed.append(face)
        for stored, descriptor in zip(new_faces, self.photos.describe(indexed)):
            stored["Descriptor"] = [round(float(v), 6) for v in descriptor]
        if new_faces:
            self.collections.add_faces(collection_id, new_faces)
        return {"FaceRecords": records, "FaceModelVersion": FACE_MODEL_VERSION,
                "UnindexedFaces": unindexed}

    def op_ListFaces(self, req):
        faces = self.collections.faces(req["CollectionId"])
        if req.get("FaceIds"):
            wanted = set(req["FaceIds"])
            faces = [f for f in faces if f["FaceId"] in wanted]
        start = _decode_token(req["NextToken"], ["o"])["o"] if req.get("NextToken") else 0
        limit = req.get("MaxResults") or 1000
        answer = {"Faces": [_public_face(f) for f in faces[start:start + limit]],
                  "FaceModelVersion": FACE_MODEL_VERSION}
        if start + limit < len(faces):
            answer["NextToken"] = _encode_token({"o": start + limit})
        return answer

    def op_DeleteFaces(self, req):
        deleted, missing = self.collections.delete_faces(req["CollectionId"], req["FaceIds"])
        return {"DeletedFaces": deleted,
                "UnsuccessfulFaceDeletions": [{"FaceId": i, "Reasons": ["FACE_NOT_FOUND"]}
                                              for i in missing]}

    def op_SearchFacesByImage(self, req):
        collection_id = req["CollectionId"]
        faces, matrix = self.collections.snapshot(collection_id)
        photo = self._image(req["Image"])
        w, h = photo.width, photo.height
        found = list(photo.faces)
        bar = _QUALITY_BARS.get(req.get("QualityFilter", "NONE"))
        if bar:
            found = [f for f in found if not _quality_reasons(f, bar)]
        if not found:
            raise invalid("There are no faces in the image. Should be at least 1.")
        face = found[0]                                # the largest
        [descriptor] = self.photos.describe([face])
        matches = self._matches([descriptor], faces, matrix,
                                req.get("FaceMatchThreshold", 80.0), req.get("MaxFaces", 80))
        return {"SearchedFaceBoundingBox": _ratio_box(face.box, w, h),
                "SearchedFaceConfidence": round(face.confidence, 4),
                "FaceMatches": matches, "FaceModelVersion": FACE_MODEL_VERSION}

    def op_SearchFaces(self, req):
        """Faces of the collection like one of its own faces (the face itself left out)."""
        faces, matrix = self.collections.snapshot(req["CollectionId"])
        index = next((i for i, f in enumerate(faces) if f["FaceId"] == req["FaceId"]), None)
        if index is None:
            raise invalid(f"faceId {req['FaceId']} was not found in the collection.")
        dist = face_engine.distances(matrix[index], matrix)
        others = [i for i in range(len(faces)) if i != index]
        matches = persons.face_matches(dist[others], [faces[i] for i in others],
                                   req.get("FaceMatchThreshold", 80.0), req.get("MaxFaces", 80))
        return {"SearchedFaceId": req["FaceId"], "FaceMatches": matches,
                "FaceModelVersion": FACE_MODEL_VERSION}

    def op_CompareFaces(self, req):
        """The source image's largest face against the target's 100 largest.

        As in Rekognition, an image without a (quality) face is
        InvalidParameterException, faces are ordered by similarity, and those
        under SimilarityThreshold (default 80) are UnmatchedFaces."""
        source, target = self._image(req["SourceImage"]), self._image(req["TargetImage"])
        bar = _QUALITY_BARS.get(req.get("QualityFilter", "NONE"))
        sh, sw = source.height, source.width
        th, tw = target.height, target.width
        source_faces = list(source.faces)
        target_faces = list(target.faces[:100])
        if bar:
            source_faces = [f for f in source_faces if not _quality_reasons(f, bar)]
            target_faces = [f for f in target_faces if not _quality_reasons(f, bar)]
        if not source_faces or not target_faces:
            raise invalid("Request has invalid parameters: no face was detected in the "
                          + ("source" if not source_faces else "target") + " image")
        face = source_faces[0]
        [descriptor] = self.photos.describe([face])
        sims = np.atleast_1d(face_engine.similarity(
            face_engine.distances(descriptor, np.stack(self.photos.describe(target_faces)))))
        threshold = req.get("SimilarityThreshold", 80.0)
        matched, unmatched = [], []
        for f, sim in sorted(zip(target_faces, sims), key=lambda p: -p[1]):
            detail = _compared_face(f, tw, th)
            if sim >= threshold:
                matched.append({"Similarity": round(float(sim), 4), "Face": detail})
            else:
                unmatched.append(detail)
        return {"SourceImageFace": {"BoundingBox": _ratio_box(face.box, sw, sh),
                                    "Confidence": round(face.confidence, 4)},
                "FaceMatches": matched, "UnmatchedFaces": unmatched}

    @staticmethod
    def _matches(descriptors, faces, matrix, threshold, limit=None):
        """Collection faces whose best similarity to any descriptor >= threshold."""
        if not len(faces) or not descriptors:
            return []
        best = np.min(np.stack([face_engine.distances(d, matrix) for d in descriptors]), axis=0)
        return persons.face_matches(best, faces, threshold, limit)

    # -- face search in stored video ------------------------------------------------

    def op_StartFaceSearch(self, req):
        collection_id = req["CollectionId"]
        self.collections.describe(collection_id)
        obj = req["Video"].get("S3Object")
        if not obj or not obj.get("Bucket") or not obj.get("Name"):
            raise invalid("Video.S3Object needs Bucket and Name")
        token = req.get("ClientRequestToken")
        params = {"CollectionId": collection_id, "Video": req["Video"],
                  "FaceMatchThreshold": req.get("FaceMatchThreshold", 80.0),
                  "JobTag": req.get("JobTag"),
                  "NotificationChannel": req.get("NotificationChannel")}
        if token:
            existing = self.jobs.by_token(token)
            if existing is not None:
                if existing["Params"] != params:
                    raise RekognitionError(
                        "IdempotentParameterMismatchException",
                        "ClientRequestToken was already used with different parameters")
                return {"JobId": existing["JobId"]}
        size = self._video_size(obj)
        if size > self.max_video_bytes:
            raise RekognitionError("VideoTooLargeException",
                                   f"The video is {size} bytes; the limit is "
                                   f"{self.max_video_bytes}")

        def make_job():
            return {"JobId": uuid.uuid4().hex, "ClientRequestToken": token,
                    "JobStatus": "IN_PROGRESS", "Params": params, "Created": time.time()}
        job, is_new = self.jobs.claim_token(token, make_job)
        if is_new:
            with self._queue_lock:
                self._waiting.append(job["JobId"])
            self._runner.submit(self._run_job, job["JobId"])
        return {"JobId": job["JobId"]}

    def _video_size(self, obj):
        kwargs = {"Bucket": obj["Bucket"], "Key": obj["Name"]}
        if obj.get("Version"):
            kwargs["VersionId"] = obj["Version"]
        try:
            return self.s3.head_object(**kwargs)["ContentLength"]
        except ClientError as exc:
            raise _unreadable_s3_object(exc, obj) from None

    def _status_message(self, job_id):
        """Where an IN_PROGRESS job stands: its place in the queue, or its progress."""
        with self._queue_lock:
            if job_id in self._waiting:
                place = self._waiting.index(job_id) + 1
                return (f"Queued: position {place} of {len(self._waiting)} waiting "
                        f"({self.max_jobs} analysed at a time)")
            done, total = self._progress.get(job_id, (0, 0))
        return f"Analysing: {done} of {total} parts done" if total else "Analysing"

    def _run_job(self, job_id):
        with self._queue_lock:
            if job_id in self._waiting:
                self._waiting.remove(job_id)
        try:
            self._run_started_job(job_id)
        finally:
            with self._queue_lock:
                self._progress.pop(job_id, None)

    def _track_progress(self, job_id):
        def progress(done, total):
            with self._queue_lock:
                self._progress[job_id] = (done, total)
        return progress

    def _run_started_job(self, job_id):
        job = dict(self.jobs.get(job_id))
        params = job["Params"]
        obj = params["Video"]["S3Object"]
        path = None
        try:
            if self._scratch:
                os.makedirs(self._scratch, exist_ok=True)
            fd, path = tempfile.mkstemp(suffix=os.path.splitext(obj["Name"])[1][:8],
                                        dir=self._scratch)
            os.close(fd)
            extra = {"VersionId": obj["Version"]} if obj.get("Version") else None
            self.s3.download_file(obj["Bucket"], obj["Name"], path, ExtraArgs=extra)
            faces, matrix = self.collections.snapshot(params["CollectionId"])
            video.require_face_search_format(video.probe(path))
            info, tracks = video.analyse(path, self.video_settings,
                                         progress=self._track_progress(job_id),
                                         reference=matrix)
            job["VideoMetadata"] = info.metadata()
            job["Result"] = persons.entries(tracks, info, faces, matrix,
                                            params["FaceMatchThreshold"])
            del tracks
            job["JobStatus"] = "SUCCEEDED"
        except video.VideoError as exc:
            job["JobStatus"], job["StatusMessage"] = "FAILED", str(exc)
        except RekognitionError as exc:
            job["JobStatus"], job["StatusMessage"] = "FAILED", exc.message
        except ClientError as exc:
            job["JobStatus"] = "FAILED"
            job["StatusMessage"] = ("Unable to read the video from S3 "
                                    f"({exc.response['Error'].get('Code')})")
        except Exception:            # never leave a job IN_PROGRESS forever
            log.exception("face search %s failed", job_id)
            job["JobStatus"] = "FAILED"
            job["StatusMessage"] = "Internal error in the face engine; see its log"
        finally:
            if path:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        job["Finished"] = time.time()
        self.jobs.put(job)
        log.info("face search %s %s", job_id, job["JobStatus"])
        self._notify(job)

    def _notify(self, job):
        channel = job["Params"].get("NotificationChannel")
        if not channel or self._closed.is_set():
            return
        obj = job["Params"]["Video"]["S3Object"]
        message = {"JobId": job["JobId"], "Status": job["JobStatus"],
                   "API": "StartFaceSearch", "Timestamp": int(job["Finished"] * 1000),
                   "Video": {"S3ObjectName": obj["Name"], "S3Bucket": obj["Bucket"]}}
        if job["Params"].get("JobTag"):
            message["JobTag"] = job["Params"]["JobTag"]
        try:
            self.sns.publish(TopicArn=channel["SNSTopicArn"], Message=json.dumps(message))
        except Exception:
            log.exception("could not publish the completion of %s to SNS", job["JobId"])

    def op_GetFaceSearch(self, req):
        job = self.jobs.get(req["JobId"])
        if job is None:
            raise RekognitionError("ResourceNotFoundException",
                                   f"No face search job has the id {req['JobId']}")
        answer = {"JobStatus": job["JobStatus"], "JobId": job["JobId"],
                  "Video": job["Params"]["Video"]}
        if job["Params"].get("JobTag"):
            answer["JobTag"] = job["Params"]["JobTag"]
        if job.get("StatusMessage"):
            answer["StatusMessage"] = job["StatusMessage"]
        elif job["JobStatus"] == "IN_PROGRESS":
            answer["StatusMessage"] = self._status_message(job["JobId"])
        if job["JobStatus"] != "SUCCEEDED":
            return answer
        sort_by = req.get("SortBy", "TIMESTAMP")
        result = self.jobs.result(job["JobId"])
        sightings = result["Entries"]       # by (timestamp, index) already
        if sort_by == "INDEX":
            sightings = sightings.by_index()
        start = 0
        if req.get("NextToken"):
            token = _decode_token(req["NextToken"], ["o", "j"])
            if token["j"] != job["JobId"]:
                raise RekognitionError("InvalidPaginationTokenException",
                                       "NextToken belongs to another job")
            start = token["o"]
        limit = req.get("MaxResults") or 1000
        answer["VideoMetadata"] = job["VideoMetadata"]
        answer["Persons"] = [persons.person_entry(e, result["Matches"])
                             for e in sightings[start:start + limit]]
        if start + limit < len(sightings):
            answer["NextToken"] = _encode_token({"o": start + limit, "j": job["JobId"]})
        return answer
