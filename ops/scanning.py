"""Whole-table reads, for operator tools only (backfills, archives, backups).

Lambda code never scans (tests/test_layering.py checks it); these run with an
operator's credentials, never on a request path.
"""


def scan_all(table, **kwargs):
    """Yield every item of a Scan, following ``LastEvaluatedKey``."""
    while True:
        page = table.scan(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
