"""Presigned S3 URLs and POSTs are SigV4 on the bucket's regional virtual host."""
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.clients import ClientFactory


@pytest.fixture
def no_endpoint(monkeypatch, tmp_path):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                 "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "us-west-1", "ap-southeast-2"])
def test_presigned_get_is_sigv4_on_the_regional_host(no_endpoint, region):
    s3 = ClientFactory(region=region).client("s3")
    url = s3.generate_presigned_url("get_object", ExpiresIn=300,
                                    Params={"Bucket": "rollcall-photos", "Key": "photos/a.jpg"})
    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.netloc == f"rollcall-photos.s3.{region}.amazonaws.com"
    assert parts.path == "/photos/a.jpg"
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert f"/{region}/s3/aws4_request" in query["X-Amz-Credential"][0]
    assert "X-Amz-Signature" in query and "Signature" not in query  # not SigV2


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_presigned_post_is_sigv4_on_the_regional_host(no_endpoint, region):
    s3 = ClientFactory(region=region).client("s3")
    post = s3.generate_presigned_post("rollcall-videos", "videos/s1/video.mp4", ExpiresIn=300)
    assert post["url"] == f"https://rollcall-videos.s3.{region}.amazonaws.com/"
    fields = post["fields"]
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert f"/{region}/s3/aws4_request" in fields["x-amz-credential"]
    assert {"x-amz-date", "x-amz-signature", "policy"} <= set(fields)
    assert "AWSAccessKeyId" not in fields and "signature" not in fields


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:5999", "http://localhost:5999"])
def test_a_local_endpoint_is_addressed_by_path(no_endpoint, monkeypatch, endpoint):
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    s3 = ClientFactory(region="us-east-1").client("s3")
    post = s3.generate_presigned_post("rollcall-videos", "videos/x.mp4")
    assert post["url"] == f"{endpoint}/rollcall-videos"
    assert post["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
