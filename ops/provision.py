"""Create (idempotently) every resource a stage needs.

``python -m ops.provision --stage dev`` makes the DynamoDB tables, the
private buckets, the face collection, the completion topic with the role
Rekognition publishes through, and the token secret. Each step looks before it
acts, so a second run changes nothing and says so. Names come from the
stage's environment in ``.chalice/config.json`` (see :mod:`stage_config`).
"""
import argparse
import json
import secrets
import sys

from botocore.exceptions import ClientError

from chalicelib.clients import ClientFactory
from chalicelib.settings import load_settings
from ops.stage_config import apply_stage_environment
from chalicelib.schema import table_specs

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
DELETED, ABSENT = "deleted", "absent"

def _error_code(error):
    return error.response["Error"]["Code"]


class Provisioner:
    def __init__(self, settings, clients, out=None):
        self.settings = settings
        self.clients = clients
        self._out = out
        self.report = []

    def _note(self, kind, name, outcome):
        self.report.append((kind, name, outcome))
        if self._out:
            print(f"{outcome:>9}  {kind:<11} {name}", file=self._out)

    def run(self):
        for name, spec in table_specs(self.settings).items():
            self.ensure_table(name, spec)
        for bucket in (self.settings.photos_bucket, self.settings.videos_bucket):
            self.ensure_bucket(bucket)
        if self.settings.site_bucket:
            self.ensure_bucket(self.settings.site_bucket, cors=False)
        self.ensure_collection(self.settings.face_collection)
        if self.settings.completion_topic:
            topic_arn = self.ensure_topic(self.settings.completion_topic)
            if self.settings.rekognition_role:
                self.ensure_rekognition_role(self.settings.rekognition_role, topic_arn)
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
        dynamodb = self.clients.client("dynamodb")
        try:
            dynamodb.describe_table(TableName=name)
            self._note("table", name, UNCHANGED)
            return
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
        attributes = {attr: kind for attr, _, kind in spec["keys"]}
        request = {
            "TableName": name,
            "KeySchema": [{"AttributeName": a, "KeyType": t} for a, t, _ in spec["keys"]],
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"Enabled": True},
        }
        indexes = spec.get("indexes", {})
        if indexes:
            request["GlobalSecondaryIndexes"] = []
            for index_name, keys in indexes.items():
                attributes.update({attr: kind for attr, _, kind in keys})
                request["GlobalSecondaryIndexes"].append({
                    "IndexName": index_name,
                    "KeySchema": [{"AttributeName": a, "KeyType": t} for a, t, _ in keys],
                    "Projection": {"ProjectionType": "ALL"},
                })
        request["AttributeDefinitions"] = [
            {"AttributeName": a, "AttributeType": k} for a, k in attributes.items()]
        dynamodb.create_table(**request)
        dynamodb.get_waiter("table_exists").wait(TableName=name,
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        self._note("table", name, CREATED)

    # -- S3 ---------------------------------------------------------------------
    def _cors_rules(self):
        return [{
            "AllowedOrigins": [self.settings.site_origin],
            # POST: the presigned uploads; GET: presigned photo links. Nothing PUTs.
            "AllowedMethods": ["GET", "POST"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3000,
        }]

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
        if cors and current_cors != self._cors_rules():
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": self._cors_rules()})
            outcome = outcome if outcome == CREATED else UPDATED
        if outcome == CREATED:
            # Encryption at rest.
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        rules = self._lifecycle_rules(name)
        try:
            current_ids = {rule["ID"] for rule in
                           s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
        except ClientError:
            current_ids = set()
        if current_ids != {rule["ID"] for rule in rules}:
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
        return rules

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
        iam = self.clients.client("iam")
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "rekognition.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}
        publish = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}]}
        outcome = UNCHANGED
        try:
            iam.get_role(RoleName=role_name)
        except ClientError as error:
            if _error_code(error) != "NoSuchEntity":
                raise
            iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust),
                            Description="Lets Rekognition publish Rollcall job completion")
            outcome = CREATED
        try:
            current = iam.get_role_policy(RoleName=role_name, PolicyName="publish-completion")
            current = current["PolicyDocument"]
            if isinstance(current, str):
                current = json.loads(current)
        except ClientError:
            current = None
        if current != publish:
            iam.put_role_policy(RoleName=role_name, PolicyName="publish-completion",
                                PolicyDocument=json.dumps(publish))
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
        """Remove everything :meth:`run` made, emptying buckets first."""
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
        if self.settings.rekognition_role:
            iam = self.clients.client("iam")
            try:
                iam.delete_role_policy(RoleName=self.settings.rekognition_role,
                                       PolicyName="publish-completion")
            except ClientError as error:
                if _error_code(error) != "NoSuchEntity":
                    raise
            self._forget(iam.delete_role, "role", self.settings.rekognition_role,
                         "NoSuchEntity", RoleName=self.settings.rekognition_role)
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

    def _forget(self, delete, kind, name, missing_code, **kwargs):
        try:
            delete(**kwargs)
            self._note(kind, name, DELETED)
        except ClientError as error:
            if _error_code(error) != missing_code:
                raise
            self._note(kind, name, ABSENT)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ops.provision",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev", help="stage in .chalice/config.json")
    parser.add_argument("--destroy", action="store_true",
                        help="delete every resource of the stage, data included")
    parser.add_argument("--yes", action="store_true",
                        help="with --destroy: do not ask for confirmation")
    args = parser.parse_args(argv)
    apply_stage_environment(args.stage)
    settings = load_settings()
    provisioner = Provisioner(settings, ClientFactory(region=settings.region), out=sys.stdout)
    if not args.destroy:
        provisioner.run()
        return 0
    if not args.yes:
        print(f"This deletes every student, photo, video and attendance record of stage "
              f"{args.stage!r}. Type the stage name to go on: ", end="", flush=True)
        if sys.stdin.readline().strip() != args.stage:
            print("Nothing was deleted.")
            return 1
    provisioner.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
