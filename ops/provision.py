"""Create (idempotently) every resource a stage needs.

``python -m ops.provision --stage prod`` makes the DynamoDB tables, the
private buckets, the CloudFront distribution that serves the site bucket
(with its origin access control and the bucket policy that lets only it
read), the face collection, the completion topic with the role Rekognition
publishes through, and the token secret. Each step looks before it acts, so a
second run changes nothing and says so. Names come from the stage (see
:mod:`ops.stage_config`); the site's origin, unless the stage sets
``SITE_ORIGIN``, is the distribution's (or its custom domain's), and the
buckets' CORS is set from it in the same run.

On the one-machine stack (``AWS_ENDPOINT_URL`` set) there is no CloudFront:
the local site server serves the site and sets ``SITE_ORIGIN`` itself.
"""
import argparse
import dataclasses
import json
import os
import secrets
import sys
import time

from botocore.exceptions import ClientError

from chalicelib.clients import ClientFactory
from chalicelib.schema import table_specs
from chalicelib.settings import load_settings
from ops import cdn
from ops.scanning import scan_all
from ops.stage_config import (StageError, apply_stage_environment, aws_session,
                              check_site_origin, configured_environment, current_account,
                              needs_account, stage_options)

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
DELETED, ABSENT = "deleted", "absent"
#: Destroy could not remove it yet (a distribution must finish disabling first).
PENDING = "pending"
#: Days an overwritten or deleted photo or crop stays restorable (stage option
#: ``noncurrent_version_days``).
DEFAULT_NONCURRENT_DAYS = 30
#: Days a deleted video's bytes may outlive its retention sweep: S3's smallest
#: lifecycle step, so versioning the bucket (for the crops beside the videos)
#: does not keep biometric recordings longer than their rules say.
VIDEO_NONCURRENT_DAYS = 1
#: Prefixes of the videos bucket and how long their noncurrent versions stay:
#: recordings and converted copies go after a day, face crops after the stage's days.
VIDEO_PREFIXES = ("videos/", "converted/")
CROP_PREFIX = "evidence/"

def _error_code(error):
    return error.response["Error"]["Code"]


def _index_request(index_name, keys):
    return {"IndexName": index_name,
            "KeySchema": [{"AttributeName": a, "KeyType": t} for a, t, _ in keys],
            "Projection": {"ProjectionType": "ALL"}}


def table_specs_keys(settings, table_name):
    return [attr for attr, _, _ in table_specs(settings)[table_name]["keys"]]


def migrations(settings):
    """Table name -> (the index attributes an item should hold, None for one it
    must not hold; the attributes those are computed from). See :meth:`backfill`."""
    from chalicelib.sessions import stored_index_attributes as session_keys
    from chalicelib.students import index_attributes as student_keys
    from chalicelib.users import index_attributes as user_keys
    return {settings.users_table: (user_keys, ()),
            settings.students_table: (student_keys, ("full_name",)),
            settings.sessions_table: (session_keys, (
                "status", "updated_at", "completed_at", "video_deleted_at", "evidence_status",
                "date", "created_at", "class_id"))}


class Provisioner:
    """Makes a stage's resources; :attr:`site_origin` is the origin CORS allows.

    ``cloudfront``: serve the site bucket through a distribution (AWS);
    ``site_origin``: the origin the stage sets, or None to take the
    distribution's; ``site_domain``/``certificate_arn``: a custom domain for
    the distribution; ``table_kms``: encrypt tables with a KMS key rather
    than DynamoDB's default AWS-owned key (KMS charges per request);
    ``versioning``: keep overwritten and deleted photos and crops as
    noncurrent versions for ``noncurrent_days`` (AWS; the one-machine stack's
    moto never expires them, and ``make backup`` protects it instead).

    Every table gets point-in-time recovery (35 days of restorable history,
    see :mod:`ops.restore`); turning it on for an existing table reports the
    table ``updated``.
    """

    def __init__(self, settings, clients, out=None, *, cloudfront=False, site_origin=None,
                 site_domain="", certificate_arn="", table_kms=False, versioning=True,
                 noncurrent_days=DEFAULT_NONCURRENT_DAYS):
        self.settings = settings
        self.clients = clients
        self._out = out
        self.report = []
        self.cloudfront = cloudfront
        self.site_domain = site_domain
        self.certificate_arn = certificate_arn
        self.table_kms = table_kms
        self.versioning = versioning
        self.noncurrent_days = int(noncurrent_days)
        self.site_origin = site_origin or (None if cloudfront else settings.site_origin)
        #: The distribution serving the site: {"Id", "ARN", "DomainName", "Status"}.
        self.distribution = None

    def _note(self, kind, name, outcome):
        self.report.append((kind, name, outcome))
        if self._out:
            print(f"{outcome:>9}  {kind:<13} {name}", file=self._out)

    @property
    def changed(self):
        return [entry for entry in self.report if entry[2] != UNCHANGED]

    @property
    def site_url(self):
        """Where browsers open the site (``None`` without a distribution)."""
        if self.site_domain:
            return f"https://{self.site_domain}/"
        if self.distribution:
            return f"https://{self.distribution['DomainName']}/"
        return None

    def run(self):
        for name, spec in table_specs(self.settings).items():
            self.ensure_table(name, spec)
        self.backfill()
        if self.settings.site_bucket:
            self.ensure_bucket(self.settings.site_bucket, cors=False)
            if self.cloudfront:
                self.ensure_site_distribution()
        if self.site_origin is None:
            raise StageError("the site's origin is unknown: set SITE_ORIGIN for the stage or "
                             "give it a SITE_BUCKET for CloudFront to serve")
        for bucket in (self.settings.photos_bucket, self.settings.videos_bucket):
            self.ensure_bucket(bucket)
        self.ensure_collection(self.settings.face_collection)
        if self.settings.completion_topic:
            topic_arn = self.ensure_topic(self.settings.completion_topic)
            if self.settings.rekognition_role:
                self.ensure_rekognition_role(self.settings.rekognition_role, topic_arn)
        if self.settings.conversion_role:
            self.ensure_conversion_role(self.settings.conversion_role)
        if self.settings.evidence_queue:
            self.ensure_queue(self.settings.evidence_queue)
        self.ensure_token_secret(self.settings.token_secret_parameter)
        if self._out:
            changed = sum(1 for _, _, outcome in self.report if outcome != UNCHANGED)
            print("nothing to change: everything was already in place" if not changed
                  else f"{changed} change(s) made", file=self._out)
        return self.report

    # -- DynamoDB -------------------------------------------------------------
    def ensure_table(self, name, spec):
        """The table with its indexes: made if missing; an index missing from an
        existing table is added (one at a time, as DynamoDB allows) and waited for."""
        dynamodb = self.clients.client("dynamodb")
        try:
            current = dynamodb.describe_table(TableName=name)["Table"]
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
            current = None
        if current is not None:
            have = {index["IndexName"] for index in current.get("GlobalSecondaryIndexes", [])}
            missing = [(n, keys) for n, keys in spec.get("indexes", {}).items() if n not in have]
            for index_name, keys in missing:
                dynamodb.update_table(
                    TableName=name,
                    AttributeDefinitions=[{"AttributeName": a, "AttributeType": k}
                                          for a, _, k in keys],
                    GlobalSecondaryIndexUpdates=[{"Create": _index_request(index_name, keys)}])
                self._wait_for_index(dynamodb, name, index_name)
            recovery = self.ensure_point_in_time_recovery(name)
            self._note("table", name, UPDATED if missing or recovery else UNCHANGED)
            return
        attributes = {attr: kind for attr, _, kind in spec["keys"]}
        request = {
            "TableName": name,
            "KeySchema": [{"AttributeName": a, "KeyType": t} for a, t, _ in spec["keys"]],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if self.table_kms:
            # Without it DynamoDB still encrypts at rest, with a key it owns (free).
            request["SSESpecification"] = {"Enabled": True, "SSEType": "KMS"}
        indexes = spec.get("indexes", {})
        if indexes:
            request["GlobalSecondaryIndexes"] = []
            for index_name, keys in indexes.items():
                attributes.update({attr: kind for attr, _, kind in keys})
                request["GlobalSecondaryIndexes"].append(_index_request(index_name, keys))
        request["AttributeDefinitions"] = [
            {"AttributeName": a, "AttributeType": k} for a, k in attributes.items()]
        dynamodb.create_table(**request)
        dynamodb.get_waiter("table_exists").wait(TableName=name,
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        self.ensure_point_in_time_recovery(name)
        self._note("table", name, CREATED)

    def ensure_point_in_time_recovery(self, name):
        """Point-in-time recovery on ``name``; True if this call turned it on."""
        dynamodb = self.clients.client("dynamodb")
        backups = dynamodb.describe_continuous_backups(TableName=name)[
            "ContinuousBackupsDescription"]
        status = backups.get("PointInTimeRecoveryDescription", {}).get(
            "PointInTimeRecoveryStatus")
        if status == "ENABLED":
            return False
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
        return True

    def _wait_for_index(self, dynamodb, table, index_name, attempts=600, delay=1.0):
        for _ in range(attempts):
            indexes = dynamodb.describe_table(TableName=table)["Table"].get(
                "GlobalSecondaryIndexes", [])
            status = next((i.get("IndexStatus") for i in indexes
                           if i["IndexName"] == index_name), None)
            if status in (None, "ACTIVE"):
                return
            time.sleep(delay)
        raise RuntimeError(f"index {index_name} of {table} did not become active")

    def backfill(self):
        """Give items written before an index existed its attributes.

        Items without them are invisible to the paged lists and to the sparse
        indexes the scheduled functions read (a live session, a video still
        kept); this scan (an operator's, never a request's) sets what is
        missing and removes what a sparse index must not hold, and a second
        run finds nothing to do. Each write holds only if the item still has
        what it was computed from (the app may be writing meanwhile); one that
        changed is left to the app's own write, or to the next run.
        """
        from boto3.dynamodb.conditions import Attr
        for table_name, (keys_of, sources) in migrations(self.settings).items():
            table = self.clients.table(table_name)
            changed = 0
            for item in scan_all(table):
                wanted = keys_of(item)
                missing = {k: v for k, v in wanted.items() if v is not None and item.get(k) != v}
                extra = [k for k, v in wanted.items() if v is None and k in item]
                if not missing and not extra:
                    continue
                key = {k: item[k] for k in table_specs_keys(self.settings, table_name)}
                clauses = []
                if missing:
                    clauses.append("SET " + ", ".join(f"#{k} = :{k}" for k in missing))
                if extra:
                    clauses.append("REMOVE " + ", ".join(f"#{k}" for k in extra))
                unchanged = Attr(next(iter(key))).exists()
                for name in sources:
                    if name not in item:
                        unchanged &= Attr(name).not_exists()
                    elif item[name] is None:
                        unchanged &= Attr(name).attribute_type("NULL")
                    else:
                        unchanged &= Attr(name).eq(item[name])
                request = {"Key": key, "UpdateExpression": " ".join(clauses),
                           "ConditionExpression": unchanged,
                           "ExpressionAttributeNames": {f"#{k}": k for k in [*missing, *extra]}}
                if missing:
                    request["ExpressionAttributeValues"] = {f":{k}": v
                                                            for k, v in missing.items()}
                try:
                    table.update_item(**request)
                except ClientError as error:
                    if _error_code(error) != "ConditionalCheckFailedException":
                        raise
                    continue
                changed += 1
            if changed:  # only worth a line when an older table was brought up to date
                self._note("items", f"{table_name} ({changed})", UPDATED)

    # -- S3 ---------------------------------------------------------------------
    def _cors_rules(self, name):
        """What the site's browser does to a bucket, and nothing more: POST for the
        presigned uploads, GET for presigned photo links, and on the videos bucket
        PUT for the parts of resumable uploads, whose ETag the page must read."""
        videos = name == self.settings.videos_bucket
        rule = {"AllowedOrigins": [self.site_origin],
                "AllowedMethods": ["GET", "POST", "PUT"] if videos else ["GET", "POST"],
                "AllowedHeaders": ["Content-Type"], "MaxAgeSeconds": 3000}
        if videos:
            rule["ExposeHeaders"] = ["ETag"]
        return [rule]

    def ensure_bucket(self, name, cors=True):
        """A private, encrypted bucket; browser uploads allowed from the site only."""
        s3 = self.clients.client("s3")
        outcome = UNCHANGED
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as error:
            if _error_code(error) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            request = {"Bucket": name}
            if self.settings.region != "us-east-1":
                request["CreateBucketConfiguration"] = {
                    "LocationConstraint": self.settings.region}
            s3.create_bucket(**request)
            outcome = CREATED
        block_all = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                     "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        try:
            current = s3.get_public_access_block(Bucket=name)[
                "PublicAccessBlockConfiguration"]
        except ClientError:
            current = None
        if current != block_all:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block_all)
            outcome = outcome if outcome == CREATED else UPDATED
        try:
            current_cors = s3.get_bucket_cors(Bucket=name)["CORSRules"]
            current_cors = [{k: v for k, v in rule.items() if k != "ID"}
                            for rule in current_cors]
        except ClientError:
            current_cors = None
        if cors and current_cors != self._cors_rules(name):
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": self._cors_rules(name)})
            outcome = outcome if outcome == CREATED else UPDATED
        if outcome == CREATED:
            # Encryption at rest.
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        if self._versioned(name):
            status = s3.get_bucket_versioning(Bucket=name).get("Status")
            if status != "Enabled":
                s3.put_bucket_versioning(Bucket=name,
                                         VersioningConfiguration={"Status": "Enabled"})
                outcome = outcome if outcome == CREATED else UPDATED
        rules = self._lifecycle_rules(name)
        try:
            current = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        except ClientError:
            current = []
        if _rule_digest(current) != _rule_digest(rules):
            s3.put_bucket_lifecycle_configuration(Bucket=name,
                                                  LifecycleConfiguration={"Rules": rules})
            outcome = outcome if outcome == CREATED else UPDATED
        self._note("bucket", name, outcome)

    def _lifecycle_rules(self, name):
        """No half-finished multipart uploads kept; photos never used go after a day.

        A browser that uploads a photo and then gives up (or whose registration
        is refused) leaves it under ``photos/uploads/``; a person's photos live
        under ``photos/students/`` and are never expired.
        """
        rules = [{"ID": "abort-incomplete-uploads", "Status": "Enabled",
                  "Filter": {"Prefix": ""},
                  "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]
        if name == self.settings.photos_bucket:
            rules.append({"ID": "expire-unused-photo-uploads", "Status": "Enabled",
                          "Filter": {"Prefix": "photos/uploads/"},
                          "Expiration": {"Days": 1}})
        if not self._versioned(name):
            return rules
        if name == self.settings.photos_bucket:
            rules.append(_noncurrent("expire-old-photo-versions", "", self.noncurrent_days))
        else:
            # Versioning is per bucket; the recordings beside the crops keep
            # their retention (the sweep deletes them; a day later so do S3's copies).
            for prefix in VIDEO_PREFIXES:
                rules.append(_noncurrent(f"expire-old-{prefix.strip('/')}-versions", prefix,
                                         VIDEO_NONCURRENT_DAYS))
            rules.append(_noncurrent("expire-old-crop-versions", CROP_PREFIX,
                                     self.noncurrent_days))
        return rules

    def _versioned(self, name):
        """The photos and videos buckets (people's photos, evidence crops) keep versions."""
        return self.versioning and name in (self.settings.photos_bucket,
                                            self.settings.videos_bucket)

    # -- CloudFront -------------------------------------------------------------
    def ensure_site_distribution(self):
        """The distribution serving the site bucket, its OAC and the bucket policy.

        Sets :attr:`distribution`, and :attr:`site_origin` when the stage
        set none: the custom domain's HTTPS origin, else the distribution's.
        """
        stage, bucket = self.settings.stage, self.settings.site_bucket
        if self.site_domain:
            self.check_certificate()
        oac_id = self.ensure_origin_access_control(cdn.oac_name(stage))
        cloudfront = self.clients.client("cloudfront")
        found = self._find_distribution()
        desired = cdn.distribution_config(stage, bucket, self.settings.region, oac_id,
                                          # Found by its origin, never by this: unique
                                          # so a stage made again after a destroy works.
                                          caller_reference=f"rollcall-{stage}-site-"
                                          + secrets.token_hex(8),
                                          domain=self.site_domain,
                                          certificate_arn=self.certificate_arn)
        if found is None:
            created = cloudfront.create_distribution(DistributionConfig=desired)["Distribution"]
            self.distribution = {k: created[k] for k in ("Id", "ARN", "DomainName", "Status")}
            self._note("distribution", created["DomainName"], CREATED)
        else:
            self.distribution = {k: found[k] for k in ("Id", "ARN", "DomainName", "Status")}
            answer = cloudfront.get_distribution_config(Id=found["Id"])
            current = answer["DistributionConfig"]
            if cdn.differs(current, desired):
                merged = dict(current, **{k: v for k, v in desired.items()
                                          if k != "CallerReference"})
                cloudfront.update_distribution(Id=found["Id"], IfMatch=answer["ETag"],
                                               DistributionConfig=merged)
                self._note("distribution", found["DomainName"], UPDATED)
            else:
                self._note("distribution", found["DomainName"], UNCHANGED)
        self.ensure_site_bucket_policy(bucket, self.distribution["ARN"])
        if self.site_origin is None:
            self.site_origin = self.site_url.rstrip("/")
        return self.distribution

    def _find_distribution(self):
        """The distribution whose origin is the site bucket, if there is one."""
        origin = cdn.bucket_origin_domain(self.settings.site_bucket, self.settings.region)
        paginator = self.clients.client("cloudfront").get_paginator("list_distributions")
        for page in paginator.paginate():
            for item in page["DistributionList"].get("Items", []) or []:
                domains = [o.get("DomainName") for o in item["Origins"].get("Items", [])]
                if origin in domains:
                    return item
        return None

    def ensure_origin_access_control(self, name):
        cloudfront = self.clients.client("cloudfront")
        paginator = cloudfront.get_paginator("list_origin_access_controls")
        for page in paginator.paginate():
            for item in page["OriginAccessControlList"].get("Items", []) or []:
                if item["Name"] == name:
                    self._note("origin-access", name, UNCHANGED)
                    return item["Id"]
        created = cloudfront.create_origin_access_control(OriginAccessControlConfig={
            "Name": name, "Description": "Rollcall site bucket, read by CloudFront only",
            "SigningProtocol": "sigv4", "SigningBehavior": "always",
            "OriginAccessControlOriginType": "s3"})
        self._note("origin-access", name, CREATED)
        return created["OriginAccessControl"]["Id"]

    def ensure_site_bucket_policy(self, bucket, distribution_arn):
        s3 = self.clients.client("s3")
        wanted = cdn.bucket_policy(bucket, distribution_arn)
        try:
            current = s3.get_bucket_policy(Bucket=bucket)["Policy"]
        except ClientError as error:
            if _error_code(error) != "NoSuchBucketPolicy":
                raise
            current = None
        if cdn.same_policy(current, wanted):
            self._note("bucket-policy", bucket, UNCHANGED)
            return
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(wanted))
        self._note("bucket-policy", bucket, CREATED if current is None else UPDATED)

    def check_certificate(self):
        """The custom domain's certificate exists in us-east-1, is issued, and names it."""
        arn = self.certificate_arn
        if not arn:
            raise StageError(f"site_domain {self.site_domain!r} needs site_certificate_arn "
                             "(an ACM certificate in us-east-1 for that name)")
        if f":acm:{cdn.CERTIFICATE_REGION}:" not in arn:
            raise StageError(f"certificate {arn} must be in {cdn.CERTIFICATE_REGION}: "
                             "CloudFront uses certificates from that region only")
        acm = self.clients.client("acm", region=cdn.CERTIFICATE_REGION)
        try:
            certificate = acm.describe_certificate(CertificateArn=arn)["Certificate"]
        except ClientError as error:
            raise StageError(f"certificate {arn}: {error}") from error
        if certificate.get("Status") != "ISSUED":
            raise StageError(f"certificate {arn} is {certificate.get('Status')}, not ISSUED "
                             "(for DNS validation, add the CNAME record ACM shows)")
        if not cdn.certificate_covers(certificate, self.site_domain):
            raise StageError(f"certificate {arn} does not name {self.site_domain}")

    # -- Rekognition ------------------------------------------------------------
    def ensure_collection(self, collection_id):
        rekognition = self.clients.client("rekognition")
        try:
            rekognition.describe_collection(CollectionId=collection_id)
            self._note("collection", collection_id, UNCHANGED)
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
            rekognition.create_collection(CollectionId=collection_id)
            self._note("collection", collection_id, CREATED)

    # -- SNS + IAM --------------------------------------------------------------
    def ensure_topic(self, name):
        sns = self.clients.client("sns")
        # CreateTopic is idempotent and answers the ARN; look first to report truly.
        existing = None
        for page in sns.get_paginator("list_topics").paginate():
            for topic in page["Topics"]:
                if topic["TopicArn"].rsplit(":", 1)[-1] == name:
                    existing = topic["TopicArn"]
        if existing:
            self._note("topic", name, UNCHANGED)
            return existing
        arn = sns.create_topic(Name=name)["TopicArn"]
        self._note("topic", name, CREATED)
        return arn

    def ensure_rekognition_role(self, role_name, topic_arn):
        """The role Rekognition assumes to publish job completion to the topic."""
        publish = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}]}
        self._ensure_service_role(role_name, "rekognition.amazonaws.com", "publish-completion",
                                  publish, "Lets Rekognition publish Rollcall job completion")

    def ensure_conversion_role(self, role_name):
        """The role MediaConvert assumes: read uploads, write the converted copies."""
        bucket = self.settings.videos_bucket
        access = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::{bucket}/videos/*"},
            {"Effect": "Allow", "Action": "s3:PutObject",
             "Resource": f"arn:aws:s3:::{bucket}/converted/*"}]}
        self._ensure_service_role(role_name, "mediaconvert.amazonaws.com", "convert-videos",
                                  access, "Lets MediaConvert convert Rollcall recordings")

    def _ensure_service_role(self, role_name, service, policy_name, policy, description):
        iam = self.clients.client("iam")
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
        outcome = UNCHANGED
        try:
            iam.get_role(RoleName=role_name)
        except ClientError as error:
            if _error_code(error) != "NoSuchEntity":
                raise
            iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust),
                            Description=description)
            outcome = CREATED
        try:
            current = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)
            current = current["PolicyDocument"]
            if isinstance(current, str):
                current = json.loads(current)
        except ClientError:
            current = None
        if current != policy:
            iam.put_role_policy(RoleName=role_name, PolicyName=policy_name,
                                PolicyDocument=json.dumps(policy))
            outcome = outcome if outcome == CREATED else UPDATED
        self._note("role", role_name, outcome)

    # -- SSM ----------------------------------------------------------------------
    # -- SQS ----------------------------------------------------------------------
    #: The evidence function may run this long (config.json's cut_evidence timeout is
    #: 300 s); a message stays hidden longer than that while it runs.
    QUEUE_VISIBILITY_SECONDS = 360
    #: Deliveries before a message that keeps failing is parked on ``<queue>-failed``.
    QUEUE_MAX_RECEIVES = 3

    def ensure_queue(self, name):
        """The evidence queue (the completion's hand-off), with a dead-letter queue."""
        sqs = self.clients.client("sqs")
        try:
            sqs.get_queue_url(QueueName=name)
            self._note("queue", name, UNCHANGED)
            return
        except ClientError as error:
            if _error_code(error) not in ("AWS.SimpleQueueService.NonExistentQueue",
                                          "QueueDoesNotExist"):
                raise
        dead = sqs.create_queue(QueueName=name + "-failed", Attributes={
            "MessageRetentionPeriod": str(14 * 24 * 3600)})["QueueUrl"]
        dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sqs.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": str(self.QUEUE_VISIBILITY_SECONDS),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn,
                                         "maxReceiveCount": self.QUEUE_MAX_RECEIVES})})
        self._note("queue", name, CREATED)

    def ensure_token_secret(self, name):
        ssm = self.clients.client("ssm")
        try:
            ssm.get_parameter(Name=name)
            self._note("secret", name, UNCHANGED)
        except ClientError as error:
            if _error_code(error) != "ParameterNotFound":
                raise
            ssm.put_parameter(Name=name, Type="SecureString", Overwrite=False,
                              Value=secrets.token_urlsafe(48),
                              Description="Rollcall sign-in token signing key")
            self._note("secret", name, CREATED)

    # -- teardown -------------------------------------------------------------------
    def destroy(self):
        """Remove everything :meth:`run` made, emptying buckets first.

        A distribution must be disabled, and done deploying that, before it
        can be deleted (minutes on AWS): until then it and its origin access
        control are reported ``pending`` and a later run deletes them.
        """
        if self.cloudfront and self.settings.site_bucket:
            self._destroy_distribution()
        s3 = self.clients.client("s3")
        buckets = [self.settings.photos_bucket, self.settings.videos_bucket]
        if self.settings.site_bucket:
            buckets.append(self.settings.site_bucket)
        for bucket in buckets:
            try:
                paginator = s3.get_paginator("list_object_versions")
                for page in paginator.paginate(Bucket=bucket):
                    objects = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                               for o in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                    for start in range(0, len(objects), 1000):
                        s3.delete_objects(Bucket=bucket, Delete={
                            "Objects": objects[start:start + 1000], "Quiet": True})
                s3.delete_bucket(Bucket=bucket)
                self._note("bucket", bucket, DELETED)
            except ClientError as error:
                if _error_code(error) != "NoSuchBucket":
                    raise
                self._note("bucket", bucket, ABSENT)
        dynamodb = self.clients.client("dynamodb")
        for name in table_specs(self.settings):
            try:
                dynamodb.delete_table(TableName=name)
                self._note("table", name, DELETED)
            except ClientError as error:
                if _error_code(error) != "ResourceNotFoundException":
                    raise
                self._note("table", name, ABSENT)
        self._forget(self.clients.client("rekognition").delete_collection, "collection",
                     self.settings.face_collection, "ResourceNotFoundException",
                     CollectionId=self.settings.face_collection)
        iam = self.clients.client("iam")
        for role, policy in ((self.settings.rekognition_role, "publish-completion"),
                             (self.settings.conversion_role, "convert-videos")):
            if not role:
                continue
            try:
                iam.delete_role_policy(RoleName=role, PolicyName=policy)
            except ClientError as error:
                if _error_code(error) != "NoSuchEntity":
                    raise
            self._forget(iam.delete_role, "role", role, "NoSuchEntity", RoleName=role)
        if self.settings.completion_topic:
            sns = self.clients.client("sns")
            arns = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate()
                    for t in page["Topics"]
                    if t["TopicArn"].rsplit(":", 1)[-1] == self.settings.completion_topic]
            for arn in arns:
                sns.delete_topic(TopicArn=arn)
            self._note("topic", self.settings.completion_topic, DELETED if arns else ABSENT)
        if self.settings.evidence_queue:
            sqs = self.clients.client("sqs")
            for name in (self.settings.evidence_queue, self.settings.evidence_queue + "-failed"):
                try:
                    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
                    self._note("queue", name, DELETED)
                except ClientError as error:
                    if _error_code(error) not in ("AWS.SimpleQueueService.NonExistentQueue",
                                                  "QueueDoesNotExist"):
                        raise
                    self._note("queue", name, ABSENT)
        self._forget(self.clients.client("ssm").delete_parameter, "secret",
                     self.settings.token_secret_parameter, "ParameterNotFound",
                     Name=self.settings.token_secret_parameter)
        return self.report

    def _destroy_distribution(self):
        cloudfront = self.clients.client("cloudfront")
        found = self._find_distribution()
        if found is None:
            self._note("distribution", self.settings.site_bucket, ABSENT)
        else:
            answer = cloudfront.get_distribution_config(Id=found["Id"])
            etag = answer["ETag"]
            if answer["DistributionConfig"]["Enabled"]:
                config = dict(answer["DistributionConfig"], Enabled=False)
                etag = cloudfront.update_distribution(Id=found["Id"], IfMatch=etag,
                                                      DistributionConfig=config)["ETag"]
            status = cloudfront.get_distribution(Id=found["Id"])["Distribution"]["Status"]
            if status != "Deployed":
                self._note("distribution", found["DomainName"], PENDING)
                self._note("origin-access", cdn.oac_name(self.settings.stage), PENDING)
                return
            cloudfront.delete_distribution(Id=found["Id"], IfMatch=etag)
            self._note("distribution", found["DomainName"], DELETED)
        name = cdn.oac_name(self.settings.stage)
        for page in cloudfront.get_paginator("list_origin_access_controls").paginate():
            for item in page["OriginAccessControlList"].get("Items", []) or []:
                if item["Name"] == name:
                    etag = cloudfront.get_origin_access_control(Id=item["Id"])["ETag"]
                    cloudfront.delete_origin_access_control(Id=item["Id"], IfMatch=etag)
                    self._note("origin-access", name, DELETED)
                    return
        self._note("origin-access", name, ABSENT)

    def _forget(self, delete, kind, name, missing_code, **kwargs):
        try:
            delete(**kwargs)
            self._note(kind, name, DELETED)
        except ClientError as error:
            if _error_code(error) != missing_code:
                raise
            self._note(kind, name, ABSENT)


def _noncurrent(rule_id, prefix, days):
    return {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": prefix},
            "NoncurrentVersionExpiration": {"NoncurrentDays": days}}


def _rule_digest(rules):
    """Lifecycle rules compared by what they do (S3 answers them with extra fields)."""
    def essential(rule):
        kept = {key: rule.get(key) for key in ("ID", "Status", "Expiration",
                                                "AbortIncompleteMultipartUpload")}
        noncurrent = rule.get("NoncurrentVersionExpiration")
        kept["Noncurrent"] = noncurrent and noncurrent.get("NoncurrentDays")
        kept["Prefix"] = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
        return json.dumps(kept, sort_keys=True, default=str)
    return sorted(essential(rule) for rule in rules)


def noncurrent_days_option(options):
    """The stage's ``noncurrent_version_days`` (default 30), checked."""
    value = options.get("noncurrent_version_days", DEFAULT_NONCURRENT_DAYS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
        raise StageError(f"noncurrent_version_days must be a whole number of days from 1 to "
                         f"3650, not {value!r}")
    return value


def for_stage(stage, session=None, out=None, account=None):
    """A :class:`Provisioner` for ``stage`` with the current AWS session.

    The region is the session's (environment or profile), the same one
    ``chalice deploy`` uses; with none set this stops rather than guess.
    Against a local endpoint (the one-machine stack) there is no CloudFront.
    """
    session = aws_session(session)
    region = session.region_name
    local = bool(os.environ.get("AWS_ENDPOINT_URL"))
    # The operator's environment wins over the config, as for every name.
    configured = os.environ.get("SITE_ORIGIN") or configured_environment(stage).get(
        "SITE_ORIGIN")
    if configured and not local:
        configured = check_site_origin(configured)
    if account is None and needs_account(stage, environ=os.environ):
        account = current_account(session)
    apply_stage_environment(stage, account=account)
    settings = dataclasses.replace(load_settings(), region=region)
    options = stage_options(stage)
    clients = ClientFactory(region=region, session_factory=lambda region_name: session)
    return Provisioner(settings, clients, out=out,
                       cloudfront=not local, site_origin=configured or None,
                       site_domain=options.get("site_domain", ""),
                       certificate_arn=options.get("site_certificate_arn", ""),
                       table_kms=bool(options.get("table_kms_encryption", False)),
                       versioning=not local, noncurrent_days=noncurrent_days_option(options))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ops.provision",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev", help="stage in .chalice/config.json")
    parser.add_argument("--destroy", action="store_true",
                        help="delete every resource of the stage, data included")
    parser.add_argument("--yes", action="store_true",
                        help="with --destroy: do not ask for confirmation")
    args = parser.parse_args(argv)
    try:
        provisioner = for_stage(args.stage, out=sys.stdout)
        if not args.destroy:
            provisioner.run()
            print(f"site origin: {provisioner.site_origin}")
            return 0
        if not args.yes:
            print(f"This deletes every student, photo, video and attendance record of stage "
                  f"{args.stage!r}. Type the stage name to go on: ", end="", flush=True)
            if sys.stdin.readline().strip() != args.stage:
                print("Nothing was deleted.")
                return 1
        report = provisioner.destroy()
    except StageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    pending = [name for _, name, outcome in report if outcome == PENDING]
    if pending:
        print(f"not deleted yet: {', '.join(pending)} (a distribution takes minutes to "
              f"disable); run the same command again later")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
