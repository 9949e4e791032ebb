"""Provisioning protects the data: point-in-time recovery on every table,
versions kept for photos and crops, and nothing changes on a second run."""
import io

import boto3
import pytest

from chalicelib.schema import table_specs
from ops.provision import (CREATED, UNCHANGED, UPDATED, Provisioner, StageError,
                           noncurrent_days_option)
from conftest import REGION, expect_new_collection, stubbed_rekognition


def _provision(settings, clients, new_collection=False, **options):
    rekognition, stubber = stubbed_rekognition()
    if new_collection:
        expect_new_collection(stubber, settings.face_collection)
    else:
        stubber.add_response("describe_collection", {"FaceCount": 0})
    clients.register("rekognition", rekognition)
    out = io.StringIO()
    report = Provisioner(settings, clients, out=out, **options).run()
    return report, out.getvalue()


def _noncurrent_days(s3, bucket):
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return {rule["Filter"]["Prefix"]: rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
            for rule in rules if "NoncurrentVersionExpiration" in rule}


def test_every_table_has_point_in_time_recovery(provisioned, settings):
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for name in table_specs(settings):
        backups = dynamodb.describe_continuous_backups(TableName=name)[
            "ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] \
            == "ENABLED", name


def test_photos_and_crops_keep_versions_for_the_stage_days(aws, settings, clients):
    _provision(settings, clients, new_collection=True, noncurrent_days=45)
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (settings.photos_bucket, settings.videos_bucket):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert _noncurrent_days(s3, settings.photos_bucket) == {"": 45}
    # Crops keep their versions for the stage's days; recordings only a day past
    # their retention sweep, and no current video is ever expired by S3.
    assert _noncurrent_days(s3, settings.videos_bucket) == {
        "evidence/": 45, "videos/": 1, "converted/": 1}
    videos = s3.get_bucket_lifecycle_configuration(Bucket=settings.videos_bucket)["Rules"]
    assert not any("Expiration" in rule for rule in videos)
    # The site bucket is published again from the repository: no versions.
    assert "Status" not in s3.get_bucket_versioning(Bucket=settings.site_bucket)


def test_a_deleted_photo_can_be_brought_back(provisioned, settings):
    s3 = boto3.client("s3", region_name=REGION)
    key = "photos/students/s1/a.jpg"
    s3.put_object(Bucket=settings.photos_bucket, Key=key, Body=b"photo")
    s3.delete_object(Bucket=settings.photos_bucket, Key=key)
    [version] = s3.list_object_versions(Bucket=settings.photos_bucket, Prefix=key)["Versions"]
    body = s3.get_object(Bucket=settings.photos_bucket, Key=key,
                         VersionId=version["VersionId"])["Body"].read()
    assert body == b"photo"


def test_turned_on_once_then_nothing_changes(aws, settings, clients):
    """An older stage (tables and buckets without protection) is brought up to
    date once; the run after that reports nothing to change."""
    _provision(settings, clients, new_collection=True, versioning=False)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for name in table_specs(settings):
        dynamodb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": False})
    report, _ = _provision(settings, clients)
    changed = {(kind, name) for kind, name, outcome in report if outcome == UPDATED}
    assert changed == {("table", name) for name in table_specs(settings)} | {
        ("bucket", settings.photos_bucket), ("bucket", settings.videos_bucket)}
    assert {outcome for _, _, outcome in report} <= {UPDATED, UNCHANGED}
    report, out = _provision(settings, clients)
    assert {outcome for _, _, outcome in report} == {UNCHANGED}
    assert "nothing to change" in out


def test_a_changed_day_count_updates_the_rules_once(provisioned, settings, clients):
    report, _ = _provision(settings, clients, noncurrent_days=7)
    assert ("bucket", settings.photos_bucket, UPDATED) in report
    s3 = boto3.client("s3", region_name=REGION)
    assert _noncurrent_days(s3, settings.photos_bucket) == {"": 7}
    report, _ = _provision(settings, clients, noncurrent_days=7)
    assert {outcome for _, _, outcome in report} == {UNCHANGED}


def test_the_day_count_option_is_checked():
    assert noncurrent_days_option({}) == 30
    assert noncurrent_days_option({"noncurrent_version_days": 90}) == 90
    for wrong in (0, -1, "30", 2.5, True, 5000):
        with pytest.raises(StageError, match="noncurrent_version_days"):
            noncurrent_days_option({"noncurrent_version_days": wrong})


def test_first_run_reports_created_only(aws, settings, clients):
    report, _ = _provision(settings, clients, new_collection=True)
    assert {outcome for _, _, outcome in report} == {CREATED}
