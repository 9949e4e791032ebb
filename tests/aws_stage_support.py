"""A deployed-style stage (prod: names derived, CloudFront) in a fresh moto world.

Unlike conftest's dev fixtures, nothing of the stage is in the environment
beforehand: provisioning and deploying resolve it as they do on AWS.
"""
import datetime
import os

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ops.stage_config import stage_environment

ACCOUNT = "123456789012"  # moto's
REGION = "eu-west-1"


@pytest.fixture
def clean_env(monkeypatch):
    """Fake credentials and a region; no stage variable, no endpoint; restored after."""
    saved = dict(os.environ)
    names = set(stage_environment("dev")) | set(stage_environment("prod", account=ACCOUNT))
    for key in list(os.environ):
        if key in names or key == "SITE_ORIGIN" or key.startswith("AWS_"):
            del os.environ[key]
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
                       "AWS_CONFIG_FILE": os.devnull,
                       "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def moto_world(clean_env):
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def rekognition_stub(collection_exists=False, calls=1, delete=False):
    """moto has no face collections: a stubbed client answering ``calls`` runs."""
    client = boto3.client("rekognition", region_name=REGION)
    stubber = Stubber(client)
    for _ in range(calls):
        if collection_exists:
            stubber.add_response("describe_collection", {"FaceCount": 0})
        else:
            stubber.add_client_error("describe_collection", "ResourceNotFoundException")
            stubber.add_response("create_collection", {"StatusCode": 200})
            collection_exists = True
    if delete:
        stubber.add_response("delete_collection", {"StatusCode": 200})
    stubber.activate()
    return client


def self_signed_certificate(domain):
    """(certificate PEM, key PEM) for ``domain``, for ACM's ImportCertificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))
