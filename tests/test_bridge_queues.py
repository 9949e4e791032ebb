"""The event bridge also feeds the app's own SQS queues and runs its scheduled handlers.

``cut_evidence`` (``@app.on_sqs_message``) gets each message of the evidence
queue as Lambda's SQS event source would deliver it, and ``sweep_retention``
(``@app.schedule``) runs when the bridge starts and then at its rate.
"""
import json
import time
import types

from chalice import Chalice, Rate

from local.stack.bridge import EventBridge, routes_from_app
from tests.stack_support import boto_client, running_moto, wait_for


def test_bridge_feeds_an_app_queue_and_runs_a_schedule(tmp_path):
    app = Chalice(app_name="bridge-queues")
    seen = {"sqs": [], "schedule": []}

    @app.on_sqs_message(queue="queues-evidence", batch_size=1, name="queues_cut")
    def cut(event):
        for record in event:
            seen["sqs"].append((record.body, event.context.function_name,
                                event.to_dict()["Records"][0]["eventSource"]))

    @app.schedule(Rate(6, unit=Rate.HOURS), name="queues_sweep")
    def sweep(event):
        seen["schedule"].append(event.to_dict()["detail-type"])

    module = types.SimpleNamespace(app=app, cut=cut, sweep=sweep)
    with running_moto(tmp_path / "moto") as moto:
        sqs = boto_client("sqs", moto.url)
        url = sqs.create_queue(QueueName="queues-evidence")["QueueUrl"]
        bridge = EventBridge(sqs, boto_client("s3", moto.url), boto_client("sns", moto.url),
                             routes_from_app(module, "dev", {}), wait_seconds=1)
        bridge.setup()
        assert {r.kind for r in bridge.routes} == {"sqs", "schedule"}
        assert next(r for r in bridge.routes if r.kind == "schedule").every_seconds == 21600
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"session_id": "s"}))
        bridge.start()
        try:
            wait_for(lambda: seen["sqs"] and seen["schedule"], 15, what="both handlers")
            time.sleep(1.5)
        finally:
            bridge.stop()
        assert seen["sqs"] == [(json.dumps({"session_id": "s"}), "queues_cut", "aws:sqs")]
        assert seen["schedule"] == ["Scheduled Event"]  # once at start; next in 6 h
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "0"
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
