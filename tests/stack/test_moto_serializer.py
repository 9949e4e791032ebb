"""The stack's moto writes DynamoDB answers without moto's shape walk
(local.stack.moto_state._fast_dynamodb_serializer): byte for byte what moto's
own serializer writes, and items come back as they went in."""
import base64
import copy
import decimal
import json

import pytest
from moto.core import serialize
from moto.core.serialize import XFormedAttributePicker
from moto.core.utils import get_service_model
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.utilities import dynamo_to_dict

from local.stack.moto_state import _fast_dynamodb_serializer
from tests.support.stack import boto_client

pytestmark = pytest.mark.stack

EVERY_KIND = {
    "id": {"S": "k-1"},
    "text": {"S": "Zoë – ünïcode \"quoted\" \\ slash"},
    "empty_text": {"S": ""},
    "count": {"N": "42"},
    "ratio": {"N": "-0.125"},
    "blob": {"B": base64.b64encode(b"\x00\xffbinary").decode()},
    "names": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
    "blobs": {"BS": [base64.b64encode(b"x").decode(), base64.b64encode(b"\x01").decode()]},
    "nothing": {"NULL": True},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "empty_list": {"L": []},
    "empty_map": {"M": {}},
    "nested": {"M": {"list": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"BOOL": False}}},
                                     {"NULL": True}, {"B": base64.b64encode(b"y").decode()}]},
                     "names": {"SS": ["z"]}}},
}


def _serialized(serializer_cls, operation, result):
    model = get_service_model("dynamodb").operation_model(operation)
    serializer = serializer_cls(operation_model=model, pretty_print=False,
                                value_picker=XFormedAttributePicker(response_transformers=None))
    return serializer.serialize(result)


@pytest.fixture(scope="module")
def serializers():
    plain = serialize.get_serializer_class("dynamodb", "json")
    saved = dict(serialize.SERVICE_SPECIFIC_SERIALIZERS.get("dynamodb", {}))
    if getattr(plain, "_rollcall_fast", False):
        plain = serialize.SERIALIZERS["json"]
    fast = _fast_dynamodb_serializer()
    yield plain, fast
    serialize.SERVICE_SPECIFIC_SERIALIZERS["dynamodb"] = saved


def test_every_kind_of_value_is_written_as_moto_writes_it(serializers):
    plain, fast = serializers
    item = Item(DynamoType({"S": "k-1"}), None, EVERY_KIND)
    attrs = dynamo_to_dict(item.attrs)
    results = {
        "GetItem": {"Item": attrs},
        "Query": {"Items": [attrs, attrs], "Count": 2, "ScannedCount": 2,
                  "LastEvaluatedKey": {"id": attrs["id"]},
                  "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}},
        "Scan": {"Items": [], "Count": 0, "ScannedCount": 0},
        "BatchGetItem": {"Responses": {"t": [attrs]}, "UnprocessedKeys": {},
                         "ConsumedCapacity": []},
        "UpdateItem": {"Attributes": attrs},
        "TransactGetItems": {"Responses": [{"Item": attrs}, {}]},
    }
    for operation, result in results.items():
        expected = _serialized(plain, operation, copy.deepcopy(result))
        got = _serialized(fast, operation, copy.deepcopy(result))
        assert got["body"] == expected["body"], operation
        assert got["headers"] == expected["headers"] and got["status_code"] == 200


def test_binary_values_are_base64_once(serializers):
    plain, fast = serializers
    item = Item(DynamoType({"S": "k"}), None, {"id": {"S": "k"}, "b": {"B": b"\x00\x01"}})
    result = {"Item": dynamo_to_dict(item.attrs)}
    body = _serialized(fast, "GetItem", result)["body"]
    assert body == _serialized(plain, "GetItem", result)["body"]
    assert json.loads(body)["Item"]["b"] == {"B": base64.b64encode(b"\x00\x01").decode()}


def test_items_come_back_from_the_server_as_they_went_in(shared_moto):
    dynamodb = boto_client("dynamodb", shared_moto.url)
    dynamodb.create_table(TableName="serializer-check", BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    item = {k: ({"B": base64.b64decode(v["B"])} if "B" in v else
                {"BS": [base64.b64decode(b) for b in v["BS"]]} if "BS" in v else v)
            for k, v in EVERY_KIND.items()}
    item["nested"] = {"M": {"list": {"L": [{"S": "x"}, {"N": "1"},
                                           {"M": {"deep": {"BOOL": False}}}, {"NULL": True},
                                           {"B": b"y"}]},
                            "names": {"SS": ["z"]}}}
    dynamodb.put_item(TableName="serializer-check", Item=item)
    got = dynamodb.get_item(TableName="serializer-check", Key={"id": {"S": "k-1"}},
                            ConsistentRead=True)["Item"]
    assert _canonical(got) == _canonical(item)
    queried = dynamodb.query(TableName="serializer-check", KeyConditionExpression="id = :i",
                             ExpressionAttributeValues={":i": {"S": "k-1"}})["Items"]
    assert [_canonical(i) for i in queried] == [_canonical(item)]


def _canonical(value):
    """Sets compare unordered (DynamoDB keeps no order in them)."""
    if isinstance(value, dict):
        return {k: (sorted(map(_canonical, v), key=repr) if k in ("SS", "NS", "BS")
                    else _canonical(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


@pytest.fixture
def parsers():
    from botocore import parsers as botocore_parsers

    from local.stack.api_server import fast_dynamodb_parser
    saved = botocore_parsers.PROTOCOL_PARSERS["json"]
    plain = saved if not getattr(saved, "_rollcall_fast", False) else saved.__mro__[1]
    fast = fast_dynamodb_parser()
    botocore_parsers.PROTOCOL_PARSERS["json"] = saved
    return plain, fast


def test_the_api_server_reads_answers_as_botocore_does(serializers, parsers):
    """The API server's direct reading of attribute values gives what botocore's
    shape walk gives, for every kind of value and for odd answers too."""
    plain_serializer, _ = serializers
    plain, fast = parsers
    item = Item(DynamoType({"S": "k-1"}), None, EVERY_KIND)
    attrs = dynamo_to_dict(item.attrs)
    model = get_service_model("dynamodb")
    bodies = {operation: _serialized(plain_serializer, operation, copy.deepcopy(result))["body"]
              for operation, result in {
                  "GetItem": {"Item": attrs},
                  "Query": {"Items": [attrs, attrs], "Count": 2, "ScannedCount": 2,
                            "LastEvaluatedKey": {"id": attrs["id"]}},
                  "BatchGetItem": {"Responses": {"t": [attrs]}, "UnprocessedKeys": {}},
                  "UpdateItem": {"Attributes": attrs}}.items()}
    # Odd answers take botocore's own path: a value with two members, an unknown
    # member, a null in a list, an empty item.
    bodies["Scan"] = json.dumps({"Items": [
        {"two": {"S": "a", "N": "1"}}, {"new": {"XX": "?"}},
        {"list": {"L": [None, {"S": "x"}]}}, {}], "Count": 4, "ScannedCount": 4})
    for operation, body in bodies.items():
        shape = model.operation_model(operation).output_shape
        answer = {"body": body.encode(), "headers": {}, "status_code": 200}
        try:
            expected = plain().parse(answer, shape)
        except Exception as error:  # botocore refuses it: so must the fast path
            with pytest.raises(type(error)):
                fast().parse(answer, shape)
            continue
        assert fast().parse(answer, shape) == expected, operation


def test_quick_random_strings_keep_moto_alphabet_and_length():
    import string

    from moto.moto_api._internal import mock_random

    from local.stack.moto_state import _quick_random_strings
    kind = type(mock_random)
    saved = kind.get_random_string
    try:
        _quick_random_strings()
        # (a PersistentMoto made earlier in this process has installed it already)
        assert kind.get_random_string._rollcall_quick
        ids = {mock_random.get_random_string(length=52) for _ in range(200)}
        assert len(ids) == 200
        assert all(len(i) == 52 and set(i) <= set(string.ascii_letters + string.digits)
                   for i in ids)
        assert set("".join(ids)) > set(string.digits)  # digits are drawn too
        short = mock_random.get_random_string(length=8, include_digits=False, lower_case=True)
        assert len(short) == 8 and set(short) <= set(string.ascii_lowercase)
    finally:
        kind.get_random_string = saved


def _random_value(rng, depth=0):
    kinds = ["S", "N", "B", "SS", "NS", "BS", "BOOL", "NULL", "L", "M"] if depth < 3 \
        else ["S", "N", "BOOL"]
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": "".join(rng.choice("aé€z ") for _ in range(rng.randint(0, 6)))}
    if kind == "N":
        return {"N": rng.choice(["1", "-0.125", "1e10", "42", "3.14159"])}
    if kind == "B":
        return {"B": base64.b64encode(bytes(rng.randrange(256) for _ in range(5))).decode()}
    if kind == "SS":
        return {"SS": [f"s{i}é" for i in range(rng.randint(1, 3))]}
    if kind == "NS":
        return {"NS": [str(i * 1.5) for i in range(rng.randint(1, 3))]}
    if kind == "BS":
        return {"BS": [base64.b64encode(b"ab" * i).decode() for i in range(1, rng.randint(2, 4))]}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "L":
        return {"L": [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]}
    return {"M": {f"k{i}é": _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}}


def test_quick_item_sizes_weigh_items_as_moto_does():
    import random

    from local.stack.moto_state import _quick_item_sizes
    _quick_item_sizes()
    quick = Item.size
    assert quick._rollcall_quick
    rng = random.Random(5)
    for _ in range(2000):
        attrs = {"id": {"S": "k"}}
        attrs.update({f"a{i}": _random_value(rng) for i in range(rng.randint(0, 8))})
        item = Item(DynamoType({"S": "k"}), None, attrs)
        assert quick(item) == quick.moto_size(item), attrs
