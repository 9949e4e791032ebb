"""Provisioning a deployed stage: the site behind CloudFront, its origin, the region.

moto plays CloudFront, ACM, S3, IAM, STS, DynamoDB, SNS and SSM; the face
collection (which moto lacks) is a stubbed client.
"""
import io
import json

import boto3
import pytest
from moto.moto_api import state_manager

from aws_stage_support import (ACCOUNT, REGION, clean_env, moto_world,  # noqa: F401
                               rekognition_stub, self_signed_certificate)
from ops import cdn
from ops.provision import (ABSENT, CREATED, DELETED, PENDING, UNCHANGED, UPDATED,
                           for_stage)
from ops.stage_config import StageError, check_site_origin


def provisioner(session, out=None, **collection):
    made = for_stage("prod", session=session, out=out)
    made.clients.register("rekognition", rekognition_stub(**collection))
    return made


def test_the_site_distribution_oac_and_bucket_policy_are_made_once(moto_world):
    first = provisioner(moto_world)
    first.run()
    made = {(kind, outcome) for kind, _, outcome in first.report}
    assert {("distribution", CREATED), ("origin-access", CREATED),
            ("bucket-policy", CREATED)} <= made

    out = io.StringIO()
    second = provisioner(moto_world, out=out, collection_exists=True)
    second.run()
    assert {outcome for _, _, outcome in second.report} == {UNCHANGED}, second.report
    assert "nothing to change" in out.getvalue()
    assert {k: second.distribution[k] for k in ("Id", "ARN", "DomainName")} == \
        {k: first.distribution[k] for k in ("Id", "ARN", "DomainName")}

    cloudfront = boto3.client("cloudfront", region_name=REGION)
    assert len(cloudfront.list_distributions()["DistributionList"]["Items"]) == 1
    oacs = cloudfront.list_origin_access_controls()["OriginAccessControlList"]["Items"]
    assert [(o["Name"], o["SigningBehavior"], o["OriginAccessControlOriginType"])
            for o in oacs] == [("rollcall-prod-site", "always", "s3")]


def test_the_distribution_serves_the_private_bucket_over_https_with_fitting_caches(
        moto_world):
    made = provisioner(moto_world)
    made.run()
    site_bucket = f"rollcall-prod-{ACCOUNT}-site"
    cloudfront = boto3.client("cloudfront", region_name=REGION)
    config = cloudfront.get_distribution_config(Id=made.distribution["Id"])[
        "DistributionConfig"]
    assert config["Enabled"] and config["DefaultRootObject"] == "index.html"
    [origin] = config["Origins"]["Items"]
    assert origin["DomainName"] == f"{site_bucket}.s3.{REGION}.amazonaws.com"
    default = config["DefaultCacheBehavior"]
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"
    assert default["CachePolicyId"] == cdn.CACHING_DISABLED  # index.html, config.js
    [assets] = config["CacheBehaviors"]["Items"]
    assert assets["PathPattern"] == "assets/*"
    assert assets["CachePolicyId"] == cdn.CACHING_OPTIMIZED
    assert assets["ViewerProtocolPolicy"] == "redirect-to-https"

    s3 = boto3.client("s3", region_name=REGION)
    policy = json.loads(s3.get_bucket_policy(Bucket=site_bucket)["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Action"] == "s3:GetObject"
    assert statement["Resource"] == f"arn:aws:s3:::{site_bucket}/*"
    assert statement["Condition"] == {
        "StringEquals": {"AWS:SourceArn": made.distribution["ARN"]}}
    block = s3.get_public_access_block(Bucket=site_bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4


def test_site_origin_follows_the_distribution_and_bucket_cors_allows_only_it(moto_world):
    made = provisioner(moto_world)
    made.run()
    origin = f"https://{made.distribution['DomainName']}"
    assert made.site_origin == origin and made.site_url == origin + "/"
    s3 = boto3.client("s3", region_name=REGION)
    for kind in ("photos", "videos"):
        [rule] = s3.get_bucket_cors(Bucket=f"rollcall-prod-{ACCOUNT}-{kind}")["CORSRules"]
        assert rule["AllowedOrigins"] == [origin]


def test_a_site_origin_the_stage_sets_wins(moto_world, clean_env):
    clean_env["SITE_ORIGIN"] = "https://attendance.school.ac.uk"
    made = provisioner(moto_world)
    made.run()
    assert made.site_origin == "https://attendance.school.ac.uk"
    [rule] = boto3.client("s3", region_name=REGION).get_bucket_cors(
        Bucket=f"rollcall-prod-{ACCOUNT}-photos")["CORSRules"]
    assert rule["AllowedOrigins"] == ["https://attendance.school.ac.uk"]


@pytest.mark.parametrize("origin", ["https://rollcall.example.org", "https://app.example.com",
                                    "http://attendance.school.ac.uk",
                                    "http://127.0.0.1:8000", "https://localhost",
                                    "https://attendance.school.ac.uk/site", ""])
def test_placeholder_or_unservable_origins_are_refused(origin):
    with pytest.raises(StageError, match="SITE_ORIGIN"):
        check_site_origin(origin)


def test_provisioning_refuses_the_placeholder_origin_before_making_anything(moto_world,
                                                                             clean_env):
    clean_env["SITE_ORIGIN"] = "https://rollcall.example.org"
    with pytest.raises(StageError, match="placeholder"):
        for_stage("prod", session=moto_world)
    assert boto3.client("s3", region_name=REGION).list_buckets()["Buckets"] == []


def test_a_real_origin_is_kept_as_given():
    assert check_site_origin("https://d1234.cloudfront.net/") == "https://d1234.cloudfront.net"


def test_a_drifted_distribution_is_put_back(moto_world):
    made = provisioner(moto_world)
    made.run()
    cloudfront = boto3.client("cloudfront", region_name=REGION)
    answer = cloudfront.get_distribution_config(Id=made.distribution["Id"])
    config = answer["DistributionConfig"]
    config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] = "allow-all"
    config["DefaultRootObject"] = ""
    cloudfront.update_distribution(Id=made.distribution["Id"], IfMatch=answer["ETag"],
                                   DistributionConfig=config)
    again = provisioner(moto_world, collection_exists=True)
    again.run()
    assert ("distribution", made.distribution["DomainName"], UPDATED) in again.report
    config = cloudfront.get_distribution_config(Id=made.distribution["Id"])[
        "DistributionConfig"]
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["DefaultRootObject"] == "index.html"


def _with_domain(monkeypatch, domain, arn):
    import ops.provision as provision_module
    monkeypatch.setattr(provision_module, "stage_options", lambda stage: {
        "site_domain": domain, "site_certificate_arn": arn})


def test_a_custom_domain_gets_its_certificate_and_becomes_the_origin(moto_world, monkeypatch):
    certificate, key = self_signed_certificate("attendance.school.ac.uk")
    acm = boto3.client("acm", region_name="us-east-1")
    arn = acm.import_certificate(Certificate=certificate, PrivateKey=key)["CertificateArn"]
    _with_domain(monkeypatch, "attendance.school.ac.uk", arn)
    made = provisioner(moto_world)
    made.run()
    assert made.site_origin == "https://attendance.school.ac.uk"
    assert made.site_url == "https://attendance.school.ac.uk/"
    config = boto3.client("cloudfront", region_name=REGION).get_distribution_config(
        Id=made.distribution["Id"])["DistributionConfig"]
    assert config["Aliases"]["Items"] == ["attendance.school.ac.uk"]
    assert config["ViewerCertificate"]["ACMCertificateArn"] == arn
    again = provisioner(moto_world, collection_exists=True)
    again.run()
    assert {outcome for _, _, outcome in again.report} == {UNCHANGED}


def test_a_custom_domain_without_a_usable_certificate_is_refused(moto_world, monkeypatch):
    acm = boto3.client("acm", region_name="us-east-1")
    pending = acm.request_certificate(DomainName="attendance.school.ac.uk",
                                      ValidationMethod="DNS")["CertificateArn"]
    certificate, key = self_signed_certificate("other.school.ac.uk")
    other = acm.import_certificate(Certificate=certificate, PrivateKey=key)["CertificateArn"]
    wrong_region = other.replace(":us-east-1:", f":{REGION}:")
    for arn, message in [("", "needs site_certificate_arn"), (pending, "not ISSUED"),
                         (other, "does not name"), (wrong_region, "must be in us-east-1")]:
        _with_domain(monkeypatch, "attendance.school.ac.uk", arn)
        with pytest.raises(StageError, match=message):
            provisioner(moto_world).run()
    assert boto3.client("cloudfront", region_name=REGION).list_distributions()[
        "DistributionList"].get("Items", []) == []


def test_no_region_stops_provisioning_with_a_clear_message(clean_env):
    del clean_env["AWS_REGION"], clean_env["AWS_DEFAULT_REGION"]
    with pytest.raises(StageError, match="no AWS region"):
        for_stage("prod", session=boto3.session.Session())


def test_aws_region_alone_is_enough(clean_env):
    del clean_env["AWS_DEFAULT_REGION"]
    clean_env["AWS_REGION"] = "eu-central-1"
    from ops.stage_config import session_region
    assert session_region(boto3.session.Session()) == "eu-central-1"


def test_a_profiles_region_is_used(clean_env, tmp_path):
    del clean_env["AWS_DEFAULT_REGION"], clean_env["AWS_REGION"]
    (tmp_path / "config").write_text("[default]\nregion = sa-east-1\n")
    clean_env["AWS_CONFIG_FILE"] = str(tmp_path / "config")
    from ops.stage_config import session_region
    assert session_region(boto3.session.Session()) == "sa-east-1"


def test_the_sessions_region_is_used_not_us_east_1(moto_world):
    session = boto3.session.Session(region_name="ap-southeast-2")
    made = for_stage("prod", session=session)
    made.clients.register("rekognition", rekognition_stub())
    made.run()
    s3 = boto3.client("s3", region_name="ap-southeast-2")
    location = s3.get_bucket_location(Bucket=f"rollcall-prod-{ACCOUNT}-videos")
    assert location["LocationConstraint"] == "ap-southeast-2"
    tables = boto3.client("dynamodb", region_name="ap-southeast-2").list_tables()
    assert "rollcall-prod-users" in tables["TableNames"]


def test_tables_use_dynamodbs_own_key_unless_the_stage_asks_for_kms(moto_world, monkeypatch):
    made = provisioner(moto_world)
    made.run()
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    table = dynamodb.describe_table(TableName="rollcall-prod-users")["Table"]
    assert "SSEDescription" not in table
    import ops.provision as provision_module
    monkeypatch.setattr(provision_module, "stage_options",
                        lambda stage: {"table_kms_encryption": True})
    for name in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=name)
    provisioner(moto_world, collection_exists=True).run()
    table = dynamodb.describe_table(TableName="rollcall-prod-users")["Table"]
    assert table["SSEDescription"]["SSEType"] == "KMS"


def test_destroy_removes_the_distribution_and_everything_else(moto_world):
    provisioner(moto_world).run()
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=f"rollcall-prod-{ACCOUNT}-site", Key="index.html", Body=b"<!doctype>")
    report = provisioner(moto_world, collection_exists=True, calls=0, delete=True).destroy()
    assert {outcome for _, _, outcome in report} == {DELETED}, report
    assert {kind for kind, _, _ in report} >= {"distribution", "origin-access", "bucket",
                                              "table", "collection", "topic", "role", "secret"}
    cloudfront = boto3.client("cloudfront", region_name=REGION)
    assert cloudfront.list_distributions()["DistributionList"].get("Items", []) == []
    assert cloudfront.list_origin_access_controls()["OriginAccessControlList"].get(
        "Items", []) == []
    assert s3.list_buckets()["Buckets"] == []
    assert boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"] == []
    again = provisioner(moto_world, collection_exists=True, calls=0)
    again.clients.register("rekognition", _absent_collection())
    assert {outcome for _, _, outcome in again.destroy()} == {ABSENT}


def _absent_collection():
    from botocore.stub import Stubber
    client = boto3.client("rekognition", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("delete_collection", "ResourceNotFoundException")
    stubber.activate()
    return client


def test_destroy_reports_a_distribution_still_disabling_and_finishes_later(moto_world):
    provisioner(moto_world).run()
    # A distribution being disabled stays InProgress for minutes on AWS.
    state_manager.set_transition("cloudfront::distribution",
                                 {"progression": "manual", "times": 1000})
    try:
        report = provisioner(moto_world, collection_exists=True, calls=0,
                             delete=True).destroy()
    finally:
        state_manager.unset_transition("cloudfront::distribution")
    pending = {kind for kind, _, outcome in report if outcome == PENDING}
    assert pending == {"distribution", "origin-access"}
    cloudfront = boto3.client("cloudfront", region_name=REGION)
    [item] = cloudfront.list_distributions()["DistributionList"]["Items"]
    assert item["Enabled"] is False
    later = provisioner(moto_world, collection_exists=True, calls=0)
    later.clients.register("rekognition", _absent_collection())
    report = later.destroy()
    assert ("distribution", item["DomainName"], DELETED) in report
    assert ("origin-access", "rollcall-prod-site", DELETED) in report
    assert cloudfront.list_distributions()["DistributionList"].get("Items", []) == []
