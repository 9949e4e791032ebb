"""`make deploy` from an empty (moto) account with no file edited, twice; then destroy.

Only `chalice deploy`/`delete` are stood in for (they need API Gateway and
Lambda); the stand-in checks the project it is given, as Chalice would read it.
"""
import io
import json
import subprocess

import boto3
import pytest

from aws_stage_support import (ACCOUNT, REGION, clean_env, moto_world,  # noqa: F401
                               rekognition_stub)
from ops import deploy as deploying
from ops import provision

API_URL = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"


class FakeChalice:
    def __init__(self, deployed_dir):
        self.deployed_dir = deployed_dir
        self.calls = []
        self.configs = []

    def __call__(self, command, env=None, **kwargs):
        project = command[command.index("--project-dir") + 1]
        action = command[command.index("--project-dir") + 2]
        self.calls.append(action)
        record = self.deployed_dir / "prod.json"
        if action == "deploy":
            with open(f"{project}/.chalice/config.json") as handle:
                self.configs.append(json.load(handle))
            assert env["AWS_REGION"] == REGION
            record.write_text(json.dumps({"resources": [
                {"name": "rest_api", "resource_type": "rest_api", "rest_api_url": API_URL}]}))
        elif action == "delete":
            record.unlink()
        return subprocess.CompletedProcess(command, 0)


@pytest.fixture
def stage(moto_world, monkeypatch, tmp_path):
    """Deploy/destroy runs for prod in moto, the collection stubbed for each run."""
    real = provision.for_stage

    def with_stub(*args, **kwargs):
        made = real(*args, **kwargs)
        destroying = fake.action == "destroy"
        made.clients.register("rekognition", rekognition_stub(
            collection_exists=bool(fake.calls), calls=0 if destroying else 1,
            delete=destroying))
        return made
    monkeypatch.setattr(provision, "for_stage", with_stub)
    fake = FakeChalice(tmp_path / "deployed")

    def run(action):
        fake.action = action
        out = io.StringIO()
        kwargs = dict(session=moto_world, out=out, run=fake, deployed_dir=tmp_path / "deployed",
                      build_dir=tmp_path / "project")
        answer = getattr(deploying, action)("prod", **kwargs)
        return answer, out.getvalue()
    run.fake = fake
    return run


def test_deploy_from_an_empty_account_then_again_changes_nothing(stage):
    summary, out = stage("deploy")
    assert summary["changed"]
    origin = summary["site_origin"]
    assert origin.startswith("https://") and origin.endswith(".cloudfront.net")
    assert summary["site_url"] == origin + "/"
    assert f"site:  {origin}/" in out and f"API:   {API_URL}" in out
    assert "ops.cli --stage prod user add" in out and "--role admin" in out
    # Lambda got the derived names and the distribution's origin, in the same deploy.
    [config] = stage.fake.configs
    env = config["stages"]["prod"]["environment_variables"]
    assert env["SITE_ORIGIN"] == origin
    assert env["PHOTOS_BUCKET"] == f"rollcall-prod-{ACCOUNT}-photos"
    s3 = boto3.client("s3", region_name=REGION)
    [rule] = s3.get_bucket_cors(Bucket=env["VIDEOS_BUCKET"])["CORSRules"]
    assert rule["AllowedOrigins"] == [origin]

    site = env["SITE_BUCKET"]
    index = s3.get_object(Bucket=site, Key="index.html")
    assert index["CacheControl"] == "no-cache"
    html = index["Body"].read().decode()
    [script] = [line for line in html.splitlines() if 'type="module"' in line]
    asset = script.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("assets/") and asset.endswith("/js/app.js")
    head = s3.head_object(Bucket=site, Key=asset)
    assert "immutable" in head["CacheControl"] and "max-age=31536000" in head["CacheControl"]
    config_js = s3.get_object(Bucket=site, Key="config.js")
    assert config_js["CacheControl"] == "no-cache"
    assert API_URL.rstrip("/") in config_js["Body"].read().decode()

    again, out = stage("deploy")
    assert not again["changed"]
    assert "nothing changed" in out and "nothing to change" in out
    assert "site unchanged" in out and "unchanged  API" in out
    assert stage.fake.calls == ["deploy"]  # chalice was not run again
    assert again["site_origin"] == origin and again["api_url"] == API_URL


def test_a_code_change_deploys_the_api_again(stage, monkeypatch):
    stage("deploy")
    real = deploying.chalice_project.project_digest
    monkeypatch.setattr(deploying.chalice_project, "project_digest",
                        lambda project: "changed" + real(project))
    summary, out = stage("deploy")
    assert summary["changed"] and stage.fake.calls == ["deploy", "deploy"]


def test_destroy_removes_the_api_and_everything_deploy_made(stage):
    stage("deploy")
    pending, out = stage("destroy")
    assert pending == [] and "is gone" in out
    assert stage.fake.calls == ["deploy", "delete"]
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []
    cloudfront = boto3.client("cloudfront", region_name=REGION)
    assert cloudfront.list_distributions()["DistributionList"].get("Items", []) == []
    assert boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"] == []


def test_deploy_refuses_the_placeholder_origin(stage, clean_env):
    clean_env["SITE_ORIGIN"] = "https://rollcall.example.org"
    with pytest.raises(deploying.StageError, match="placeholder"):
        stage("deploy")
    assert stage.fake.calls == []


def test_smoke_finds_the_deployed_site_and_api(stage, moto_world, tmp_path):
    from ops.smoke import stage_urls
    summary, _ = stage("deploy")
    assert stage_urls("prod", session=moto_world, deployed_dir=tmp_path / "deployed") == \
        (summary["site_url"], API_URL)
