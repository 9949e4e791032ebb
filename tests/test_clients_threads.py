"""One DynamoDB Table resource shared by threads (the local API server runs one
thread per connection): Key(...) conditions built at once stay apart."""
import sys
import threading
import time

import boto3
import pytest
from boto3.dynamodb.conditions import ConditionExpressionBuilder, Key

from chalicelib.clients import ClientFactory, _PerThreadConditionBuilder
from tests.support.aws import REGION


@pytest.fixture
def frequent_switches():
    """Threads switch as often as they can, so a race shows at once."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(saved)


def _mixed_up(builder, rounds=1500, threads=4):
    """Expressions built by several threads at once that lost a placeholder."""
    bad = []

    def build():
        for _ in range(rounds):
            builder.reset()
            built = builder.build_expression(
                Key("listed").eq("session") & Key("day_key").between("0", "9"),
                is_key_condition=True)
            if (len(built.attribute_name_placeholders) != 2
                    or len(built.attribute_value_placeholders) != 3):
                bad.append(built)

    workers = [threading.Thread(target=build) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return bad


@pytest.fixture
def slow_naming(monkeypatch):
    """Building an expression pauses at each name, as a busy server's thread
    may be preempted there: a race between threads then shows on every run."""
    naming = ConditionExpressionBuilder._get_name_placeholder

    def pausing(self):
        time.sleep(0.0002)
        return naming(self)

    monkeypatch.setattr(ConditionExpressionBuilder, "_get_name_placeholder", pausing)


def test_boto3s_own_builder_mixes_threads_up_and_ours_does_not(frequent_switches, slow_naming):
    assert _mixed_up(ConditionExpressionBuilder(), rounds=200)  # why the per-thread one exists
    assert _mixed_up(_PerThreadConditionBuilder(), rounds=200) == []


def test_queries_from_many_threads_on_one_table_each_get_their_own_items(aws, slow_naming):
    factory = ClientFactory(region=REGION)
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="threads", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "p", "KeyType": "HASH"},
                   {"AttributeName": "s", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "p", "AttributeType": "S"},
                              {"AttributeName": "s", "AttributeType": "S"}])
    table = factory.table("threads")
    for p in range(4):
        for s in range(3):
            table.put_item(Item={"p": f"p{p}", "s": f"{s}"})
    failures = []

    def query(p):
        try:
            for _ in range(15):
                items = table.query(KeyConditionExpression=Key("p").eq(f"p{p}")
                                    & Key("s").between("0", "1"))["Items"]
                if sorted(i["s"] for i in items) != ["0", "1"] or \
                        {i["p"] for i in items} != {f"p{p}"}:
                    failures.append(items)
        except Exception as error:  # a refused query is the failure looked for
            failures.append(error)

    workers = [threading.Thread(target=query, args=(p,)) for p in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
