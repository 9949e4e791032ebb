"""The DynamoDB toolkit every store uses: pages, batches, conditional writes, time.

* Query stops at 1 MB per call: whole reads go through :func:`query_all`, so
  nothing is silently cut off; lists a person pages through use
  :mod:`chalicelib.paging` (opaque, checked cursors). Lambda code never scans
  a table (tests/test_layering.py checks it): every read is a key, a batch of
  keys or a query on an index (see :mod:`chalicelib.schema`); the operator
  tools' whole-table reads are :func:`ops.scanning.scan_all`.
* A conditional write that loses is not an error to the caller: it is asked
  with :func:`is_conditional_failure`, or :func:`conditional_update` answers None.
* Times are stored as ISO 8601 UTC strings to the second (:func:`utc_now`),
  so they sort as text.
"""
import datetime
import time
from decimal import Decimal

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError


def utc_now():
    """Now, as stored: ISO 8601 UTC to the second (``2026-11-30T03:15:25+00:00``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def is_conditional_failure(error):
    """True if ``error`` (a ClientError) is a condition that did not hold."""
    return error.response["Error"]["Code"] in ("ConditionalCheckFailedException",
                                               "TransactionCanceledException")


def conditional_update(table, key, values, condition, remove=(), now=None):
    """SET ``values`` (and ``updated_at`` when ``now`` is given) on ``key`` if
    ``condition`` holds and the item exists; the new item, or None if not."""
    if now is not None:
        values = dict(values, updated_at=now())
    names = {f"#{k}": k for k in values}
    names.update({f"#{k}": k for k in remove})
    expression = "SET " + ", ".join(f"#{k} = :{k}" for k in values)
    if remove:
        expression += " REMOVE " + ", ".join(f"#{k}" for k in remove)
    exists = Attr(next(iter(key))).exists()
    try:
        return table.update_item(
            Key=key, UpdateExpression=expression,
            ConditionExpression=exists if condition is None else condition & exists,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":{k}": v for k, v in values.items()},
            ReturnValues="ALL_NEW")["Attributes"]
    except ClientError as error:
        if is_conditional_failure(error):
            return None
        raise


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
