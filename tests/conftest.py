"""Shared fixtures: fresh AWS (moto) resources and a fresh app per test.

Nothing is shared between tests: each gets its own ``mock_aws`` world, its
own provisioned tables and buckets, and its own :class:`Services` graph.
"""
import os
import pathlib

import boto3
import pytest
from botocore.stub import Stubber
from chalice.test import Client
from moto import mock_aws

import app as app_module
from chalicelib.clients import ClientFactory
from ops.provision import Provisioner
from chalicelib.services import Services
from chalicelib.settings import load_settings
from ops.stage_config import PROJECT_DIR, stage_environment

STAGE = "dev"
REGION = "us-east-1"


def shared_faces_dir():
    """Where the labelled face photos live: ``../shared/faces`` beside the repo."""
    return pathlib.Path(os.environ.get("ROLLCALL_FACES_DIR",
                                       PROJECT_DIR.parent / "shared" / "faces"))


@pytest.fixture
def faces_dir():
    path = shared_faces_dir()
    if not (path / "people").is_dir():
        pytest.skip(f"face photos not found: expected them in {path} "
                    "(the shared/ folder beside the repo, or set ROLLCALL_FACES_DIR)")
    return path


@pytest.fixture
def aws_env(monkeypatch):
    """The dev stage's environment with fake credentials and no real endpoint."""
    for key in list(os.environ):
        if key.startswith("AWS_ENDPOINT_URL") or key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for key, value in stage_environment(STAGE).items():
        monkeypatch.setenv(key, value)
    return os.environ


@pytest.fixture
def aws(aws_env):
    """A fresh moto world for one test."""
    with mock_aws():
        yield


@pytest.fixture
def settings(aws_env):
    return load_settings()


@pytest.fixture
def clients(aws):
    return ClientFactory(region=REGION)


def stubbed_rekognition():
    """A Rekognition client whose collection calls are answered by a Stubber.

    moto has no CreateCollection; tests that do not need real faces use this.
    """
    client = boto3.client("rekognition", region_name=REGION)
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


def expect_new_collection(stubber, collection_id):
    stubber.add_client_error("describe_collection", "ResourceNotFoundException",
                             expected_params={"CollectionId": collection_id})
    stubber.add_response("create_collection", {"StatusCode": 200,
                                               "CollectionArn": "arn:test",
                                               "FaceModelVersion": "6.0"},
                         expected_params={"CollectionId": collection_id})


@pytest.fixture
def provisioned(aws, settings, clients):
    """Every table, bucket, topic and secret of the stage, made in moto."""
    rekognition, stubber = stubbed_rekognition()
    expect_new_collection(stubber, settings.face_collection)
    clients.register("rekognition", rekognition)
    Provisioner(settings, clients).run()
    return clients


@pytest.fixture
def services(provisioned, settings):
    fresh = Services(settings=settings, clients=provisioned)
    app_module.reset_services(fresh)
    yield fresh
    app_module.reset_services(None)


@pytest.fixture
def api(services):
    """``chalice.test.Client`` over the app, wired to this test's services."""
    with Client(app_module.app, stage_name=STAGE, project_dir=str(PROJECT_DIR)) as client:
        yield client


@pytest.fixture
def make_user(services):
    """Create a user: ``make_user(email, password, role)``."""
    def make(email="teacher@example.org", password="correct horse battery", role="teacher"):
        services.users.add(email, password, role)
        return {"email": email, "password": password, "role": role}
    return make


@pytest.fixture
def login(api):
    """Sign in through the API and answer the Authorization header."""
    import json

    def do_login(user):
        response = api.http.post("/auth/login", headers={"Content-Type": "application/json"},
                                 body=json.dumps({"email": user["email"],
                                                  "password": user["password"]}))
        assert response.status_code == 200, response.body
        return {"Authorization": "Bearer " + response.json_body["token"],
                "Content-Type": "application/json"}
    return do_login


@pytest.fixture
def teacher_headers(make_user, login):
    return login(make_user("teacher@example.org", "teacher password 1", "teacher"))


@pytest.fixture
def admin_headers(make_user, login):
    return login(make_user("admin@example.org", "admin password 12", "admin"))


# -- built-in face endpoint (issue 8) -------------------------------------------

@pytest.fixture
def face_endpoint(aws):
    """The built-in face engine's Rekognition endpoint, inside this test's moto world.

    It reads images and videos through moto's in-process S3 and publishes to
    moto's SNS; its collections live in memory. The dlib models load once per
    process (and once per worker process for videos), not once per test.
    """
    from local.engine.rekognition_server import RekognitionServer
    server = RekognitionServer(s3_client=boto3.client("s3", region_name=REGION),
                               sns_client=boto3.client("sns", region_name=REGION),
                               region=REGION).start()
    yield server
    server.stop()


@pytest.fixture
def face_rekognition(face_endpoint):
    """A plain boto3 Rekognition client talking to :func:`face_endpoint`."""
    return boto3.client("rekognition", region_name=REGION, endpoint_url=face_endpoint.url)
