"""Provisioning makes every resource once, privately, and is idempotent."""
import io

import boto3

from chalicelib.schema import ATTENDANCE_BY_STUDENT_INDEX, table_specs
from ops.provision import (CREATED, Provisioner,
                                  UNCHANGED)
from tests.support.aws import REGION, expect_new_collection, stubbed_rekognition


def test_provisioning_twice_creates_once_then_changes_nothing(aws, settings, clients):
    rekognition, stubber = stubbed_rekognition()
    expect_new_collection(stubber, settings.face_collection)
    stubber.add_response("describe_collection", {"FaceCount": 0},
                         expected_params={"CollectionId": settings.face_collection})
    clients.register("rekognition", rekognition)

    first = Provisioner(settings, clients).run()
    assert {outcome for _, _, outcome in first} == {CREATED}
    assert {kind for kind, _, _ in first} == {"table", "bucket", "collection", "topic",
                                              "role", "secret", "queue"}
    out = io.StringIO()
    second = Provisioner(settings, clients, out=out).run()
    assert {outcome for _, _, outcome in second} == {UNCHANGED}
    assert len(second) == len(first)
    assert "nothing to change" in out.getvalue()
    stubber.assert_no_pending_responses()


def test_buckets_are_private_encrypted_and_cors_limited(provisioned, settings):
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (settings.photos_bucket, settings.videos_bucket):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4
        rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
        assert [rule["AllowedOrigins"] for rule in rules] == [[settings.site_origin]]
        encryption = s3.get_bucket_encryption(Bucket=bucket)
        assert encryption["ServerSideEncryptionConfiguration"]["Rules"]
    # The site bucket is private too: CloudFront reads it, browsers never do directly.
    block = s3.get_public_access_block(Bucket=settings.site_bucket)
    assert all(block["PublicAccessBlockConfiguration"].values())


def test_browsers_may_only_post_uploads_get_photos_and_put_video_parts(provisioned, settings):
    s3 = boto3.client("s3", region_name=REGION)
    [photos] = s3.get_bucket_cors(Bucket=settings.photos_bucket)["CORSRules"]
    assert sorted(photos["AllowedMethods"]) == ["GET", "POST"]
    assert not photos.get("ExposeHeaders")
    [videos] = s3.get_bucket_cors(Bucket=settings.videos_bucket)["CORSRules"]
    assert sorted(videos["AllowedMethods"]) == ["GET", "POST", "PUT"]
    assert videos["ExposeHeaders"] == ["ETag"]  # the page completes an upload with them
    assert videos["AllowedHeaders"] == ["Content-Type"]


def test_unused_photo_uploads_expire_but_registered_photos_do_not(provisioned, settings):
    s3 = boto3.client("s3", region_name=REGION)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=settings.photos_bucket)["Rules"]
    expiring = {rule["Filter"]["Prefix"]: rule["Expiration"]["Days"]
                for rule in rules if "Expiration" in rule}
    assert expiring == {"photos/uploads/": 1}
    for bucket in (settings.photos_bucket, settings.videos_bucket):
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert any(rule.get("AbortIncompleteMultipartUpload") for rule in rules)
    videos = s3.get_bucket_lifecycle_configuration(Bucket=settings.videos_bucket)["Rules"]
    assert not any("Expiration" in rule for rule in videos)


def test_a_drifted_cors_rule_is_put_back(provisioned, settings, clients):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_bucket_cors(Bucket=settings.photos_bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
    rekognition, stubber = stubbed_rekognition()
    stubber.add_response("describe_collection", {"FaceCount": 0})
    clients.register("rekognition", rekognition)
    report = Provisioner(settings, clients).run()
    assert ("bucket", settings.photos_bucket, "updated") in report
    rules = s3.get_bucket_cors(Bucket=settings.photos_bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == [settings.site_origin]


def test_tables_keys_and_history_index(provisioned, settings):
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    attendance = dynamodb.describe_table(TableName=settings.attendance_table)["Table"]
    assert [k["AttributeName"] for k in attendance["KeySchema"]] == ["session_id", "student_id"]
    index = attendance["GlobalSecondaryIndexes"][0]
    assert index["IndexName"] == ATTENDANCE_BY_STUDENT_INDEX
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["student_id", "session_id"]
    users = dynamodb.describe_table(TableName=settings.users_table)["Table"]
    assert users["KeySchema"] == [{"AttributeName": "email", "KeyType": "HASH"}]


def test_token_secret_is_a_secure_string_and_role_publishes_only(provisioned, settings):
    ssm = boto3.client("ssm", region_name=REGION)
    parameter = ssm.get_parameter(Name=settings.token_secret_parameter)["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert len(ssm.get_parameter(Name=settings.token_secret_parameter,
                                 WithDecryption=True)["Parameter"]["Value"]) >= 48
    iam = boto3.client("iam", region_name=REGION)
    role = iam.get_role(RoleName=settings.rekognition_role)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "rekognition.amazonaws.com"}
    policy = iam.get_role_policy(RoleName=settings.rekognition_role,
                                 PolicyName="publish-completion")["PolicyDocument"]
    assert policy["Statement"] == [{
        "Effect": "Allow", "Action": "sns:Publish",
        "Resource": f"arn:aws:sns:{REGION}:123456789012:{settings.completion_topic}"}]


def test_mediaconvert_role_reads_uploads_and_writes_converted_copies_only(provisioned,
                                                                          settings):
    assert settings.conversion_role
    iam = boto3.client("iam", region_name=REGION)
    role = iam.get_role(RoleName=settings.conversion_role)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "mediaconvert.amazonaws.com"}
    policy = iam.get_role_policy(RoleName=settings.conversion_role,
                                 PolicyName="convert-videos")["PolicyDocument"]
    assert policy["Statement"] == [
        {"Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{settings.videos_bucket}/videos/*"},
        {"Effect": "Allow", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{settings.videos_bucket}/converted/*"}]


def test_destroy_removes_everything_it_made_buckets_emptied_first(provisioned, settings,
                                                                    clients):
    s3 = boto3.client("s3", region_name=REGION)
    for i in range(3):
        s3.put_object(Bucket=settings.videos_bucket, Key=f"videos/s{i}/v.mp4", Body=b"x")
    rekognition, stubber = stubbed_rekognition()
    stubber.add_response("delete_collection", {"StatusCode": 200},
                         expected_params={"CollectionId": settings.face_collection})
    clients.register("rekognition", rekognition)
    report = Provisioner(settings, clients).destroy()
    assert {outcome for _, _, outcome in report} == {"deleted"}
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert not names & {settings.photos_bucket, settings.videos_bucket, settings.site_bucket}
    tables = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]
    assert tables == []
    assert boto3.client("sns", region_name=REGION).list_topics()["Topics"] == []
    assert boto3.client("iam", region_name=REGION).list_roles()["Roles"] == []
    stubber.assert_no_pending_responses()


def test_an_index_missing_from_an_existing_table_is_added_once(provisioned, settings, clients):
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    # A sessions table as it was before the list indexes existed.
    dynamodb.delete_table(TableName=settings.sessions_table)
    dynamodb.create_table(TableName=settings.sessions_table, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "session_id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "session_id",
                                                 "AttributeType": "S"}])
    spec = table_specs(settings)[settings.sessions_table]
    provisioner = Provisioner(settings, clients)
    provisioner.ensure_table(settings.sessions_table, spec)
    assert provisioner.report == [("table", settings.sessions_table, "updated")]
    indexes = dynamodb.describe_table(TableName=settings.sessions_table)["Table"][
        "GlobalSecondaryIndexes"]
    assert sorted(i["IndexName"] for i in indexes) == sorted(spec["indexes"])
    again = Provisioner(settings, clients)
    again.ensure_table(settings.sessions_table, spec)
    assert again.report == [("table", settings.sessions_table, "unchanged")]


def test_every_table_the_schema_lists_is_made_even_one_added_later(aws, settings, clients,
                                                                  monkeypatch):
    import ops.provision as provision_module
    from chalicelib import schema

    def with_classes(current):
        specs = schema.table_specs(current)
        specs["rollcall-dev-classes"] = {
            "keys": [("class_id", "HASH", "S")],
            "indexes": {"by_teacher": [("teacher", "HASH", "S"), ("class_id", "RANGE", "S")]}}
        return specs
    monkeypatch.setattr(provision_module, "table_specs", with_classes)
    rekognition, stubber = stubbed_rekognition()
    expect_new_collection(stubber, settings.face_collection)
    clients.register("rekognition", rekognition)
    report = Provisioner(settings, clients).run()
    assert ("table", "rollcall-dev-classes", CREATED) in report
    table = boto3.client("dynamodb", region_name=REGION).describe_table(
        TableName="rollcall-dev-classes")["Table"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "by_teacher"
    assert "SSEDescription" not in table  # DynamoDB's own key unless a stage asks for KMS


def test_sessions_stored_before_the_sparse_indexes_are_backfilled_into_them(
        provisioned, settings, clients):
    """An older stage's sessions table (the list indexes only) gets the watchdog's and
    the retention sweep's indexes, and its sessions the attributes that put the live
    and the kept ones in them; a second run changes nothing."""
    from chalicelib.sessions import SessionStore, VIDEO_KEPT, CROPS_KEPT
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    spec = table_specs(settings)[settings.sessions_table]
    old_spec = {"keys": spec["keys"], "indexes": {name: keys for name, keys in
                                                  spec["indexes"].items()
                                                  if name in ("by_class", "by_day")}}
    dynamodb.delete_table(TableName=settings.sessions_table)
    Provisioner(settings, clients).ensure_table(settings.sessions_table, old_spec)
    table = clients.table(settings.sessions_table)
    stored = {"a" * 32: {"status": "PROCESSING", "updated_at": "2026-01-02T00:00:00+00:00"},
              "b" * 32: {"status": "CONVERTING"},
              "c" * 32: {"status": "COMPLETED", "completed_at": "2026-01-01T10:00:00+00:00",
                         "evidence_status": "ready"},
              "d" * 32: {"status": "COMPLETED", "updated_at": "2025-12-01T10:00:00+00:00",
                         "video_deleted_at": "2026-01-01T00:00:00+00:00",
                         "evidence_status": "deleted"},
              "e" * 32: {"status": "FAILED"}, "f" * 32: {"status": "AWAITING_UPLOAD"}}
    for sid, fields in stored.items():
        table.put_item(Item=dict(fields, session_id=sid, date="2026-01-01",
                                 created_at="2026-01-01T09:00:00+00:00"))
    provisioner = Provisioner(settings, clients)
    provisioner.ensure_table(settings.sessions_table, spec)
    provisioner.backfill()
    assert ("items", f"{settings.sessions_table} (6)", "updated") in provisioner.report
    store = SessionStore(table)
    assert sorted(i["session_id"] for i in store.live()) == ["a" * 32, "b" * 32]
    assert [i["session_id"] for i in store.kept(VIDEO_KEPT, "9999")] == ["c" * 32]
    assert [i["session_id"] for i in store.kept(CROPS_KEPT, "9999")] == ["c" * 32]
    assert list(store.kept(VIDEO_KEPT, "2026-01-01T10:00:00+00:00")) == []  # not before
    again = Provisioner(settings, clients)
    again.backfill()
    assert again.report == []


def test_the_backfill_leaves_a_session_that_changed_meanwhile_to_the_app(
        provisioned, settings, clients, monkeypatch):
    """Its write holds only if the session still has what it was computed from: a
    session that completed between the read and the write is not marked live."""
    from ops import provision as provision_module
    table = clients.table(settings.sessions_table)
    sid = "a" * 32
    table.put_item(Item={"session_id": sid, "status": "PROCESSING", "date": "2026-01-01",
                         "created_at": "2026-01-01T09:00:00+00:00"})
    real_scan = provision_module.scan_all

    def scan_then_complete(scanned):
        items = list(real_scan(scanned))
        table.update_item(Key={"session_id": sid}, UpdateExpression="SET #s = :done",
                          ExpressionAttributeNames={"#s": "status"},
                          ExpressionAttributeValues={":done": "COMPLETED"})
        return items
    monkeypatch.setattr(provision_module, "scan_all", scan_then_complete)
    Provisioner(settings, clients).backfill()
    assert "live" not in table.get_item(Key={"session_id": sid})["Item"]
