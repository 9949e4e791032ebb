"""Names come from the stage and the account unless the stage sets them; the IAM
policy and the deployed project are rendered from those same names."""
import json

import boto3
import pytest
from moto import mock_aws

from aws_stage_support import ACCOUNT, clean_env  # noqa: F401
from ops import chalice_project
from ops.chalice_project import project_digest, render_policy, render_project
from ops.stage_config import (StageError, apply_stage_environment, derived_name,
                              needs_account, stage_environment)


def _config(tmp_path, stage_env, extra_stage=None):
    path = tmp_path / "config.json"
    stage = {"api_gateway_stage": "api", "environment_variables": stage_env}
    stage.update(extra_stage or {})
    path.write_text(json.dumps({"version": "2.0", "app_name": "rollcall",
                                "environment_variables": {"TIME_ZONE": "UTC"},
                                "stages": {"staging": stage}}))
    return path


def test_unset_names_derive_from_stage_and_account(tmp_path):
    env = stage_environment("staging", path=_config(tmp_path, {}), account="210987654321")
    assert env["ROLLCALL_STAGE"] == "staging"
    assert env["USERS_TABLE"] == "rollcall-staging-users"
    assert env["ATTENDANCE_TABLE"] == "rollcall-staging-attendance"
    assert env["PHOTOS_BUCKET"] == "rollcall-staging-210987654321-photos"
    assert env["VIDEOS_BUCKET"] == "rollcall-staging-210987654321-videos"
    assert env["SITE_BUCKET"] == "rollcall-staging-210987654321-site"
    assert env["FACE_COLLECTION"] == "rollcall-staging-faces"
    assert env["COMPLETION_TOPIC"] == "rollcall-staging-face-search-done"
    assert env["REKOGNITION_ROLE"] == "rollcall-staging-rekognition-publish"
    assert env["TOKEN_SECRET_PARAMETER"] == "/rollcall/staging/token-secret"
    assert "SITE_ORIGIN" not in env


def test_names_the_stage_sets_win(tmp_path):
    path = _config(tmp_path, {"PHOTOS_BUCKET": "school-photos", "USERS_TABLE": "people"})
    env = stage_environment("staging", path=path, account="210987654321")
    assert env["PHOTOS_BUCKET"] == "school-photos" and env["USERS_TABLE"] == "people"
    assert env["VIDEOS_BUCKET"] == "rollcall-staging-210987654321-videos"


def test_without_an_account_buckets_stay_unnamed_and_the_account_is_needed(tmp_path):
    path = _config(tmp_path, {})
    env = stage_environment("staging", path=path)
    assert "PHOTOS_BUCKET" not in env and env["USERS_TABLE"] == "rollcall-staging-users"
    assert needs_account("staging", path)
    assert not needs_account("dev")  # the local stage names everything


def test_the_account_is_asked_of_sts_only_when_a_bucket_needs_it(tmp_path, clean_env):
    path = _config(tmp_path, {})
    with mock_aws():
        environ = apply_stage_environment("staging", environ={}, path=path)
    assert environ["PHOTOS_BUCKET"] == f"rollcall-staging-{ACCOUNT}-photos"
    # Without credentials STS cannot answer: a fully named stage never asks.
    del clean_env["AWS_ACCESS_KEY_ID"], clean_env["AWS_SECRET_ACCESS_KEY"]
    environ = apply_stage_environment("dev", environ={})
    assert environ["PHOTOS_BUCKET"] == stage_environment("dev")["PHOTOS_BUCKET"]


def test_the_operators_environment_overrides_a_derived_name(tmp_path):
    path = _config(tmp_path, {})
    environ = apply_stage_environment("staging", environ={"VIDEOS_BUCKET": "mine"},
                                      path=path, account="210987654321")
    assert environ["VIDEOS_BUCKET"] == "mine"


def test_a_table_added_to_the_settings_gets_a_name_with_no_config_edit(monkeypatch, tmp_path):
    import chalicelib.settings as settings_module
    monkeypatch.setattr(settings_module, "_REQUIRED",
                        settings_module._REQUIRED + (("classes_table", "CLASSES_TABLE"),))
    env = stage_environment("staging", path=_config(tmp_path, {}), account="210987654321")
    assert env["CLASSES_TABLE"] == "rollcall-staging-classes"
    assert derived_name("prod", "ENROLMENTS_TABLE") == "rollcall-prod-enrolments"


def test_the_policy_names_exactly_the_resolved_resources(tmp_path):
    env = stage_environment("staging", path=_config(tmp_path, {}), account="210987654321")
    text = json.dumps(render_policy(env))
    assert "${" not in text
    assert "arn:aws:s3:::rollcall-staging-210987654321-photos/photos/*" in text
    assert "arn:aws:dynamodb:*:*:table/rollcall-staging-users" in text
    assert "arn:aws:ssm:*:*:parameter/rollcall/staging/token-secret" in text
    assert "log-group:/aws/lambda/rollcall-staging*" in text


def test_a_policy_variable_without_a_value_is_refused():
    env = stage_environment("prod")  # no account: bucket names unknown
    with pytest.raises(StageError, match="PHOTOS_BUCKET"):
        render_policy(env)


def test_the_rendered_project_carries_the_same_names_to_lambda_and_iam(tmp_path):
    env = dict(stage_environment("prod", account=ACCOUNT),
               SITE_ORIGIN="https://d111.cloudfront.net")
    deployed = tmp_path / "deployed"
    project = render_project("prod", env, out_dir=tmp_path / "project", deployed_dir=deployed)
    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert list(config["stages"]) == ["prod"]
    stage = config["stages"]["prod"]
    assert stage["environment_variables"] == env
    assert "rollcall" not in stage  # operator-only options never reach Lambda
    policy = json.loads((project / ".chalice" / "policy-prod.json").read_text())
    assert policy == render_policy(env)
    assert (project / "app.py").is_file() and (project / "chalicelib" / "settings.py").is_file()
    assert not (project / "ops").exists() and not (project / "tests").exists()
    assert (project / ".chalice" / "deployed").resolve() == deployed.resolve()

    digest = project_digest(project)
    assert project_digest(render_project("prod", env, out_dir=tmp_path / "project",
                                         deployed_dir=deployed)) == digest
    changed = dict(env, SITE_ORIGIN="https://d222.cloudfront.net")
    assert project_digest(render_project("prod", changed, out_dir=tmp_path / "project",
                                         deployed_dir=deployed)) != digest


def test_package_names_wait_for_terraform():
    env = stage_environment("prod", account=chalice_project.TERRAFORM_ACCOUNT)
    assert env["SITE_BUCKET"] == \
        "rollcall-prod-${data.aws_caller_identity.chalice.account_id}-site"
    assert "${data.aws_caller_identity" in json.dumps(render_policy(env))


def test_sts_is_what_gives_the_account(clean_env):
    from ops.stage_config import current_account
    with mock_aws():
        assert current_account(boto3.session.Session()) == ACCOUNT
