"""Settings come from the environment in one place; clients honour endpoints."""
import pytest

from chalicelib.clients import ClientFactory
from chalicelib.errors import ConfigurationError
from chalicelib.settings import load_settings
from ops.stage_config import stage_environment, stages


def test_every_stage_configures_every_setting():
    assert {"dev", "prod"} <= set(stages())
    for stage in stages():
        settings = load_settings(stage_environment(stage, account="123456789012"))
        assert settings.stage == stage
        assert settings.match_threshold == 80.0 and settings.min_sightings == 2


def test_missing_variables_are_all_named():
    env = stage_environment("dev")
    del env["USERS_TABLE"], env["VIDEOS_BUCKET"]
    with pytest.raises(ConfigurationError) as raised:
        load_settings(env)
    assert "USERS_TABLE" in str(raised.value) and "VIDEOS_BUCKET" in str(raised.value)


@pytest.mark.parametrize("name, value", [("MATCH_THRESHOLD", "high"),
                                         ("MATCH_THRESHOLD", "101"),
                                         ("TOKEN_TTL_SECONDS", str(13 * 3600)),
                                         ("TIME_ZONE", "Mars/Olympus")])
def test_invalid_values_are_refused_with_their_name(name, value):
    env = stage_environment("dev")
    env[name] = value
    with pytest.raises(ConfigurationError, match=name):
        load_settings(env)


def test_clients_honour_the_standard_endpoint_variables(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", "http://127.0.0.1:6001")
    factory = ClientFactory(region="us-east-1")
    assert factory.client("s3").meta.endpoint_url == "http://127.0.0.1:5999"
    assert factory.client("rekognition").meta.endpoint_url == "http://127.0.0.1:6001"
    assert factory.client("s3") is factory.client("s3")  # cached
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:7000")
    assert factory.client("s3").meta.endpoint_url == "http://127.0.0.1:5999"
    factory.reset()
    assert factory.client("s3").meta.endpoint_url == "http://127.0.0.1:7000"
