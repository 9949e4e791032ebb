"""DynamoDB helpers: read every page, read and write in batches.

Scan and Query stop at 1 MB per call; every list in Rollcall goes through
:func:`scan_all` or :func:`query_all` so nothing is silently cut off.
"""
import time
from decimal import Decimal


def scan_all(table, **kwargs):
    """Yield every item of a Scan, following ``LastEvaluatedKey``."""
    while True:
        page = table.scan(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def query_all(table, **kwargs):
    """Yield every item of a Query, following ``LastEvaluatedKey``."""
    while True:
        page = table.query(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def batch_get(table, keys, max_attempts=8):
    """Every item of ``keys`` that exists, with BatchGetItem (100 a call).

    Keys DynamoDB leaves unprocessed (throttling) are asked for again with
    backoff; if some still are after ``max_attempts``, it raises.
    """
    keys, found = list(keys), []
    client, name = table.meta.client, table.name
    for start in range(0, len(keys), 100):
        request = {name: {"Keys": keys[start:start + 100]}}
        for attempt in range(max_attempts):
            answer = client.batch_get_item(RequestItems=request)
            found.extend(answer["Responses"].get(name, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2 ** attempt, 2))
        if request:
            raise RuntimeError(f"DynamoDB kept some keys of {name} unprocessed; try again")
    return found


def batch_put(table, items, overwrite_by_pkeys=None):
    """Write ``items`` with BatchWriteItem (25 a call, unprocessed retried)."""
    with table.batch_writer(overwrite_by_pkeys=overwrite_by_pkeys) as batch:
        for item in items:
            batch.put_item(Item=item)


def batch_delete(table, keys):
    """Delete ``keys`` with BatchWriteItem."""
    with table.batch_writer() as batch:
        for key in keys:
            batch.delete_item(Key=key)


def to_dynamo(value):
    """Convert floats (which DynamoDB rejects) to Decimal, recursively."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value):
    """Convert Decimals back to int or float, recursively, for JSON answers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [from_dynamo(v) for v in value]
    return value
