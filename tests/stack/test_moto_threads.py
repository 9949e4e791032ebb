"""The stack's moto under concurrent DynamoDB reads and writes: moto's DynamoDB
walks dicts that writes change, so its requests take turns (PersistentMoto)."""
import contextlib
import sys
import threading

import pytest

from local.stack.moto_state import PersistentMoto
from local.stack.wsgi_server import ThreadedWSGIServer
from local.stack.snapshot import StateStore
from tests.support.stack import boto_client, free_port

pytestmark = pytest.mark.stack


def _server_errors(tmp_path, take_turns):
    store = StateStore(tmp_path / "moto")
    store.warm_up()
    store.load()
    moto = PersistentMoto(store)
    moto.journal.open(1)
    if not take_turns:
        moto._turn = lambda environ: contextlib.nullcontext()
    failed = []

    def app(environ, start_response):
        def watch(status, headers, exc_info=None):
            if status.startswith("5"):
                failed.append(status)
            return start_response(status, headers, exc_info)
        try:
            return moto(environ, watch)
        except Exception as error:  # the server would answer 500
            failed.append(repr(error))
            raise

    port = free_port()
    server = ThreadedWSGIServer(app, "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    boto_client("dynamodb", url).create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"},
                   {"AttributeName": "s", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                              {"AttributeName": "s", "AttributeType": "S"}])

    def read():
        client = boto_client("dynamodb", url)
        for _ in range(150):
            client.query(TableName="t", KeyConditionExpression="k = :k",
                         ExpressionAttributeValues={":k": {"S": "a"}})

    def write(n):
        client = boto_client("dynamodb", url)
        for i in range(150):
            client.put_item(TableName="t", Item={"k": {"S": "a"}, "s": {"S": f"{n}-{i}"}})

    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads switch as often as they can
    try:
        workers = [threading.Thread(target=read) for _ in range(4)] + [
            threading.Thread(target=write, args=(n,)) for n in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(saved)
        server.shutdown()
        server.server_close()
    return failed


def test_dynamodb_requests_take_turns_so_none_fails(tmp_path):
    assert _server_errors(tmp_path, take_turns=True) == []
