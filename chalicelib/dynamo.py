"""DynamoDB helpers: read every page, write in batches.

Scan and Query stop at 1 MB per call; every list in Rollcall goes through
:func:`scan_all` or :func:`query_all` so nothing is silently cut off.
"""
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
