"""The test stage, its region, and boto3 sessions and stubs shared by the tests."""
import functools

import boto3
from botocore.stub import Stubber

STAGE = "dev"
REGION = "us-east-1"


@functools.lru_cache(maxsize=None)
def shared_boto3_session(region_name=REGION):
    """One boto3 session per test process, for every test's clients.

    Each test still gets fresh clients (and its own moto world), but loading
    the service models into a new session costs more than most tests do, and
    the session holds nothing a test changes: the region and the fake
    credentials the ``aws_env`` fixture sets are the same in every test.
    """
    return boto3.session.Session(region_name=region_name)


def client(service, **kwargs):
    """A fresh boto3 client from :func:`shared_boto3_session`."""
    return shared_boto3_session().client(service, **kwargs)


def stubbed_rekognition():
    """A Rekognition client whose collection calls are answered by a Stubber.

    moto has no CreateCollection; tests that do not need real faces use this.
    """
    rekognition = client("rekognition")
    stubber = Stubber(rekognition)
    stubber.activate()
    return rekognition, stubber


def expect_new_collection(stubber, collection_id):
    stubber.add_client_error("describe_collection", "ResourceNotFoundException",
                             expected_params={"CollectionId": collection_id})
    stubber.add_response("create_collection", {"StatusCode": 200,
                                               "CollectionArn": "arn:test",
                                               "FaceModelVersion": "6.0"},
                         expected_params={"CollectionId": collection_id})
