"""The AWS deployment without an account: the IAM policy and the package.

The policy test reads the code the Lambdas run, lists every boto3 call it
makes, maps each to the IAM action it needs, and checks that the policy
rendered for the stage (``.chalice/policy.template.json`` filled with the
stage's resolved names, what ``make deploy`` and ``make package`` hand to
Chalice) grants exactly those actions (nothing more) on exactly the stage's
own tables, buckets and collection.
"""
import ast
import json
import pathlib
import subprocess
import sys
import zipfile

import botocore.session
import pytest
from botocore import xform_name

from ops.chalice_project import TERRAFORM_ACCOUNT, render_policy
from ops.stage_config import PROJECT_DIR, load_config, stage_environment, stages

#: The account names are resolved for (moto's default).
ACCOUNT = "123456789012"

#: Services the Lambda code may talk to.
SERVICES = ("dynamodb", "s3", "rekognition", "sns", "ssm", "sts", "iam", "mediaconvert",
            "sqs")
#: Ops tools that run with an operator's credentials, never in Lambda.
#: DynamoDB Table resource methods and the API action behind each.
TABLE_METHODS = {"put_item": "PutItem", "get_item": "GetItem", "update_item": "UpdateItem",
                 "delete_item": "DeleteItem", "query": "Query", "scan": "Scan",
                 "batch_writer": "BatchWriteItem"}
#: Calls whose IAM action is not "<service>:<OperationName>".
SPECIAL_ACTIONS = {
    ("s3", "head_object"): "s3:GetObject",
    ("s3", "head_bucket"): "s3:ListBucket",
    ("s3", "list_objects_v2"): "s3:ListBucket",
    ("s3", "list_objects"): "s3:ListBucket",
    ("s3", "delete_objects"): "s3:DeleteObject",
    ("s3", "copy_object"): "s3:PutObject",  # and s3:GetObject on the source
    ("s3", "generate_presigned_post"): "s3:PutObject",
    ("s3", "create_multipart_upload"): "s3:PutObject",
    ("s3", "complete_multipart_upload"): "s3:PutObject",
    ("s3", "list_parts"): "s3:ListMultipartUploadParts",
    ("s3", "abort_multipart_upload"): "s3:AbortMultipartUpload",
    ("sts", "get_caller_identity"): None,  # needs no permission
    # Each item of a transaction needs its own action: an enrolment's Put is
    # PutItem (granted for the plain puts too), its check of the person's record this.
    ("dynamodb", "transact_write_items"): "dynamodb:ConditionCheckItem",
}
PRESIGNED_URL_ACTIONS = {"get_object": "s3:GetObject", "put_object": "s3:PutObject",
                         "upload_part": "s3:PutObject"}
#: What every Lambda needs to write its logs (Chalice adds these only when it
#: writes the policy itself, and ours is hand-written).
LOG_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
#: What Lambda's SQS event source mapping does with the function's role to feed
#: ``@app.on_sqs_message`` (the code never calls these itself).
QUEUE_CONSUMER_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def lambda_sources():
    files = [PROJECT_DIR / "app.py"]
    files += sorted((PROJECT_DIR / "chalicelib").glob("*.py"))
    return files


def _operations():
    session = botocore.session.get_session()
    ops = {}
    for service in SERVICES:
        model = session.get_service_model(service)
        for name in model.operation_names:
            ops.setdefault(xform_name(name), {})[service] = name
    return ops


def _receiver_hint(node):
    text = ast.unparse(node).lower()
    return [s for s in SERVICES if s in text]


def boto3_calls(files=None):
    """{(service, method, action)} for every boto3 call in the Lambda code."""
    ops = _operations()
    found = set()
    for path in files or lambda_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, receiver = node.func.attr, node.func.value
            first_arg = (node.args[0].value if node.args and
                         isinstance(node.args[0], ast.Constant) else None)
            if method == "generate_presigned_url":
                found.add(("s3", method, PRESIGNED_URL_ACTIONS[first_arg]))
                continue
            if method == "generate_presigned_post":
                found.add(("s3", method, SPECIAL_ACTIONS[("s3", method)]))
                continue
            if method in ("get_paginator", "get_waiter") and isinstance(first_arg, str):
                method = first_arg if method == "get_paginator" else None
                if method is None:
                    continue
            candidates = dict(ops.get(method, {}))
            hints = _receiver_hint(receiver)
            if method in TABLE_METHODS and not (set(hints) - {"dynamodb"}):
                found.add(("dynamodb", method, "dynamodb:" + TABLE_METHODS[method]))
                continue
            if not candidates:
                continue
            narrowed = {s: op for s, op in candidates.items() if s in hints} or candidates
            if len(narrowed) > 1:
                # Plain methods that merely share a name with an API call.
                if not hints:
                    continue
                raise AssertionError(f"{path.name}:{node.lineno}: cannot tell which service "
                                     f"{method} belongs to; name the client after it")
            service, operation = next(iter(narrowed.items()))
            if not hints and service not in ("s3", "dynamodb", "rekognition"):
                continue  # e.g. a method called `publish` on our own object
            action = SPECIAL_ACTIONS.get((service, method), f"{service}:{operation}")
            if action:
                found.add((service, method, action))
    actions = {action for _, _, action in found}
    if any(service == "rekognition" and method == "start_face_search"
           for service, method, _ in found):
        actions.add("iam:PassRole")  # the NotificationChannel's role
    if any(service == "mediaconvert" and method == "create_job" for service, method, _ in found):
        actions.add("iam:PassRole")  # the role MediaConvert converts with
    return found, actions


def resolved_environment(stage, account=ACCOUNT):
    return stage_environment(stage, account=account)


def load_policy(stage, account=ACCOUNT):
    """The policy ``make deploy`` gives the stage's Lambdas in ``account``."""
    return render_policy(resolved_environment(stage, account))


def policy_actions(policy):
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_the_code_scan_sees_the_calls_we_know_of():
    found, actions = boto3_calls()
    # Sign-in reads the users table and the token secret; if the scan missed
    # these it would be blind, and the next test meaningless.
    assert ("dynamodb", "get_item", "dynamodb:GetItem") in found
    assert "ssm:GetParameter" in actions


@pytest.mark.parametrize("stage", stages())
def test_policy_grants_exactly_the_calls_the_code_makes(stage):
    _, needed = boto3_calls()
    needed |= LOG_ACTIONS | QUEUE_CONSUMER_ACTIONS
    granted = policy_actions(load_policy(stage))
    assert not needed - granted, f"the code calls these, the policy lacks them: {needed - granted}"
    assert not granted - needed, f"the policy grants these, no code calls them: {granted - needed}"
    assert not any("*" in action for action in granted)


@pytest.mark.parametrize("stage", stages())
def test_policy_resources_are_the_stages_own(stage):
    env = resolved_environment(stage)
    allowed_fragments = {
        "dynamodb": [f":table/{env[t]}" for t in ("USERS_TABLE", "STUDENTS_TABLE",
                                                  "SESSIONS_TABLE", "ATTENDANCE_TABLE",
                                                  "CLASSES_TABLE", "MEMBERS_TABLE")],
        "s3": [f":::{env['PHOTOS_BUCKET']}", f":::{env['VIDEOS_BUCKET']}"],
        "rekognition": [f":collection/{env['FACE_COLLECTION']}"],
        "ssm": [f":parameter{env['TOKEN_SECRET_PARAMETER']}"],
        "iam": [f":role/{env['REKOGNITION_ROLE']}", f":role/{env['CONVERSION_ROLE']}"],
        # MediaConvert jobs carry no names of ours: the Default queue, jobs by id.
        "mediaconvert": [":queues/Default", ":jobs/*"],
        "sns": [f":{env['COMPLETION_TOPIC']}"],
        "logs": [f":log-group:/aws/lambda/rollcall-{stage}"],
        "sqs": [f":{env['EVIDENCE_QUEUE']}"],
    }
    for statement in load_policy(stage)["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        services = {a.split(":")[0] for a in actions}
        assert len(services) == 1, f"one service per statement: {actions}"
        service = services.pop()
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        for resource in resources:
            if resource == "*":
                # Only actions AWS cannot scope to a resource may use "*".
                assert set(actions) <= {"rekognition:DetectFaces", "rekognition:GetFaceSearch"}, \
                    statement
                continue
            assert any(fragment in resource for fragment in allowed_fragments[service]), \
                f"{resource} is not one of stage {stage}'s own resources"
        if "iam:PassRole" in actions:
            # Each role goes only to the service that acts with it.
            service_of_role = {env["REKOGNITION_ROLE"]: "rekognition.amazonaws.com",
                               env["CONVERSION_ROLE"]: "mediaconvert.amazonaws.com"}
            role = statement["Resource"].rsplit("/", 1)[-1]
            assert statement["Condition"] == {
                "StringEquals": {"iam:PassedToService": service_of_role[role]}}


#: What the Lambda code does to each table. Users: read at sign-in, the failure
#: counter updated, accounts added by admins (PutItem, conditional on a new
#: email) and listed through the index; never deleted by the Lambda (the CLI,
#: with an operator's credentials, removes accounts). No table is ever scanned:
#: lists, the watchdog and the retention sweep query indexes.
TABLE_ACTIONS = {
    "USERS_TABLE": {"GetItem", "PutItem", "UpdateItem"},
    # ConditionCheckItem: an enrolment checks the record's name version as it writes.
    "STUDENTS_TABLE": {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem",
                       "ConditionCheckItem"},
    "SESSIONS_TABLE": {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem"},
    "ATTENDANCE_TABLE": {"Query", "PutItem", "UpdateItem", "BatchWriteItem"},
    "CLASSES_TABLE": {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem"},
    # UpdateItem: a renamed person's enrolments take the new name.
    "MEMBERS_TABLE": {"Query", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem",
                      "BatchWriteItem"},
}


@pytest.mark.parametrize("stage", stages())
def test_each_table_gets_only_what_the_code_does_to_it(stage):
    from chalicelib import schema
    env = resolved_environment(stage)
    expected = {env[table]: actions for table, actions in TABLE_ACTIONS.items()}
    # Every index is only ever queried.
    settings = type("Names", (), {name.lower(): env[name] for name in TABLE_ACTIONS})
    for table, spec in schema.table_specs(settings).items():
        for index in spec.get("indexes", {}):
            expected[f"{table}/index/{index}"] = {"Query"}
    granted = {}
    for statement in load_policy(stage)["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        for resource in resources:
            if ":table/" in resource:
                granted.setdefault(resource.split(":table/", 1)[1], set()).update(
                    action.split(":", 1)[1] for action in actions)
    assert granted == expected


def test_autogen_policy_is_off_for_every_stage():
    config = load_config()
    for stage in stages():
        merged = {**config, **config["stages"][stage]}
        assert merged.get("autogen_policy") is False, stage


@pytest.mark.slow
def test_make_package_builds_the_terraform_artefact_without_an_account(tmp_path):
    """`make package` renders the project with Terraform's account reference and
    packages it, with no credentials and no region anywhere."""
    out = tmp_path / "tf"
    env = {"PATH": str(pathlib.Path(sys.executable).parent) + ":/usr/bin:/bin",
           "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    result = subprocess.run([sys.executable, "-m", "ops.deploy", "package", "--stage", "prod",
                             str(out)], cwd=PROJECT_DIR, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    terraform = json.loads((out / "chalice.tf.json").read_text())
    resources = terraform["resource"]
    functions = resources["aws_lambda_function"]
    config = load_config()["stages"]["prod"]["lambda_functions"]
    by_handler = {f["handler"]: f for f in functions.values()}
    assert by_handler["app.app"]["timeout"] == config["api_handler"]["lambda_timeout"]
    assert by_handler["app.on_face_search_complete"]["memory_size"] == \
        config["on_face_search_complete"]["lambda_memory_size"]
    assert "app.on_video_uploaded" in by_handler
    env_prod = resolved_environment("prod", TERRAFORM_ACCOUNT)
    assert env_prod["VIDEOS_BUCKET"] == \
        "rollcall-prod-${data.aws_caller_identity.chalice.account_id}-videos"
    assert by_handler["app.app"]["environment"]["variables"]["PHOTOS_BUCKET"] == \
        env_prod["PHOTOS_BUCKET"]
    # The crops are cut by their own function, fed by the evidence queue; the
    # retention sweep runs on a schedule.
    assert by_handler["app.cut_evidence"]["timeout"] == config["cut_evidence"]["lambda_timeout"]
    assert env_prod["EVIDENCE_QUEUE"] in json.dumps(resources["aws_lambda_event_source_mapping"])
    assert "rate(6 hours)" in json.dumps(resources["aws_cloudwatch_event_rule"])
    notifications = resources["aws_s3_bucket_notification"]
    assert all("$" not in name for name in notifications)  # valid resource names
    rendered = json.dumps(notifications)
    assert env_prod["VIDEOS_BUCKET"] in rendered and '"videos/"' in rendered
    assert env_prod["COMPLETION_TOPIC"] in json.dumps(resources["aws_sns_topic_subscription"])
    role_policy = json.loads(resources["aws_iam_role_policy"]["api_handler_role"]["policy"])
    assert role_policy == load_policy("prod", TERRAFORM_ACCOUNT)
    with zipfile.ZipFile(out / "deployment.zip") as archive:
        names = archive.namelist()
    assert "app.py" in names and "chalicelib/students.py" in names
    # Operator tools (provisioning, publishing, the user CLI) stay on the laptop.
    operator_modules = {p.name for p in (PROJECT_DIR / "ops").glob("*.py")} - {"__init__.py"}
    assert operator_modules and not [n for n in names if n.startswith("chalicelib/")
                                     and n.rsplit("/", 1)[-1] in operator_modules]
    assert "chalicelib/templates/report.html" in names or any(
        n.startswith("chalicelib/templates/") for n in names)
    # Nothing of the local stack or the test tooling ships to Lambda.
    assert not [n for n in names if n.startswith(("local/", "tests/", "ops/", "moto/", "dlib",
                                                  "cv2/", "av/", "playwright/"))]


def test_the_video_layer_fits_lambda_and_goes_to_the_evidence_function_only(tmp_path):
    """PyAV and Pillow for Lambda's platform, as a layer of ``cut_evidence`` (ops/video_layer.py).

    Built from the manylinux2014 wheels; the zip must be uploadable directly
    (50 MB) and the function's package plus the layer must unzip within 250 MB.
    """
    from ops import video_layer
    out = tmp_path / "tf"
    env = {"PATH": str(pathlib.Path(sys.executable).parent) + ":/usr/bin:/bin",
           "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    result = subprocess.run([sys.executable, "-m", "ops.deploy", "package", "--stage", "prod",
                             str(out)], cwd=PROJECT_DIR, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    zipped, unzipped = video_layer.build(tmp_path / "video-layer.zip")
    video_layer.add_to_terraform(out, tmp_path / "video-layer.zip")
    package = video_layer.unzipped_size(out / "deployment.zip")
    print(f"deployment.zip {package / 1e6:.1f} MB unzipped; video layer {zipped / 1e6:.1f} MB "
          f"zipped, {unzipped / 1e6:.1f} MB unzipped")
    assert zipped < video_layer.MAX_UPLOAD_BYTES
    assert package + unzipped < video_layer.MAX_UNZIPPED_BYTES
    with zipfile.ZipFile(tmp_path / "video-layer.zip") as layer:
        names = layer.namelist()
    assert "python/av/__init__.py" in names and "python/PIL/Image.py" in names
    resources = json.loads((out / "chalice.tf.json").read_text())["resource"]
    layered = {name for name, function in resources["aws_lambda_function"].items()
               if function.get("layers")}
    assert layered == {"cut_evidence"}
    assert resources["aws_lambda_layer_version"]["video"]["filename"].endswith(
        "/video-layer.zip") and (out / "video-layer.zip").is_file()
