"""The stack's moto hands DynamoDB calls straight to moto's handler
(local.stack.moto_state.DynamoDBFirst): the answers are what moto's Flask app
answers, byte for byte, errors included; every other call goes through Flask."""
import json
import uuid

import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from local.stack.moto_state import DynamoDBFirst

pytestmark = pytest.mark.stack

AUTH = ("AWS4-HMAC-SHA256 Credential=testing/20261130/eu-west-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + "0" * 64)
#: Headers moto fills differently on every answer.
CHANGING = {"x-amzn-requestid", "x-amz-crc32", "date"}


@pytest.fixture(scope="module")
def apps():
    plain = DomainDispatcherApplication(create_backend_app)
    return Client(plain), Client(DynamoDBFirst(plain))


def _call(client, action, body, **extra):
    answer = client.post("/", data=json.dumps(body), headers={
        "X-Amz-Target": f"DynamoDB_20120810.{action}",
        "Content-Type": "application/x-amz-json-1.0", "Authorization": AUTH,
        "Host": "127.0.0.1:5000", **extra})
    headers = sorted((k.lower(), v) for k, v in answer.headers.items()
                     if k.lower() not in CHANGING)
    return answer.status, headers, answer.get_data()


def _both(apps, action, body, **extra):
    plain, direct = (_call(client, action, body, **extra) for client in apps)
    assert direct == plain, action
    return json.loads(direct[2] or b"{}")


def test_reads_and_errors_answer_as_moto_answers(apps):
    table = "t-" + uuid.uuid4().hex
    plain, direct = apps
    created = _call(direct, "CreateTable", {
        "TableName": table, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"},
                      {"AttributeName": "s", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"},
                                 {"AttributeName": "s", "AttributeType": "S"}]})
    assert created[0] == "200 OK"
    # the same write through each path answers the same
    written = [_call(client, "PutItem", {"TableName": table, "Item": {
        "k": {"S": "a"}, "s": {"S": f"{n}"}, "n": {"N": "1.50"},
        "m": {"M": {"l": {"L": [{"S": "zoë"}, {"BOOL": True}, {"NULL": True}]}}},
        "b": {"B": "AAE="}, "ss": {"SS": ["x", "y"]}}}) for n, client in enumerate(apps)]
    assert written[0] == written[1] and written[0][0] == "200 OK"
    got = _both(apps, "GetItem", {"TableName": table, "Key": {"k": {"S": "a"}, "s": {"S": "0"}},
                                  "ConsistentRead": True})
    assert got["Item"]["m"]["M"]["l"]["L"][0] == {"S": "zoë"}
    rows = _both(apps, "Query", {"TableName": table, "KeyConditionExpression": "k = :k",
                                 "ExpressionAttributeValues": {":k": {"S": "a"}},
                                 "ScanIndexForward": False, "Limit": 1})
    assert rows["Count"] == 1 and "LastEvaluatedKey" in rows
    _both(apps, "GetItem", {"TableName": table, "Key": {"k": {"S": "none"}, "s": {"S": "0"}}})
    failed = _both(apps, "PutItem", {"TableName": table, "Item": {"k": {"S": "a"}, "s": {"S": "0"}},
                                     "ConditionExpression": "attribute_not_exists(k)"})
    assert failed["__type"].endswith("ConditionalCheckFailedException")
    missing = _both(apps, "GetItem", {"TableName": "no-such-" + table,
                                      "Key": {"k": {"S": "a"}}})
    assert missing["__type"].endswith("ResourceNotFoundException")
    _both(apps, "GetItem", {"TableName": table, "Key": {"k": {"S": "a"}, "s": {"S": "0"}}},
          Origin="http://127.0.0.1:8000")      # a browser's call: moto's CORS answer
    bad = _both(apps, "Query", {"TableName": table, "KeyConditionExpression": "nope = :k",
                                "ExpressionAttributeValues": {":k": {"S": "a"}}})
    assert "__type" in bad


def test_other_calls_still_go_through_moto(apps):
    _, direct = apps
    answer = direct.get("/", headers={"Authorization": AUTH.replace("dynamodb", "s3"),
                                      "Host": "127.0.0.1:5000"})
    assert answer.status_code == 200 and b"ListAllMyBucketsResult" in answer.get_data()


def test_signed_dynamodb_calls_never_reach_flask_and_browser_calls_do():
    """The comparison above would pass if every call went the long way: here
    the long way is closed, and a signed SDK call is answered all the same."""
    reached = []

    def flask_app(environ, start_response):
        reached.append(environ.get("HTTP_X_AMZ_TARGET"))
        start_response("418 I'm a teapot", [("Content-Type", "text/plain")])
        return [b"the long way"]

    direct = Client(DynamoDBFirst(flask_app))
    status, _, body = _call(direct, "ListTables", {})
    assert status == "200 OK" and "TableNames" in json.loads(body)
    assert reached == []
    status, _, body = _call(direct, "ListTables", {}, Origin="http://127.0.0.1:8000")
    assert status.startswith("418") and reached == ["DynamoDB_20120810.ListTables"]
