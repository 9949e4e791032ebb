"""Fixtures of the face-engine tier: the built-in dlib engine behind its
Rekognition-compatible endpoint, inside each test's moto world, and the
photos and videos of the shared face set."""
import json
import time

import pytest

from tests.support import aws as aws_support
from tests.support.aws import REGION
from tests.support.face_set import (ENGINE_BUCKET, make_classroom_video, make_short_video,
                                    shared_faces_dir)


@pytest.fixture
def face_endpoint(aws):
    """The built-in face engine's Rekognition endpoint, inside this test's moto world.

    It reads images and videos through moto's in-process S3 and publishes to
    moto's SNS; its collections live in memory. The dlib models load once per
    process (and once per worker process for videos), not once per test.
    """
    from local.engine.rekognition_server import RekognitionServer
    server = RekognitionServer(s3_client=aws_support.client("s3"),
                               sns_client=aws_support.client("sns"),
                               region=REGION).start()
    yield server
    server.stop()


@pytest.fixture
def face_rekognition(face_endpoint):
    """A plain boto3 Rekognition client talking to :func:`face_endpoint`."""
    return aws_support.client("rekognition", endpoint_url=face_endpoint.url)


@pytest.fixture
def engine(services, face_rekognition):
    """This test's services with the real engine as Rekognition and an empty collection."""
    services.clients.register("rekognition", face_rekognition)
    collection = services.settings.face_collection
    if collection not in face_rekognition.list_collections().get("CollectionIds", []):
        face_rekognition.create_collection(CollectionId=collection)
    return face_rekognition


@pytest.fixture
def shared_photo(faces_dir):
    """``shared_photo("people/joe_biden/1.jpg")``: the bytes of a photo of the face set."""
    def read(relative):
        return (faces_dir / relative).read_bytes()
    return read


@pytest.fixture
def collection_faces(engine, services):
    """``collection_faces()``: (ExternalImageId, FaceId) of every face in the collection."""
    def faces():
        found, token = [], None
        while True:
            kwargs = {"CollectionId": services.settings.face_collection}
            if token:
                kwargs["NextToken"] = token
            page = engine.list_faces(**kwargs)
            found += [(f.get("ExternalImageId"), f["FaceId"]) for f in page["Faces"]]
            token = page.get("NextToken")
            if not token:
                return sorted(found)
    return faces


@pytest.fixture
def completions(services):
    """An SQS queue subscribed to the completion topic: where SNS delivers."""
    sns, sqs = services.clients.client("sns"), services.clients.client("sqs")
    [topic] = [t["TopicArn"] for t in sns.list_topics()["Topics"]
               if t["TopicArn"].endswith(":" + services.settings.completion_topic)]
    url = sqs.create_queue(QueueName="completions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs",
                  Endpoint=arn["Attributes"]["QueueArn"])

    def next_message(timeout_s=90):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
            for message in got.get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return json.loads(message["Body"])["Message"]  # the SNS envelope's message
            time.sleep(0.5)
        raise AssertionError(f"no completion was published within {timeout_s} s")
    return next_message


@pytest.fixture
def s3(aws):
    """moto's S3 with the engine tests' bucket."""
    client = aws_support.client("s3")
    client.create_bucket(Bucket=ENGINE_BUCKET)
    return client


@pytest.fixture
def collection(face_rekognition):
    face_rekognition.create_collection(CollectionId="class-1")
    return "class-1"


def _face_set_or_skip():
    faces = shared_faces_dir()
    if not (faces / "people").is_dir():
        pytest.skip(f"face photos not found in {faces}")
    return faces


@pytest.fixture(scope="module")
def classroom_video(tmp_path_factory):
    """The classroom video of ``CLASS_SCHEDULE``, made once per module."""
    return make_classroom_video(tmp_path_factory.mktemp("videos") / "classroom.mp4",
                                _face_set_or_skip())


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    """A 4 s video of two people, made once per module."""
    return make_short_video(tmp_path_factory.mktemp("videos") / "short.mp4",
                            _face_set_or_skip())
