"""One lazy, cached factory for boto3 clients and DynamoDB tables.

Endpoints are never passed here: botocore itself honours ``AWS_ENDPOINT_URL``
and the per-service ``AWS_ENDPOINT_URL_<SERVICE>`` variables, which is how the
one-machine stack points the same code at moto server and the built-in face
engine. Tests call :meth:`ClientFactory.reset` (or build a fresh factory).
"""
import os
import random
import threading

import boto3
from boto3.dynamodb.conditions import ConditionExpressionBuilder
from botocore.config import Config

# Retries with backoff for throttling; short connect timeout so a dead local
# endpoint fails fast instead of hanging a Lambda until its timeout.
_BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"},
                      connect_timeout=5, read_timeout=60)
# Presigned URLs and POSTs signed with SigV4 (SigV2 is refused in newer
# regions and deprecated everywhere), naming the bucket's regional virtual
# host (bucket.s3.<region>.amazonaws.com), never the global endpoint, which
# redirects browsers (breaking CORS) until DNS has caught up. A local
# endpoint (moto server) is addressed by path: "bucket.localhost" resolves nowhere.
_S3_CONFIG = _BOTO_CONFIG.merge(Config(
    signature_version="s3v4",
    s3={"addressing_style": "virtual", "us_east_1_regional_endpoint": "regional"}))
_S3_LOCAL_CONFIG = _BOTO_CONFIG.merge(Config(signature_version="s3v4",
                                             s3={"addressing_style": "path"}))


#: Pauses (s) before each new try of a DynamoDB write that met a running transaction.
_CONFLICT_PAUSES = (0.02, 0.05, 0.1, 0.2)


def retry_transaction_conflicts(attempts, response=None, **_):
    """botocore ``needs-retry`` handler of every DynamoDB client made here: a
    write refused because its item is part of a running transaction is tried
    again after a short, random pause (at most len(_CONFLICT_PAUSES) times).

    DynamoDB refuses a plain write to an item a TransactWriteItems is using
    (``TransactionConflictException``) instead of queueing it, and botocore's
    retry modes do not retry that code: a person's record is checked by every
    enrolment's transaction and a roster entry is written by one, so an edit
    or an unenrolment meeting an import would otherwise fail. Answers the
    pause, or None (botocore's own handler decides)."""
    if response is None or attempts > len(_CONFLICT_PAUSES):
        return None
    if response[1].get("Error", {}).get("Code") != "TransactionConflictException":
        return None
    return _CONFLICT_PAUSES[attempts - 1] * random.uniform(0.5, 1.5)


def _s3_config():
    local = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return _S3_LOCAL_CONFIG if local else _S3_CONFIG


class _PerThreadConditionBuilder(ConditionExpressionBuilder):
    """boto3's builder of ``Key(...)``/``Attr(...)`` expressions numbers the
    placeholders (#n0, :v0...) with counters kept on itself, and a Table
    resource has one builder for every thread: two requests built at once
    (the local API server runs one thread per connection) reset each other's
    counters and gave two values one name, so DynamoDB refused the query now
    and then ("Query condition missed key schema element"; boto3 issue 1332).
    Here each thread counts on its own (the local API server's threads, and
    Lambda code that queries from several threads, e.g. the reports)."""

    def __init__(self):
        self._counts = threading.local()
        super().__init__()

    def _per_thread(name):
        return property(lambda self: getattr(self._counts, name, 0),
                        lambda self, value: setattr(self._counts, name, value))

    _name_count = _per_thread("names")
    _value_count = _per_thread("values")
    del _per_thread


def _safe_for_threads(resource):
    """The resource's expression builder made safe to share between threads."""
    injector = getattr(resource, "_injector", None)
    if injector is None or not hasattr(injector, "_condition_builder"):
        raise RuntimeError("boto3's DynamoDB resource changed: check _PerThreadConditionBuilder")
    injector._condition_builder = _PerThreadConditionBuilder()
    return resource


class ClientFactory:
    def __init__(self, region=None, session_factory=boto3.session.Session):
        self._region = region
        self._session_factory = session_factory
        self._lock = threading.Lock()
        self._session = None
        self._clients = {}
        self._tables = {}

    def _get_session(self):
        if self._session is None:
            self._session = self._session_factory(region_name=self._region)
            # every DynamoDB client and resource made from it, ahead of
            # botocore's own retry handler
            self._session.events.register("needs-retry.dynamodb", retry_transaction_conflicts)
        return self._session

    def client(self, service_name, region=None):
        """A cached low-level client for ``service_name`` (thread-safe).

        ``region``: another region than the factory's, for a service that
        lives in one place (ACM certificates for CloudFront are in us-east-1).
        """
        key = service_name if region is None else (service_name, region)
        with self._lock:
            if key not in self._clients:
                config = _s3_config() if service_name == "s3" else _BOTO_CONFIG
                self._clients[key] = self._get_session().client(
                    service_name, config=config, region_name=region)
            return self._clients[key]

    def table(self, table_name):
        """A cached ``boto3`` DynamoDB Table resource."""
        with self._lock:
            if table_name not in self._tables:
                resource = _safe_for_threads(
                    self._get_session().resource("dynamodb", config=_BOTO_CONFIG))
                self._tables[table_name] = resource.Table(table_name)
            return self._tables[table_name]

    def register(self, service_name, client):
        """Use ``client`` for ``service_name`` (tests hand in stubs this way)."""
        with self._lock:
            self._clients[service_name] = client

    def reset(self):
        """Forget every client, so the next call sees the current environment."""
        with self._lock:
            self._session = None
            self._clients.clear()
            self._tables.clear()
