"""Shared fixtures: fresh AWS (moto) resources and a fresh app per test.

Nothing is shared between tests: each gets its own ``mock_aws`` world, its
own provisioned tables and buckets, its own clients and :class:`Services`
graph (only the boto3 session that makes the clients is kept per process).
Fakes for the Rekognition calls moto does not answer are in tests/fakes/,
helpers that are not fixtures in tests/support/.

Tiers (markers declared in pytest.ini): ``engine`` tests run the built-in
dlib face engine, ``stack`` tests start the one-machine stack's processes,
``browser`` tests drive Chromium, ``slow`` tests are left out of
``pytest -m "not slow"``.
"""
import contextlib
import dataclasses
import json
import os
import threading

import boto3
import pytest
from chalice import test as chalice_test
from chalice.test import Client
from moto import mock_aws
from moto.server import ThreadedMotoServer

from chalicelib import passwords
from chalicelib.clients import ClientFactory
from chalicelib.dynamo import batch_put
from chalicelib.services import Services
from chalicelib.settings import load_settings
from ops.provision import Provisioner
from ops.stage_config import PROJECT_DIR, stage_environment
from tests.fakes.drivers import upload_photo as _upload_photo
from tests.fakes.face_collection import FakeFaceCollection, face, png_bytes
from tests.fakes.video_search import FakeVideoSearch
from tests.support import aws as aws_support
from tests.support.aws import REGION, STAGE, expect_new_collection, stubbed_rekognition
from tests.support.aws_stage import ACCOUNT, REGION as STAGE_REGION
from tests.support.face_set import shared_faces_dir


def _import_app():
    """app.py, imported as Lambda imports it: its event sources are named from
    os.environ (never from a config file), so the dev stage's names are put
    there for the import only; each test sets its own environment after."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in stage_environment(STAGE).items() if not saved.get(k)})
    try:
        import app
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return app


app_module = _import_app()


class _RequestEnvironment:
    """The stage's environment variables around each ``chalice.test.Client`` request,
    set in the real ``os.environ`` for as long as any request is in flight.

    Chalice swaps ``os.environ`` for a patched copy during a request and puts
    back what it found after. Requests sent from several threads at once (the
    race tests) interleave those swaps, and ``os.environ`` stays a plain dict
    for the rest of the worker's life: what a later test sets there no longer
    reaches code holding the real environment (``Ports.from_env``'s default,
    subprocesses), and ``python -m local.stack`` given a bad port in the
    environment started a stack and ran forever instead of refusing it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._in_flight = 0
        self._saved = {}

    @contextlib.contextmanager
    def patched(self, environment_variables):
        """Stands in for ``BaseClient._patched_env_vars`` (a bound method: no client)."""
        with self._lock:
            for name, value in environment_variables.items():
                self._saved.setdefault(name, os.environ.get(name))
                os.environ[name] = value
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                if not self._in_flight:
                    for name, value in self._saved.items():
                        if value is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = value
                    self._saved = {}


@pytest.fixture(autouse=True, scope="session")
def thread_safe_request_environment():
    original = chalice_test.BaseClient._patched_env_vars
    chalice_test.BaseClient._patched_env_vars = _RequestEnvironment().patched
    yield
    chalice_test.BaseClient._patched_env_vars = original


@pytest.fixture(autouse=True)
def restored_environment():
    """Every test starts from the worker's own environment: in-process CLIs
    (the stack's command, ops' stage loading) write os.environ, and what one
    test leaves there must not steer the next one on the same worker. The
    environment object itself is put back too, should anything have swapped it."""
    real = os.environ
    saved = dict(real)
    yield
    if os.environ is not real:
        os.environ = real
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """scrypt at 1/32 of its cost: the same code path, but every sign-in of a test
    would otherwise spend a good part of a second on purpose."""
    monkeypatch.setattr(passwords, "METHOD", "scrypt:1024:8:1")


@pytest.fixture
def faces_dir():
    path = shared_faces_dir()
    if not (path / "people").is_dir():
        pytest.skip(f"face photos not found: expected them in {path} "
                    "(the shared/ folder beside the repo, or set ROLLCALL_FACES_DIR)")
    return path


@pytest.fixture(scope="module")
def faces_dir_module():
    """The face set, once per module (for module-scoped fixtures); skip without it."""
    path = shared_faces_dir()
    if not (path / "people").is_dir():
        pytest.skip(f"face photos not found in {path}")
    return path


# -- AWS (moto) and the app ------------------------------------------------------

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
    return ClientFactory(region=REGION, session_factory=aws_support.shared_boto3_session)


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
def no_table_scans(services):
    """Every DynamoDB client of the app refuses Scan (a request path never scans)."""
    def refuse(model, **kwargs):
        raise AssertionError(f"a DynamoDB Scan was made: {kwargs.get('params')}")
    s = services.settings
    clients = [services.clients.client("dynamodb")] + [
        services.clients.table(name).meta.client
        for name in (s.users_table, s.students_table, s.sessions_table, s.attendance_table,
                     s.classes_table, s.members_table)]
    for client in clients:
        client.meta.events.register("before-call.dynamodb.Scan", refuse)
    yield
    for client in clients:
        client.meta.events.unregister("before-call.dynamodb.Scan", refuse)


# -- users -------------------------------------------------------------------------

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


# -- photos ------------------------------------------------------------------------

@pytest.fixture
def upload_photo(api, admin_headers, services):
    """``upload_photo(data, content_type="image/jpeg", headers=admin)``: the photo key.

    Asks for a presigned upload and puts ``data`` at its key, as a browser
    would (registering people is the admin's).
    """
    def upload(data, content_type="image/jpeg", headers=admin_headers):
        return _upload_photo(api, headers, services, data, content_type)
    return upload


@pytest.fixture
def bucket_keys(services):
    """``bucket_keys()``: every key in the photos bucket, sorted."""
    def keys():
        listing = services.clients.client("s3").list_objects_v2(
            Bucket=services.settings.photos_bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))
    return keys


# -- students (through the API, photos described to the fake) ------------------------

@pytest.fixture
def photos_bucket(services):
    return services.settings.photos_bucket


@pytest.fixture
def photo_of(fake_rekognition, upload_photo):
    """Upload a PNG photo of ``person`` (one good face unless ``faces`` says otherwise)."""
    def make(person=None, faces=None, size=(640, 480)):
        faces = [face(person)] if faces is None else faces
        return upload_photo(fake_rekognition.describe(png_bytes(*size), faces), "image/png")
    return make


@pytest.fixture
def register(api, admin_headers):
    """``register(student_id, full_name, photo_key)``: the ``POST /students`` answer."""
    def do_register(student_id, full_name, photo_key, headers=admin_headers):
        return api.http.post("/students", headers=headers, body=json.dumps(
            {"student_id": student_id, "full_name": full_name, "photo_key": photo_key}))
    return do_register


@pytest.fixture
def add_photo(api, admin_headers):
    """``add_photo(student_id, photo_key)``: the ``POST /students/{id}/photos`` answer."""
    def do_add(student_id, photo_key):
        return api.http.post(f"/students/{student_id}/photos", headers=admin_headers,
                             body=json.dumps({"photo_key": photo_key}))
    return do_add


# -- Rekognition fakes (tests/fakes) ---------------------------------------------------

@pytest.fixture
def fake_rekognition(services):
    """The fake photo-side Rekognition, in this test's services (before first use)."""
    fake = FakeFaceCollection(services.clients.client("s3"))
    services.clients.register("rekognition", fake)
    return fake


@pytest.fixture
def video_search(services):
    """The fake face search, answering every Rekognition call of this test."""
    fake = FakeVideoSearch(services.clients.client("s3"))
    services.clients.register("rekognition", fake)
    return fake


@pytest.fixture
def polling(services, video_search):
    """The app without a completion topic: the S3 handler polls (without sleeping)."""
    fresh = Services(settings=dataclasses.replace(services.settings, completion_topic=""),
                     clients=services.clients)
    fresh.face_search.sleep = lambda seconds: None
    app_module.reset_services(fresh)
    return fresh


# -- outside the app ---------------------------------------------------------------

@pytest.fixture
def moto_server():
    """A moto server on a free port of 127.0.0.1 (in this process): its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def table(aws):
    """A DynamoDB table ``things`` (key ``id``) holding 250 items t000..t249."""
    dynamodb = aws_support.shared_boto3_session().resource("dynamodb")
    made = dynamodb.create_table(
        TableName="things", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    batch_put(made, [{"id": f"t{n:03}", "n": n} for n in range(250)])
    return made


# -- a deployed-style stage (tests/support/aws_stage.py) ---------------------------

@pytest.fixture
def clean_env(monkeypatch):
    """Fake credentials and a region; no stage variable, no endpoint; restored after."""
    saved = dict(os.environ)
    names = set(stage_environment("dev")) | set(stage_environment("prod", account=ACCOUNT))
    for key in list(os.environ):
        if key in names or key == "SITE_ORIGIN" or key.startswith("AWS_"):
            del os.environ[key]
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": STAGE_REGION, "AWS_DEFAULT_REGION": STAGE_REGION,
                       "AWS_CONFIG_FILE": os.devnull,
                       "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def moto_world(clean_env):
    """A fresh moto world; a boto3 session in the stage's region."""
    with mock_aws():
        yield boto3.session.Session(region_name=STAGE_REGION)


@pytest.fixture
def threadsafe_app(monkeypatch):
    """``app.current_request`` per thread (what chalice's local server does), and
    moto's DynamoDB answering one request at a time: DynamoDB applies each
    conditional write atomically, while moto in this process runs the calls of
    several threads at once (two check-and-sets could both pass; the stack's
    moto server takes turns the same way, local.stack.moto_state)."""
    from chalice.local import CustomLocalChalice, LocalChalice
    from moto.core.botocore_stubber import BotocoreStubber
    turn, process = threading.Lock(), BotocoreStubber.process_request

    def one_dynamodb_call_at_a_time(self, request):
        if "//dynamodb." not in request.url:
            return process(self, request)
        with turn:
            return process(self, request)
    monkeypatch.setattr(BotocoreStubber, "process_request", one_dynamodb_call_at_a_time)
    app = app_module.app
    original = app.__class__
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, original)
        app.__class__ = CustomLocalChalice
    yield app
    app.__class__ = original
