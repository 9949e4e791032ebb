"""The DynamoDB helpers every store uses: all pages, batches, retries."""
import pytest

from chalicelib.dynamo import batch_get


def test_batch_get_reads_every_key_past_the_100_a_call_limit(table):
    keys = [{"id": f"t{n:03}"} for n in range(0, 250, 2)] + [{"id": "missing"}]
    found = batch_get(table, keys)
    assert sorted(item["id"] for item in found) == [f"t{n:03}" for n in range(0, 250, 2)]


def test_batch_get_asks_again_for_unprocessed_keys(table, monkeypatch):
    client = table.meta.client
    real = client.batch_get_item
    calls = []

    def throttled_once(RequestItems):
        calls.append(RequestItems)
        if len(calls) > 1:
            return real(RequestItems=RequestItems)
        keys = RequestItems["things"]["Keys"]
        answer = real(RequestItems={"things": {"Keys": keys[:1]}})
        answer["UnprocessedKeys"] = {"things": {"Keys": keys[1:]}}
        return answer

    monkeypatch.setattr(client, "batch_get_item", throttled_once)
    monkeypatch.setattr("chalicelib.dynamo.time.sleep", lambda seconds: None)
    found = batch_get(table, [{"id": "t001"}, {"id": "t002"}, {"id": "t003"}])
    assert sorted(item["id"] for item in found) == ["t001", "t002", "t003"]
    assert [len(c["things"]["Keys"]) for c in calls] == [3, 2]


def test_batch_get_gives_up_when_keys_stay_unprocessed(table, monkeypatch):
    client = table.meta.client
    monkeypatch.setattr(client, "batch_get_item", lambda RequestItems: {
        "Responses": {}, "UnprocessedKeys": RequestItems})
    monkeypatch.setattr("chalicelib.dynamo.time.sleep", lambda seconds: None)
    with pytest.raises(RuntimeError, match="unprocessed"):
        batch_get(table, [{"id": "t001"}], max_attempts=3)
