"""The user CLI, end to end: a real process against a moto server on 127.0.0.1."""
import os
import subprocess
import sys

import boto3
import pytest

from chalicelib.schema import LISTED, USERS_LISTING_INDEX
from ops.stage_config import PROJECT_DIR, stage_environment

pytestmark = pytest.mark.slow  # a moto server and a CLI process


def run_cli(env, *args, stdin=""):
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, cwd=PROJECT_DIR,
                          timeout=60)


def test_cli_manages_users_end_to_end(moto_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=moto_server)
    table_name = stage_environment("dev")["USERS_TABLE"]
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    # The table as chalicelib/schema.py has it: the CLI's list reads its listing index.
    dynamodb.create_table(TableName=table_name, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "email", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "email", "AttributeType": "S"},
                                                {"AttributeName": LISTED, "AttributeType": "S"}],
                          GlobalSecondaryIndexes=[{
                              "IndexName": USERS_LISTING_INDEX,
                              "KeySchema": [{"AttributeName": LISTED, "KeyType": "HASH"},
                                            {"AttributeName": "email", "KeyType": "RANGE"}],
                              "Projection": {"ProjectionType": "ALL"}}])

    added = run_cli(env, "user", "add", "Ada@Example.org", "--role", "admin",
                    "--password-stdin", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert "added ada@example.org (admin)" in added.stdout
    assert "a long password" not in added.stdout + added.stderr

    generated = run_cli(env, "user", "add", "bob@example.org", "--generate")
    assert generated.returncode == 0, generated.stderr
    assert "shown once" in generated.stdout

    duplicate = run_cli(env, "user", "add", "ada@example.org", "--password-stdin",
                        stdin="another password\n")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr

    weak = run_cli(env, "user", "add", "c@example.org", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1 and "at least" in weak.stderr

    listed = run_cli(env, "user", "list")
    assert listed.stdout.splitlines() == ["ada@example.org\tadmin", "bob@example.org\tteacher"]

    item = dynamodb.get_item(TableName=table_name, Key={"email": {"S": "ada@example.org"}})
    old_hash = item["Item"]["password_hash"]["S"]
    changed = run_cli(env, "user", "set-password", "ada@example.org", "--password-stdin",
                      stdin="the new long password\n")
    assert changed.returncode == 0, changed.stderr
    item = dynamodb.get_item(TableName=table_name, Key={"email": {"S": "ada@example.org"}})
    assert item["Item"]["password_hash"]["S"] != old_hash
    assert item["Item"]["token_version"]["N"] == "2"

    removed = run_cli(env, "user", "remove", "bob@example.org")
    assert removed.returncode == 0
    assert run_cli(env, "user", "list").stdout.splitlines() == ["ada@example.org\tadmin"]
    missing = run_cli(env, "user", "remove", "bob@example.org")
    assert missing.returncode == 1 and "no user" in missing.stderr
