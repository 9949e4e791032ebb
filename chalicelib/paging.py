"""Pages of a list: ``?limit=`` (1..200, read by :mod:`chalicelib.inputs`) and an
opaque ``?cursor=``.

A cursor is the key of the last item of the page, base64url-encoded JSON.
The next page starts strictly after that item, so across pages every item
that existed throughout is answered exactly once, even while items are added
or removed (items added before the cursor's place are not answered; items
added after it are, once). Sort keys are unique (each ends with the item's
own id), so "after" is always well defined.

Clients treat cursors as opaque; the server checks every decoded cursor
(shape, types, and that it lies inside the query's own range) and answers
400 ``invalid_cursor`` for anything else, never a DynamoDB error.
"""
import base64
import binascii
import json

from chalicelib.errors import InvalidInput

#: The most items one page of a list may hold.
MAX_PAGE_SIZE = 200


def _bad_cursor():
    return InvalidInput("The 'cursor' is not one this list gave out. Start again from the "
                      "first page.", code="invalid_cursor", details={"field": "cursor"})


def encode_cursor(key):
    text = json.dumps(key, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(text, attributes, fixed=None, bounds=None):
    """The key a cursor holds: a dict of exactly ``attributes``, all strings.

    ``fixed`` maps attributes to the only value they may have (the partition
    the list reads); ``bounds`` is ``(attribute, low, high)`` the value must lie
    within (the query's own range). Anything else is a 400.
    """
    if not isinstance(text, str) or len(text) > 2048:
        raise _bad_cursor()
    try:
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise _bad_cursor()
    if (not isinstance(key, dict) or set(key) != set(attributes)
            or not all(isinstance(v, str) and v for v in key.values())):
        raise _bad_cursor()
    for name, value in (fixed or {}).items():
        if key[name] != value:
            raise _bad_cursor()
    if bounds:
        name, low, high = bounds
        if (low is not None and key[name] < low) or (high is not None and key[name] > high):
            raise _bad_cursor()
    return key


def query_page(table, *, limit, cursor, key_attributes, fixed=None, bounds=None, **query):
    """One page of a Query: ``(items, next_cursor)``; next_cursor None at the end.

    ``key_attributes`` are the table's and the index's key attributes (what
    ``ExclusiveStartKey`` needs). With a ``FilterExpression`` it reads on until
    the page is full or the query ends. One item more than the page is asked
    for, so a full last page is not followed by an empty one.
    """
    request = dict(query)
    if cursor:
        request["ExclusiveStartKey"] = decode_cursor(cursor, key_attributes, fixed, bounds)
    items = []
    while True:
        request["Limit"] = limit + 1 - len(items)
        answer = table.query(**request)
        items.extend(answer.get("Items", []))
        if len(items) > limit:
            items = items[:limit]
            return items, encode_cursor({a: items[-1][a] for a in key_attributes})
        if "LastEvaluatedKey" not in answer:
            return items, None
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def page_sorted(items, sort_key, *, limit, cursor):
    """A page of an in-memory list sorted by ``sort_key`` (a unique string per item).

    For lists assembled from a few queries (a teacher's people across their
    classes); the cursor is the last answered item's sort key.
    """
    after = decode_cursor(cursor, ["after"])["after"] if cursor else None
    ordered = sorted(items, key=sort_key)
    if after is not None:
        ordered = [item for item in ordered if sort_key(item) > after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, (encode_cursor({"after": sort_key(page[-1])}) if more else None)


def page_answer(name, items, next_cursor):
    """The JSON of one page: ``{name: [...], "next_cursor": ...}``."""
    return {name: items, "next_cursor": next_cursor}
