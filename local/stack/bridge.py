"""The event bridge: AWS's event wiring, played on one machine.

    python -m local.stack.bridge --stage dev      (the launcher starts it with the env set)

On AWS, S3 invokes ``on_video_uploaded`` and SNS invokes
``on_face_search_complete`` directly. moto cannot invoke a Lambda that is
not deployed, but it can notify SQS. So, for every S3 and SNS event source
the Chalice app declares (``app.event_sources``), the bridge

* makes a queue (plus a dead-letter queue: after ``max_attempts`` failed
  deliveries a message is parked there, as Lambda's async retries give up);
* points the bucket's notifications (same events, prefix and suffix) or a
  topic subscription at that queue;
* long-polls the queue and hands each message to the same handler that runs
  on Lambda, as the event JSON Lambda would get, with a Lambda-like context;
* deletes a message only after the handler returned; a failure is logged and
  the message comes back after a short back-off.

The app's own SQS queues (``@app.on_sqs_message``) need no wiring: they are
provisioned in moto like the rest, and the bridge long-polls them and hands
each message to its handler as Lambda's SQS event source does. Scheduled
handlers (``@app.schedule``) are called once when the bridge starts and then
at their rate, as EventBridge would.

Nothing here is deployed; the app's code does not know it is running locally.
"""
import argparse
import importlib
import json
import logging
import signal
import sys
import threading
import time
import traceback
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from chalice.app import S3EventConfig, ScheduledEventConfig, SNSEventConfig, SQSEventConfig
from chalice.local import LambdaContext

from ops.stage_config import apply_stage_environment, load_config

log = logging.getLogger("bridge")

#: Queue names start with this, so they are easy to tell from the app's own.
QUEUE_PREFIX = "rollcall-local-events-"


class BridgeError(RuntimeError):
    """The wiring cannot be made (a bucket or topic is missing); says what to do."""


class Route:
    """One event source of the app: where its events come from and who gets them."""

    def __init__(self, source, handler, timeout_seconds=60, memory_mb=512):
        self.source = source            # chalice S3EventConfig or SNSEventConfig
        self.handler = handler          # the decorated function: handler(event, context)
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.queue_url = None
        self.queue_arn = None

    @property
    def name(self):
        return self.source.name

    @property
    def kind(self):
        for kind, config in (("s3", S3EventConfig), ("sqs", SQSEventConfig),
                             ("schedule", ScheduledEventConfig)):
            if isinstance(self.source, config):
                return kind
        return "sns"

    @property
    def every_seconds(self):
        """A scheduled route's period (``Rate`` expressions; others: hourly)."""
        rate = getattr(self.source, "schedule_expression", None)
        units = {"MINUTES": 60, "HOURS": 3600, "DAYS": 86400}
        unit = getattr(getattr(rate, "unit", None), "upper", lambda: "")()
        return rate.value * units[unit] if unit in units else 3600

    @property
    def queue_name(self):
        return (QUEUE_PREFIX + self.name)[:80]

    def __repr__(self):
        return f"Route({self.kind}:{self.name})"


def lambda_settings(stage, name, config=None):
    """(timeout s, memory MB) of a function in ``.chalice/config.json``, as Lambda has them."""
    config = config or load_config()
    stage_config = config.get("stages", {}).get(stage, {})
    function = stage_config.get("lambda_functions", {}).get(name, {})
    timeout = function.get("lambda_timeout", stage_config.get(
        "lambda_timeout", config.get("lambda_timeout", 60)))
    memory = function.get("lambda_memory_size", stage_config.get(
        "lambda_memory_size", config.get("lambda_memory_size", 128)))
    return int(timeout), int(memory)


def routes_from_app(app_module, stage="dev", config=None):
    """A :class:`Route` for each S3, SNS, SQS and schedule source of ``app_module.app``."""
    routes = []
    for source in app_module.app.event_sources:
        if not isinstance(source, (S3EventConfig, SNSEventConfig, SQSEventConfig,
                                   ScheduledEventConfig)):
            continue
        handler = getattr(app_module, source.handler_string.rsplit(".", 1)[-1])
        timeout, memory = lambda_settings(stage, source.name, config)
        routes.append(Route(source, handler, timeout, memory))
    return routes


# -- events as Lambda receives them ----------------------------------------------
def s3_lambda_events(body):
    """The Lambda events (one per record, as S3 invokes) in an S3 notification body.

    S3 first sends an ``s3:TestEvent`` when notifications are set up: no events.
    moto's records lack a few fields AWS sends; they are filled in so a
    handler written against this sees what it will see on AWS.
    """
    message = json.loads(body)
    events = []
    for record in message.get("Records", []):
        record = dict(record)
        record.setdefault("userIdentity", {"principalId": "AWS:LOCAL"})
        record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
        record.setdefault("responseElements", {"x-amz-request-id": uuid.uuid4().hex[:16],
                                               "x-amz-id-2": uuid.uuid4().hex})
        s3 = record.setdefault("s3", {})
        s3.setdefault("object", {}).setdefault("sequencer", f"{time.time_ns():X}")
        events.append({"Records": [record]})
    return events


def sns_lambda_event(body, subscription_arn):
    """The Lambda event for an SNS message that reached SQS in its JSON envelope."""
    envelope = json.loads(body)
    return {"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": {
            "Type": envelope.get("Type", "Notification"),
            "MessageId": envelope.get("MessageId"),
            "TopicArn": envelope.get("TopicArn"),
            "Subject": envelope.get("Subject"),
            "Message": envelope.get("Message"),
            "Timestamp": envelope.get("Timestamp"),
            "SignatureVersion": envelope.get("SignatureVersion", "1"),
            "Signature": envelope.get("Signature", ""),
            "SigningCertUrl": envelope.get("SigningCertURL", ""),
            "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
            "MessageAttributes": envelope.get("MessageAttributes", {}),
        },
    }]}


def sqs_lambda_event(message, queue_arn):
    """The Lambda event for one message of an app's own queue (batch size 1)."""
    return {"Records": [{
        "messageId": message.get("MessageId"),
        "receiptHandle": message.get("ReceiptHandle"),
        "body": message.get("Body"),
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1",
    }]}


def scheduled_event(route):
    """The event EventBridge sends a scheduled function."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "000000000000", "time": now,
            "region": "us-east-1", "resources": [f"local:rule/{route.name}"], "detail": {}}


class EventBridge:
    """Wires the app's event sources to queues and delivers their messages."""

    def __init__(self, sqs, s3, sns, routes, wait_seconds=5, max_attempts=3,
                 retry_delay_seconds=5, on_delivery=None):
        self.sqs = sqs
        self.s3 = s3
        self.sns = sns
        self.routes = routes
        self.wait_seconds = wait_seconds
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        self.on_delivery = on_delivery    # tests: called with (route, event) after success
        self._stop = threading.Event()
        self._threads = []
        self._subscriptions = {}

    # -- wiring (idempotent) ------------------------------------------------------
    def setup(self):
        for route in self.routes:
            if route.kind == "sqs":
                self._find_app_queue(route)
            elif route.kind != "schedule":
                self._ensure_queue(route)
        buckets = {}
        for route in self.routes:
            if route.kind == "s3":
                buckets.setdefault(route.source.bucket, []).append(route)
            elif route.kind == "sns":
                self._ensure_subscription(route)
        for bucket, routes in buckets.items():
            self._ensure_bucket_notifications(bucket, routes)

    def _ensure_queue(self, route):
        dead = self.sqs.create_queue(QueueName=(route.queue_name + "-failed")[:80])["QueueUrl"]
        dead_arn = self._queue_arn(dead)
        route.queue_url = self.sqs.create_queue(QueueName=route.queue_name)["QueueUrl"]
        route.queue_arn = self._queue_arn(route.queue_url)
        self.sqs.set_queue_attributes(QueueUrl=route.queue_url, Attributes={
            # A message stays hidden while its handler may still run, as on Lambda.
            "VisibilityTimeout": str(route.timeout_seconds + 30),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn,
                                         "maxReceiveCount": self.max_attempts}),
        })

    def _find_app_queue(self, route):
        """The app's own queue (provisioning made it, with its dead-letter queue)."""
        try:
            route.queue_url = self.sqs.get_queue_url(QueueName=route.source.queue)["QueueUrl"]
        except ClientError as error:
            raise BridgeError(f"queue {route.source.queue} does not exist: run provisioning "
                              "first (python -m ops.provision --stage dev)") from error
        route.queue_arn = self._queue_arn(route.queue_url)

    def _queue_arn(self, url):
        return self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def _ensure_bucket_notifications(self, bucket, routes):
        try:
            current = self.s3.get_bucket_notification_configuration(Bucket=bucket)
        except ClientError as error:
            if error.response["Error"]["Code"] == "NoSuchBucket":
                raise BridgeError(f"bucket {bucket} does not exist: run provisioning first "
                                  "(python -m ops.provision --stage dev)") from error
            raise
        ours = {"rollcall-local-" + route.name for route in routes}
        queues = [q for q in current.get("QueueConfigurations", []) if q.get("Id") not in ours]
        for route in routes:
            rules = [{"Name": name, "Value": value}
                     for name, value in (("prefix", route.source.prefix),
                                         ("suffix", route.source.suffix)) if value]
            entry = {"Id": "rollcall-local-" + route.name, "QueueArn": route.queue_arn,
                     "Events": list(route.source.events)}
            if rules:
                entry["Filter"] = {"Key": {"FilterRules": rules}}
            queues.append(entry)
        config = {"QueueConfigurations": queues}
        for key in ("TopicConfigurations", "LambdaFunctionConfigurations",
                    "EventBridgeConfiguration"):
            if current.get(key):
                config[key] = current[key]
        self.s3.put_bucket_notification_configuration(Bucket=bucket,
                                                      NotificationConfiguration=config)

    def _topic_arn(self, topic):
        if topic.startswith("arn:"):
            return topic
        for page in self.sns.get_paginator("list_topics").paginate():
            for entry in page["Topics"]:
                if entry["TopicArn"].rsplit(":", 1)[-1] == topic:
                    return entry["TopicArn"]
        raise BridgeError(f"SNS topic {topic} does not exist: run provisioning first "
                          "(python -m ops.provision --stage dev)")

    def _ensure_subscription(self, route):
        topic_arn = self._topic_arn(route.source.topic)
        for page in self.sns.get_paginator("list_subscriptions_by_topic").paginate(
                TopicArn=topic_arn):
            for sub in page["Subscriptions"]:
                if sub["Protocol"] == "sqs" and sub["Endpoint"] == route.queue_arn:
                    self._subscriptions[route.name] = sub["SubscriptionArn"]
                    return
        self._subscriptions[route.name] = self.sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=route.queue_arn,
            ReturnSubscriptionArn=True)["SubscriptionArn"]

    # -- delivery -----------------------------------------------------------------
    def events_for(self, route, body):
        if route.kind == "s3":
            return s3_lambda_events(body)
        return [sns_lambda_event(body, self._subscriptions.get(route.name, ""))]

    def run_scheduled(self, route):
        """Call a scheduled handler once, as EventBridge would; False if it raised."""
        context = LambdaContext(route.name, route.memory_mb,
                                max_runtime_ms=route.timeout_seconds * 1000)
        try:
            route.handler(scheduled_event(route), context)
        except Exception:
            log.error("%s failed:\n%s", route.name, traceback.format_exc().rstrip())
            return False
        log.info("%s: ran (next in %d s)", route.name, route.every_seconds)
        return True

    def poll_once(self, route, wait_seconds=None):
        """Receive and deliver one batch; the number of messages handled."""
        if route.kind == "schedule":
            return 0  # nothing to receive: _worker calls it at its rate
        wait = self.wait_seconds if wait_seconds is None else wait_seconds
        answer = self.sqs.receive_message(
            QueueUrl=route.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=wait,
            AttributeNames=["ApproximateReceiveCount"])
        handled = 0
        for message in answer.get("Messages", []):
            if self._stop.is_set():
                # Stopping: give it back at once rather than after the visibility timeout.
                self.sqs.change_message_visibility(QueueUrl=route.queue_url,
                                                   ReceiptHandle=message["ReceiptHandle"],
                                                   VisibilityTimeout=0)
                continue
            if self.deliver(route, message):
                handled += 1
        return handled

    def deliver(self, route, message):
        """Run the handler on the message's events; delete it only if all succeeded."""
        attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        try:
            events = ([sqs_lambda_event(message, route.queue_arn)] if route.kind == "sqs"
                      else self.events_for(route, message["Body"]))
        except (ValueError, TypeError, AttributeError) as error:
            # Not JSON: no handler can ever take it; drop it loudly.
            log.error("%s: dropped a message that is not an event (%s)", route.name, error)
            self._delete(route, message)
            return False
        started = time.monotonic()
        try:
            for event in events:
                context = LambdaContext(route.name, route.memory_mb,
                                        max_runtime_ms=route.timeout_seconds * 1000)
                route.handler(event, context)
                if self.on_delivery:
                    self.on_delivery(route, event)
        except Exception:
            final = attempt >= self.max_attempts
            log.error("%s failed (attempt %d of %d)%s:\n%s", route.name, attempt,
                      self.max_attempts,
                      "; the message goes to the dead-letter queue" if final
                      else f"; retrying in {self.retry_delay_seconds * attempt} s",
                      traceback.format_exc().rstrip())
            self.sqs.change_message_visibility(
                QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=0 if final else self.retry_delay_seconds * attempt)
            return False
        elapsed = time.monotonic() - started
        self._delete(route, message)
        if events:
            log.info("%s: delivered %d event(s) in %.2f s%s", route.name, len(events), elapsed,
                     "" if elapsed <= route.timeout_seconds
                     else f" (longer than its Lambda timeout of {route.timeout_seconds} s)")
        return True

    def _delete(self, route, message):
        self.sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _worker(self, route):
        if route.kind == "schedule":
            while not self._stop.is_set():
                self.run_scheduled(route)
                self._stop.wait(route.every_seconds)
            return
        while not self._stop.is_set():
            try:
                self.poll_once(route)
            except Exception:
                log.exception("%s: polling failed; trying again shortly", route.name)
                self._stop.wait(2)

    def start(self):
        for route in self.routes:
            thread = threading.Thread(target=self._worker, args=(route,),
                                      name=f"bridge-{route.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout=None):
        """Stop polling; waits for a running handler (and the current poll) to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m local.stack.bridge",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--app", default="app", help="module holding the Chalice app")
    parser.add_argument("--wait-seconds", type=int, default=5,
                        help="SQS long-poll time (also bounds how long a stop takes)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "found credentials..." noise
    apply_stage_environment(args.stage)
    app_module = importlib.import_module(args.app)
    routes = routes_from_app(app_module, args.stage)
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, read_timeout=60)
    bridge = EventBridge(boto3.client("sqs", config=config), boto3.client("s3", config=config),
                         boto3.client("sns", config=config), routes,
                         wait_seconds=args.wait_seconds)
    try:
        bridge.setup()
    except BridgeError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    bridge.start()
    def origin(route):
        if route.kind == "s3":
            return f"s3://{route.source.bucket}/{route.source.prefix or ''}"
        if route.kind == "sqs":
            return f"sqs:{route.source.queue}"
        if route.kind == "schedule":
            return f"every {route.every_seconds} s"
        return f"sns:{route.source.topic}"
    described = ", ".join(f"{r.name} <- {origin(r)}" for r in routes)
    print(f"ready: {described or 'the app declares no S3 or SNS events'}", flush=True)
    while not stopping.wait(0.5):
        pass
    bridge.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
