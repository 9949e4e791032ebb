"""The built-in face engine behind its Rekognition-compatible endpoint.

Every call goes through an unchanged boto3 Rekognition client (the
``face_rekognition`` fixture), so responses are parsed by botocore exactly as
Amazon's are, and errors arrive as boto3's typed exceptions. Photos and the
clip are the real ones in ../shared/faces; videos are made from them with
local/video_maker.py.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import boto3
import pytest

from conftest import shared_faces_dir
from local.engine.rekognition_server import RekognitionServer
from tests.support.video_maker import make_video

REGION = "us-east-1"
BUCKET = "face-engine-test"
INTERVAL_MS = 500            # the endpoint's default sampling interval (2 per second)


def photo(faces_dir, identity, n=1):
    return faces_dir / "people" / identity / f"{n}.jpg"


def image(path):
    return {"Bytes": path.read_bytes()}


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def collection(face_rekognition):
    face_rekognition.create_collection(CollectionId="class-1")
    return "class-1"


def enrol(client, collection_id, faces_dir, identity, n=1):
    answer = client.index_faces(CollectionId=collection_id, Image=image(photo(faces_dir, identity, n)),
                                ExternalImageId=identity, MaxFaces=1)
    assert len(answer["FaceRecords"]) == 1, answer
    return answer["FaceRecords"][0]["Face"]["FaceId"]


def wait_for_job(client, job_id, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get_face_search(JobId=job_id)
        if answer["JobStatus"] != "IN_PROGRESS":
            return answer
        assert time.monotonic() < deadline, "face search did not finish"
        time.sleep(0.2)


def all_persons(client, job_id, **kwargs):
    persons, token = [], None
    while True:
        page = client.get_face_search(JobId=job_id, **({"NextToken": token} if token else {}),
                                      **kwargs)
        persons.extend(page["Persons"])
        token = page.get("NextToken")
        if not token:
            return persons, page


def sqs_listening_to(topic_arn):
    """An SQS queue subscribed to the topic (how a test reads SNS in moto)."""
    sqs = boto3.client("sqs", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    url = sqs.create_queue(QueueName="completions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    return sqs, url


def received(sqs, url):
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


# -- collections ------------------------------------------------------------------

def test_collection_lifecycle(face_rekognition):
    rk = face_rekognition
    made = rk.create_collection(CollectionId="room-101")
    assert made["StatusCode"] == 200 and made["CollectionArn"].endswith("collection/room-101")
    with pytest.raises(rk.exceptions.ResourceAlreadyExistsException):
        rk.create_collection(CollectionId="room-101")
    for name in ("room-102", "room-103"):
        rk.create_collection(CollectionId=name)
    described = rk.describe_collection(CollectionId="room-101")
    assert described["FaceCount"] == 0 and described["FaceModelVersion"]
    first = rk.list_collections(MaxResults=2)
    assert first["CollectionIds"] == ["room-101", "room-102"] and first["NextToken"]
    rest = rk.list_collections(MaxResults=2, NextToken=first["NextToken"])
    assert rest["CollectionIds"] == ["room-103"] and "NextToken" not in rest
    assert rk.delete_collection(CollectionId="room-102")["StatusCode"] == 200
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.describe_collection(CollectionId="room-102")
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.delete_collection(CollectionId="room-102")
    with pytest.raises(rk.exceptions.InvalidPaginationTokenException):
        rk.list_collections(NextToken="not-a-token")


def test_requests_are_checked_against_botocore_model(face_rekognition, face_endpoint):
    rk = face_rekognition
    # patterns and ranges botocore itself does not check client-side
    with pytest.raises(rk.exceptions.InvalidParameterException, match="pattern"):
        rk.create_collection(CollectionId="room 101!")
    rk.create_collection(CollectionId="c")
    with pytest.raises(rk.exceptions.InvalidParameterException, match="FaceMatchThreshold"):
        rk.search_faces_by_image(CollectionId="c", Image={"Bytes": b"x"}, FaceMatchThreshold=101)

    def raw(target, body):
        request = urllib.request.Request(
            face_endpoint.url + "/", data=body, method="POST",
            headers={"Content-Type": "application/x-amz-json-1.1",
                     "X-Amz-Target": "RekognitionService." + target})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, body = raw("IndexFaces", b'{"CollectionId": "c"}')
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert "Image" in body["message"]
    status, body = raw("CreateCollection", b'{"CollectionId": "d", "Colour": "red"}')
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    status, body = raw("DetectFaces", b"{not json")
    assert (status, body["__type"]) == (400, "SerializationException")
    status, body = raw("DetectLabels", b'{"Image": {"Bytes": ""}}')
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, body = raw("IndexFaces", json.dumps({
        "CollectionId": "c", "Image": {"Bytes": "not base64!"}}).encode())
    assert (status, body["__type"]) == (400, "InvalidParameterException")


# -- faces in photos ----------------------------------------------------------------

def test_index_list_and_delete_faces(face_rekognition, collection, faces_dir):
    rk = face_rekognition
    ids = [enrol(rk, collection, faces_dir, who) for who in
           ("john_salley", "john_savage", "john_schneider", "john_shimkus", "john_simm")]
    assert rk.describe_collection(CollectionId=collection)["FaceCount"] == 5
    seen, token, pages = [], None, 0
    while True:
        page = rk.list_faces(CollectionId=collection, MaxResults=2,
                             **({"NextToken": token} if token else {}))
        pages += 1
        assert len(page["Faces"]) <= 2
        seen.extend(page["Faces"])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert [f["FaceId"] for f in seen] == ids
    assert [f["ExternalImageId"] for f in seen][:2] == ["john_salley", "john_savage"]
    assert all(0 < f["BoundingBox"]["Width"] <= 1 and f["Confidence"] > 80 for f in seen)
    gone = rk.delete_faces(CollectionId=collection, FaceIds=[ids[1], "0" * 8 + "-0000-0000-0000-" + "0" * 12])
    assert gone["DeletedFaces"] == [ids[1]]
    assert gone["UnsuccessfulFaceDeletions"][0]["Reasons"] == ["FACE_NOT_FOUND"]
    assert rk.describe_collection(CollectionId=collection)["FaceCount"] == 4
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.list_faces(CollectionId="nobody-here")


def test_index_faces_max_faces_and_quality_filter(face_rekognition, collection, faces_dir):
    rk = face_rekognition
    group = faces_dir / "group" / "obama_and_biden.jpg"
    answer = rk.index_faces(CollectionId=collection, Image=image(group), MaxFaces=1,
                            ExternalImageId="group-1")
    assert len(answer["FaceRecords"]) == 1
    assert [u["Reasons"] for u in answer["UnindexedFaces"]] == [["EXCEEDS_MAX_FACES"]] * 2
    # the indexed one is the largest face
    indexed = answer["FaceRecords"][0]["FaceDetail"]["BoundingBox"]
    assert all(indexed["Width"] >= u["FaceDetail"]["BoundingBox"]["Width"]
               for u in answer["UnindexedFaces"])
    everyone = rk.index_faces(CollectionId=collection, Image=image(group), QualityFilter="NONE")
    assert len(everyone["FaceRecords"]) == 3 and everyone["UnindexedFaces"] == []
    # a face about 50 px tall is too small for HIGH quality, fine for NONE
    small = {"Bytes": _shrunk(photo(faces_dir, "barack_obama", 1), height=150)}
    high = rk.index_faces(CollectionId=collection, Image=small, QualityFilter="HIGH")
    none = rk.index_faces(CollectionId=collection, Image=small, QualityFilter="NONE")
    assert len(none["FaceRecords"]) == 1
    assert high["FaceRecords"] == [] and "SMALL_BOUNDING_BOX" in high["UnindexedFaces"][0]["Reasons"]


def test_detect_faces_finds_every_face_of_the_group_photos(face_rekognition, faces_dir):
    truth = json.loads((faces_dir / "group" / "faces.json").read_text())["images"]
    from PIL import Image
    for name, faces in truth.items():
        path = faces_dir / "group" / name
        width, height = Image.open(path).size
        details = face_rekognition.detect_faces(Image=image(path), Attributes=["DEFAULT"])["FaceDetails"]
        assert len(details) == len(faces), name
        for face in faces:
            l, t, r, b = face["box_ltrb"]
            best = max(_iou((l / width, t / height, r / width, b / height), d["BoundingBox"])
                       for d in details)
            assert best > 0.5, (name, face)
        for detail in details:
            assert detail["Confidence"] > 80
            assert {m["Type"] for m in detail["Landmarks"]} >= {"eyeLeft", "eyeRight", "nose"}
            assert set(detail["Pose"]) == {"Roll", "Yaw", "Pitch"}
            assert 0 <= detail["Quality"]["Brightness"] <= 100
            assert 0 <= detail["Quality"]["Sharpness"] <= 100


def _iou(a, box):
    b = (box["Left"], box["Top"], box["Left"] + box["Width"], box["Top"] + box["Height"])
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_search_faces_by_image_same_person_matches_and_strangers_do_not(
        face_rekognition, collection, faces_dir):
    rk = face_rekognition
    enrolled = ["barack_obama", "joe_biden", "rose_leslie", "kit_harington", "john_simm",
                "john_savage"]
    for who in enrolled:
        enrol(rk, collection, faces_dir, who, 1)
    margins = []
    for who in enrolled:
        for n in (2, 3):
            answer = rk.search_faces_by_image(CollectionId=collection,
                                              Image=image(photo(faces_dir, who, n)),
                                              FaceMatchThreshold=0, MaxFaces=10)
            top, *others = answer["FaceMatches"]
            assert top["Face"]["ExternalImageId"] == who
            assert top["Similarity"] >= 80, (who, n, top["Similarity"])
            assert all(o["Similarity"] < 80 for o in others), (who, n, others)
            margins.append(top["Similarity"] - max([o["Similarity"] for o in others] + [0]))
    # not enrolled: nobody reaches the default threshold
    for stranger in ("john_salley", "john_schneider", "alex_lacamoire", "john_shimkus"):
        answer = rk.search_faces_by_image(CollectionId=collection,
                                          Image=image(photo(faces_dir, stranger, 2)))
        assert answer["FaceMatches"] == [], stranger
    print(f"\nsmallest gap between the right person and the next: {min(margins):.1f} points")


def test_bad_images_get_rekognition_errors(face_rekognition, collection, faces_dir, s3):
    rk = face_rekognition
    with pytest.raises(rk.exceptions.InvalidImageFormatException):
        rk.detect_faces(Image={"Bytes": b"%PDF-1.4 a lesson plan, not a photo"})
    with pytest.raises(rk.exceptions.InvalidImageFormatException):
        rk.index_faces(CollectionId=collection, Image={"Bytes": b"\x89PNG\r\n\x1a\n broken"})
    with pytest.raises(rk.exceptions.ImageTooLargeException):
        rk.detect_faces(Image={"Bytes": b"\xff" * (5 * 1024 * 1024 + 1)})
    with pytest.raises(rk.exceptions.ImageTooLargeException):       # a decompression bomb
        rk.detect_faces(Image={"Bytes": _huge_png()})
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.index_faces(CollectionId="no-such-class", Image=image(photo(faces_dir, "john_simm")))
    with pytest.raises(rk.exceptions.InvalidS3ObjectException):
        rk.index_faces(CollectionId=collection,
                       Image={"S3Object": {"Bucket": BUCKET, "Name": "photos/missing.jpg"}})
    with pytest.raises(rk.exceptions.InvalidParameterException, match="no faces"):
        rk.search_faces_by_image(CollectionId=collection, Image=_blank_png())
    # and from S3 it works like Bytes
    s3.put_object(Bucket=BUCKET, Key="photos/rose.jpg",
                  Body=photo(faces_dir, "rose_leslie", 2).read_bytes())
    answer = rk.index_faces(CollectionId=collection, ExternalImageId="rose_leslie",
                            Image={"S3Object": {"Bucket": BUCKET, "Name": "photos/rose.jpg"}})
    assert len(answer["FaceRecords"]) == 1


def _shrunk(path, height):
    import io
    from PIL import Image
    img = Image.open(path).convert("RGB")
    img = img.resize((round(img.width * height / img.height), height), Image.LANCZOS)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=95)
    return out.getvalue()


def _huge_png():
    """A few kilobytes that claim 20000x20000 pixels (400 MP)."""
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, format="PNG")
    return out.getvalue()


def _blank_png():
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 190, 170)).save(out, format="PNG")
    return {"Bytes": out.getvalue()}


# -- face search in stored video ------------------------------------------------------

CLASS_SCHEDULE = [
    # (identity, photo n used in the video, start_s, end_s, x, y, face height px)
    ("john_simm", 3, 0.3, 4.7, 120, 420, 50),
    ("barack_obama", 2, 1.2, 10.2, 520, 140, 130),
    ("kit_harington", 2, 2.1, 6.8, 900, 380, 80),        # not registered
    ("rose_leslie", 2, 3.3, 11.8, 1000, 120, 70),
    ("john_simm", 3, 8.3, 11.6, 120, 420, 50),           # comes back: a second appearance
]


@pytest.fixture(scope="module")
def classroom_video(tmp_path_factory):
    faces = shared_faces_dir()
    if not (faces / "people").is_dir():
        pytest.skip(f"face photos not found in {faces}")
    path = tmp_path_factory.mktemp("videos") / "classroom.mp4"
    make_video(path, [dict(image=photo(faces, who, n), start_s=a, end_s=b, x=x, y=y,
                           height=h, drift=3)
                      for who, n, a, b, x, y, h in CLASS_SCHEDULE],
               size=(1280, 720), fps=10, duration_s=12.5)
    return path


def test_face_search_finds_who_was_there_and_when(face_rekognition, collection, faces_dir, s3,
                                                  classroom_video):
    rk = face_rekognition
    for who in ("john_simm", "barack_obama", "rose_leslie", "joe_biden"):   # biden is absent
        enrol(rk, collection, faces_dir, who, 1)
    s3.upload_file(str(classroom_video), BUCKET, "sessions/s1.mp4")
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="face-search-done")["TopicArn"]
    sqs, queue = sqs_listening_to(topic)
    job_id = rk.start_face_search(
        Video={"S3Object": {"Bucket": BUCKET, "Name": "sessions/s1.mp4"}},
        CollectionId=collection, JobTag="session-s1", ClientRequestToken="s1",
        NotificationChannel={"SNSTopicArn": topic,
                             "RoleArn": "arn:aws:iam::123456789012:role/rekognition"})["JobId"]
    done = wait_for_job(rk, job_id)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    persons, last_page = all_persons(rk, job_id, SortBy="INDEX")
    meta = last_page["VideoMetadata"]
    assert (meta["FrameWidth"], meta["FrameHeight"], meta["Codec"]) == (1280, 720, "h264")
    assert 12000 <= meta["DurationMillis"] <= 13000

    tracks = {}
    for p in persons:
        tracks.setdefault(p["Person"]["Index"], []).append(p)
    # one index per person for the whole video: john_simm's return keeps his index
    assert len(tracks) == 4, sorted(tracks)
    appearances = []
    for index, entries in sorted(tracks.items()):
        stamps = [e["Timestamp"] for e in entries]
        assert stamps == sorted(stamps)
        names = {m["Face"]["ExternalImageId"] for e in entries for m in e["FaceMatches"]}
        assert len(names) <= 1, (index, names)
        name = names.pop() if names else None
        run = [stamps[0]]                  # appearances: runs of samples without a gap
        for t in stamps[1:]:
            if t - run[-1] > 2 * INTERVAL_MS:
                appearances.append((name, run[0], run[-1]))
                run = []
            run.append(t)
        appearances.append((name, run[0], run[-1]))
    appearances.sort(key=lambda a: (a[1], a[0] or ""))
    print("\nappearances (who, first ms, last ms):", appearances)
    expected = sorted((((who if who != "kit_harington" else None), a, b)
                       for who, _, a, b, *_ in CLASS_SCHEDULE), key=lambda e: e[1])
    assert [a[0] for a in appearances] == [e[0] for e in expected], appearances
    for (who, first, last), (_, start_s, end_s) in zip(appearances, expected):
        # seen from the first sample at or after arrival, to the last before leaving
        assert start_s * 1000 <= first <= start_s * 1000 + INTERVAL_MS + 100, (who, first)
        assert end_s * 1000 - INTERVAL_MS - 100 <= last < end_s * 1000, (who, last)
    matched = [m for p in persons for m in p["FaceMatches"]]
    assert all(m["Similarity"] >= 80 for m in matched)
    assert "joe_biden" not in {m["Face"]["ExternalImageId"] for m in matched}
    box = persons[0]["Person"]["BoundingBox"]
    assert 0 < box["Width"] < 0.5 and 0 <= box["Left"] <= 1

    # Rekognition's completion message, published once to the channel's topic
    messages = received(sqs, queue)
    assert len(messages) == 1
    message = messages[0]
    assert message["JobId"] == job_id and message["Status"] == "SUCCEEDED"
    assert message["API"] == "StartFaceSearch" and message["JobTag"] == "session-s1"
    assert message["Video"] == {"S3ObjectName": "sessions/s1.mp4", "S3Bucket": BUCKET}
    assert isinstance(message["Timestamp"], int)


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    faces = shared_faces_dir()
    if not (faces / "people").is_dir():
        pytest.skip(f"face photos not found in {faces}")
    path = tmp_path_factory.mktemp("videos") / "short.mp4"
    make_video(path, [dict(image=photo(faces, "barack_obama", 2), start_s=0, end_s=4,
                           x=60, y=40, height=90),
                      dict(image=photo(faces, "rose_leslie", 2), start_s=1, end_s=4,
                           x=360, y=60, height=80)],
               size=(640, 360), fps=10, duration_s=4)
    return path


def test_client_request_token_pagination_and_sort(face_rekognition, collection, faces_dir, s3,
                                                  short_video, face_endpoint):
    rk = face_rekognition
    enrol(rk, collection, faces_dir, "barack_obama")
    s3.upload_file(str(short_video), BUCKET, "sessions/short.mp4")
    request = dict(Video={"S3Object": {"Bucket": BUCKET, "Name": "sessions/short.mp4"}},
                   CollectionId=collection, ClientRequestToken="session-42")
    job_id = rk.start_face_search(**request)["JobId"]
    assert rk.start_face_search(**request)["JobId"] == job_id          # while running
    wait_for_job(rk, job_id)
    assert rk.start_face_search(**request)["JobId"] == job_id          # and after
    assert len(face_endpoint.api.jobs._jobs) == 1, "a repeated token started a second job"
    with pytest.raises(rk.exceptions.IdempotentParameterMismatchException):
        rk.start_face_search(**dict(request, FaceMatchThreshold=50))

    everything = rk.get_face_search(JobId=job_id)["Persons"]
    assert len(everything) >= 10
    paged, page_count, token = [], 0, None
    while True:
        page = rk.get_face_search(JobId=job_id, MaxResults=3,
                                  **({"NextToken": token} if token else {}))
        page_count += 1
        assert len(page["Persons"]) <= 3
        paged.extend(page["Persons"])
        token = page.get("NextToken")
        if not token:
            break
    assert paged == everything and page_count == -(-len(everything) // 3)
    assert [p["Timestamp"] for p in everything] == sorted(p["Timestamp"] for p in everything)
    by_index = rk.get_face_search(JobId=job_id, SortBy="INDEX")["Persons"]
    keys = [(p["Person"]["Index"], p["Timestamp"]) for p in by_index]
    assert keys == sorted(keys) and len({k[0] for k in keys}) == 2
    obama = [p for p in everything if p["FaceMatches"]]
    assert obama and all(p["FaceMatches"][0]["Face"]["ExternalImageId"] == "barack_obama"
                         for p in obama)
    with pytest.raises(rk.exceptions.InvalidPaginationTokenException):
        rk.get_face_search(JobId=job_id, NextToken="garbage")
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.get_face_search(JobId="no-such-job")


def test_face_search_errors(face_rekognition, collection, s3, short_video):
    rk = face_rekognition
    video = {"S3Object": {"Bucket": BUCKET, "Name": "sessions/short.mp4"}}
    s3.upload_file(str(short_video), BUCKET, "sessions/short.mp4")
    with pytest.raises(rk.exceptions.ResourceNotFoundException):
        rk.start_face_search(Video=video, CollectionId="no-such-class")
    with pytest.raises(rk.exceptions.InvalidS3ObjectException):
        rk.start_face_search(Video={"S3Object": {"Bucket": BUCKET, "Name": "sessions/none.mp4"}},
                             CollectionId=collection)
    # a truncated upload and a file that is no video: the job fails, with a reason
    data = short_video.read_bytes()
    s3.put_object(Bucket=BUCKET, Key="sessions/cut.mp4", Body=data[: len(data) // 2])
    s3.put_object(Bucket=BUCKET, Key="sessions/notes.mp4", Body=b"lesson notes\n" * 100)
    for key in ("sessions/cut.mp4", "sessions/notes.mp4"):
        job_id = rk.start_face_search(Video={"S3Object": {"Bucket": BUCKET, "Name": key}},
                                      CollectionId=collection)["JobId"]
        done = wait_for_job(rk, job_id)
        assert done["JobStatus"] == "FAILED", key
        assert done["StatusMessage"] and "Persons" not in done


def test_video_too_large(aws, s3, short_video):
    s3.upload_file(str(short_video), BUCKET, "sessions/short.mp4")
    with RekognitionServer(s3_client=s3, sns_client=boto3.client("sns", region_name=REGION),
                           max_video_bytes=1000) as server:
        rk = boto3.client("rekognition", region_name=REGION, endpoint_url=server.url)
        rk.create_collection(CollectionId="c")
        with pytest.raises(rk.exceptions.VideoTooLargeException):
            rk.start_face_search(Video={"S3Object": {"Bucket": BUCKET,
                                                     "Name": "sessions/short.mp4"}},
                                 CollectionId="c")


def test_real_clip_finds_lin_manuel_miranda(face_rekognition, collection, faces_dir, s3):
    rk = face_rekognition
    truth = json.loads((faces_dir / "videos" / "short_hamilton_clip.json").read_text())
    for who in ("lin_manuel_miranda", "joe_biden", "rose_leslie", "john_simm"):
        enrol(rk, collection, faces_dir, who)
    s3.upload_file(str(faces_dir / "videos" / "short_hamilton_clip.mp4"), BUCKET, "clip.mp4")
    job_id = rk.start_face_search(Video={"S3Object": {"Bucket": BUCKET, "Name": "clip.mp4"}},
                                  CollectionId=collection)["JobId"]
    done = wait_for_job(rk, job_id)
    assert done["JobStatus"] == "SUCCEEDED", done.get("StatusMessage")
    assert done["VideoMetadata"]["FrameWidth"] == truth["size"][0]
    found = {m["Face"]["ExternalImageId"] for p in done["Persons"] for m in p["FaceMatches"]}
    assert set(truth["present"]) <= found
    # he is on screen, small (~50 px), in the clip's first frames (its video
    # starts 0.84 s into the file), and again from about 2.8 s on
    lin = sorted(p["Timestamp"] for p in done["Persons"]
                 if any(m["Face"]["ExternalImageId"] == "lin_manuel_miranda"
                        for m in p["FaceMatches"]))
    assert lin[0] < 1500 and lin[-1] > 6000, lin
    stamps = [(p["Person"]["Index"], p["Timestamp"]) for p in done["Persons"]]
    assert len(stamps) == len(set(stamps)), "a frame reported twice for one person"
    assert found <= set(truth["present"]) | set(truth["present_hard"]) | set(
        truth["possibly_present"])


# -- persistence and the command line -------------------------------------------------

def test_collections_and_jobs_survive_a_restart(aws, s3, faces_dir, short_video, tmp_path):
    sns = boto3.client("sns", region_name=REGION)
    s3.upload_file(str(short_video), BUCKET, "sessions/short.mp4")
    with RekognitionServer(s3_client=s3, sns_client=sns, data_dir=tmp_path) as server:
        rk = boto3.client("rekognition", region_name=REGION, endpoint_url=server.url)
        rk.create_collection(CollectionId="kept")
        face_id = enrol(rk, "kept", faces_dir, "barack_obama")
        job_id = rk.start_face_search(
            Video={"S3Object": {"Bucket": BUCKET, "Name": "sessions/short.mp4"}},
            CollectionId="kept", ClientRequestToken="once")["JobId"]
        before = wait_for_job(rk, job_id)
    with RekognitionServer(s3_client=s3, sns_client=sns, data_dir=tmp_path) as server:
        rk = boto3.client("rekognition", region_name=REGION, endpoint_url=server.url)
        assert rk.describe_collection(CollectionId="kept")["FaceCount"] == 1
        assert rk.list_faces(CollectionId="kept")["Faces"][0]["FaceId"] == face_id
        match = rk.search_faces_by_image(CollectionId="kept",
                                         Image=image(photo(faces_dir, "barack_obama", 3)))
        assert match["FaceMatches"][0]["Face"]["FaceId"] == face_id
        after = rk.get_face_search(JobId=job_id)
        assert after["JobStatus"] == "SUCCEEDED" and after["Persons"] == before["Persons"]
        again = rk.start_face_search(
            Video={"S3Object": {"Bucket": BUCKET, "Name": "sessions/short.mp4"}},
            CollectionId="kept", ClientRequestToken="once")["JobId"]
        assert again == job_id
    # nothing half-written is left behind
    assert not list(tmp_path.rglob("*.tmp"))


def _start_cli(data_dir, env):
    proc = subprocess.Popen([sys.executable, "-m", "local.engine.rekognition_server", "--host",
                             "127.0.0.1", "--port", "0", "--data-dir", str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line + proc.stderr.read()
    return proc, line.split()[-1]


def test_runs_from_the_command_line_against_moto_server(tmp_path, short_video):
    """The one-machine setup: S3 at AWS_ENDPOINT_URL (moto server), state on disk.

    SIGTERM in the middle of a face search stops the endpoint promptly; after a
    restart the collection is there and the interrupted job says it failed."""
    from moto.server import ThreadedMotoServer
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=f"http://{host}:{port}")
        keys = dict(region_name=REGION, aws_access_key_id="testing",
                    aws_secret_access_key="testing")
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", **keys)
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(short_video), BUCKET, "class.mp4")
        data_dir = tmp_path / "faces"
        proc, url = _start_cli(data_dir, env)
        try:
            rk = boto3.client("rekognition", endpoint_url=url, **keys)
            rk.create_collection(CollectionId="cli")
            with urllib.request.urlopen(url + "/ping", timeout=5) as response:
                assert json.loads(response.read()) == {"status": "ok"}
            job_id = rk.start_face_search(Video={"S3Object": {"Bucket": BUCKET,
                                                              "Name": "class.mp4"}},
                                          CollectionId="cli")["JobId"]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        assert "Authorization" not in proc.stderr.read()
        proc, url = _start_cli(data_dir, env)
        try:
            rk = boto3.client("rekognition", endpoint_url=url, **keys)
            assert rk.list_collections()["CollectionIds"] == ["cli"]
            job = rk.get_face_search(JobId=job_id)
            if job["JobStatus"] != "SUCCEEDED":       # it may have raced to the end
                assert job["JobStatus"] == "FAILED" and "stopped" in job["StatusMessage"]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    finally:
        moto.stop()
