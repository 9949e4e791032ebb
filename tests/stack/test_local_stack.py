"""Parts of the one-machine stack, each against a real moto server process.

* local.stack.moto_state: the AWS state (tables, objects with their bodies, queues
  with their messages, topics, subscriptions, secrets, roles, CORS,
  notifications) survives a stop and a crash;
* local.stack.bridge: S3 and SNS events reach the app's handlers as Lambda events,
  a message is deleted only after its handler succeeded, failures retry and
  end in a dead-letter queue.
"""
import json
import time
import types
from urllib.parse import unquote_plus

import pytest
import requests
from chalice import Chalice

from local.stack.bridge import EventBridge, routes_from_app
from tests.support.stack import MotoProcess, boto_client, presigned_post, running_moto, wait_for

pytestmark = pytest.mark.stack

ORIGIN = "http://127.0.0.1:9999"
BODY = bytes(range(256)) * 4096  # 1 MiB, every byte value


def _fill(url):
    """One of everything the app keeps; answers what to look for afterwards."""
    s3, ddb, sqs = boto_client("s3", url), boto_client("dynamodb", url), boto_client("sqs", url)
    sns, ssm, iam = boto_client("sns", url), boto_client("ssm", url), boto_client("iam", url)
    s3.create_bucket(Bucket="photos-bucket")
    s3.put_bucket_cors(Bucket="photos-bucket", CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET", "POST"], "AllowedHeaders": ["*"]}]})
    post = s3.generate_presigned_post(Bucket="photos-bucket", Key="photos/ünï.jpg",
                                      Fields={"Content-Type": "image/jpeg"},
                                      Conditions=[{"Content-Type": "image/jpeg"}])
    assert presigned_post(post, BODY, "x.jpg", "image/jpeg", origin=ORIGIN).status_code == 204
    s3.put_object(Bucket="photos-bucket", Key="same-body-again", Body=BODY)
    ddb.create_table(
        TableName="things", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_sk", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": [{"AttributeName": "sk", "KeyType": "HASH"}]}])
    for n in range(30):
        ddb.put_item(TableName="things", Item={"pk": {"S": f"p{n % 3}"}, "sk": {"S": f"s{n}"},
                                               "n": {"N": str(n)}, "name": {"S": "Zoë"}})
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="kept across restarts")
    topic = sns.create_topic(Name="done")["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    ssm.put_parameter(Name="/rollcall/test/secret", Type="SecureString", Value="s3cr3t")
    iam.create_role(RoleName="publisher", AssumeRolePolicyDocument="{}")
    return {"queue": queue, "topic": topic, "queue_arn": queue_arn}


def _check(url, made):
    s3, ddb, sqs = boto_client("s3", url), boto_client("dynamodb", url), boto_client("sqs", url)
    sns, ssm, iam = boto_client("sns", url), boto_client("ssm", url), boto_client("iam", url)
    assert s3.get_object(Bucket="photos-bucket", Key="photos/ünï.jpg")["Body"].read() == BODY
    stored = s3.head_object(Bucket="photos-bucket", Key="photos/ünï.jpg")
    assert stored["ContentType"] == "image/jpeg"
    assert s3.get_bucket_cors(Bucket="photos-bucket")["CORSRules"][0]["AllowedOrigins"] == [ORIGIN]
    items = ddb.scan(TableName="things")["Items"]
    assert len(items) == 30 and {i["name"]["S"] for i in items} == {"Zoë"}
    by_sk = ddb.query(TableName="things", IndexName="by_sk",
                      KeyConditionExpression="sk = :s",
                      ExpressionAttributeValues={":s": {"S": "s7"}})["Items"]
    assert [i["n"]["N"] for i in by_sk] == ["7"]
    got = sqs.receive_message(QueueUrl=made["queue"], WaitTimeSeconds=1)["Messages"]
    assert got[0]["Body"] == "kept across restarts"
    subs = sns.list_subscriptions_by_topic(TopicArn=made["topic"])["Subscriptions"]
    assert [s["Endpoint"] for s in subs] == [made["queue_arn"]]
    assert ssm.get_parameter(Name="/rollcall/test/secret", WithDecryption=True)[
        "Parameter"]["Value"] == "s3cr3t"
    assert iam.get_role(RoleName="publisher")["Role"]["RoleName"] == "publisher"


@pytest.mark.slow
def test_state_survives_a_stop_and_start(tmp_path):
    state = tmp_path / "moto"
    with running_moto(state) as moto:
        made = _fill(moto.url)
    assert moto.proc.returncode == 0
    assert "saved the AWS state" in moto.log.read_text()
    # Bodies are stored once per content, outside the pickle.
    assert len(list((state / "blobs").iterdir())) == 1
    assert (state / "moto-state.pickle").stat().st_size < len(BODY)
    with running_moto(state) as moto:
        assert "restored the saved AWS state" in moto.log.read_text()
        _check(moto.url, made)
        s3 = boto_client("s3", moto.url)
        s3.delete_object(Bucket="photos-bucket", Key="photos/ünï.jpg")
        s3.delete_object(Bucket="photos-bucket", Key="same-body-again")
    # Bodies of deleted objects do not stay on disk.
    assert list((state / "blobs").iterdir()) == []


def _wait_saved(moto):
    """Until the server says every change so far is on disk; its status."""
    def saved():
        status = requests.get(moto.url + "/_rollcall/state", timeout=5).json()
        return status if status["saved"] else None
    # The server spaces snapshots by 10x the last one's duration: on a busy
    # machine that is tens of seconds, so this waits generously.
    return wait_for(saved, 120, what="every change to be saved")


@pytest.mark.slow
def test_state_survives_a_crash_after_the_periodic_snapshot(tmp_path):
    state = tmp_path / "moto"
    moto = MotoProcess(state, interval=0.3).start()
    try:
        made = _fill(moto.url)
        # The periodic snapshot catches up without any stop.
        assert _wait_saved(moto)["snapshots"] >= 1
    finally:
        moto.kill()  # SIGKILL: no final snapshot
    with running_moto(state) as moto:
        _check(moto.url, made)


def test_buckets_answer_the_browser_preflight_for_the_site_origin_only(shared_moto):
    moto = shared_moto
    s3 = boto_client("s3", moto.url)
    s3.create_bucket(Bucket="cors-bucket")
    s3.put_bucket_cors(Bucket="cors-bucket", CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [ORIGIN], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"]}]})
    url = moto.url + "/cors-bucket"
    ok = requests.options(url, headers={"Origin": ORIGIN,
                                        "Access-Control-Request-Method": "POST"})
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = requests.options(url, headers={"Origin": "http://evil.example",
                                           "Access-Control-Request-Method": "POST"})
    assert other.status_code == 403


def test_reset_is_refused(shared_moto):
    answer = requests.post(shared_moto.url + "/moto-api/reset")
    assert answer.status_code == 403


# -- the bridge --------------------------------------------------------------------
def _fake_app(fail_times, name):
    """A Chalice app with the two kinds of event handler the real app has.

    ``name`` keeps its bucket, topic and function names apart from other tests'."""
    app = Chalice(app_name="bridge-test")
    seen = {"s3": [], "sns": [], "calls": 0}

    @app.on_s3_event(bucket=f"{name}-videos", events=["s3:ObjectCreated:*"], prefix="videos/",
                     name=f"{name}_upload")
    def on_upload(event):
        seen["calls"] += 1
        if seen["calls"] <= fail_times:
            raise RuntimeError("simulated failure")
        seen["s3"].append((event.bucket, event.key, event.context.function_name,
                           event.context.get_remaining_time_in_millis()))

    @app.on_sns_message(topic=f"{name}-done", name=f"{name}_done")
    def on_done(event):
        seen["sns"].append((event.message, event.subject, event.to_dict()))

    module = types.SimpleNamespace(app=app, on_upload=on_upload, on_done=on_done)
    return module, seen


def _bridge(url, module, name, **kwargs):
    s3, sns = boto_client("s3", url), boto_client("sns", url)
    s3.create_bucket(Bucket=f"{name}-videos")
    sns.create_topic(Name=f"{name}-done")
    config = {"lambda_timeout": 40, "stages": {"dev": {"lambda_functions": {
        f"{name}_upload": {"lambda_timeout": 120}}}}}
    bridge = EventBridge(boto_client("sqs", url), s3, sns,
                         routes_from_app(module, "dev", config), wait_seconds=1, **kwargs)
    bridge.setup()
    bridge.setup()  # idempotent
    return bridge


def _drain(bridge, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for route in bridge.routes:
            bridge.poll_once(route, wait_seconds=0)
        time.sleep(0.1)


def test_bridge_delivers_s3_and_sns_events_as_lambda_does(shared_moto):
    moto = shared_moto
    module, seen = _fake_app(fail_times=0, name="deliver")
    bridge = _bridge(moto.url, module, "deliver")
    s3, sns = boto_client("s3", moto.url), boto_client("sns", moto.url)
    s3.put_object(Bucket="deliver-videos", Key="videos/week 1+ä.mp4", Body=b"x")
    s3.put_object(Bucket="deliver-videos", Key="elsewhere/no.mp4", Body=b"x")
    topic = sns.create_topic(Name="deliver-done")["TopicArn"]
    sns.publish(TopicArn=topic, Subject="job", Message=json.dumps({"JobId": "j1"}))
    bridge.start()
    try:
        wait_for(lambda: seen["s3"] and seen["sns"], 15, what="both events")
        time.sleep(1.5)  # nothing else arrives (the other prefix, S3's test event)
    finally:
        bridge.stop()
    # Chalice decoded the key (S3 sends it URL-encoded); the context is Lambda's.
    assert len(seen["s3"]) == 1
    bucket, key, function_name, remaining_ms = seen["s3"][0]
    assert (bucket, key, function_name) == ("deliver-videos", "videos/week 1+ä.mp4",
                                            "deliver_upload")
    assert 110_000 < remaining_ms <= 120_000
    message, subject, raw = seen["sns"][0]
    assert json.loads(message) == {"JobId": "j1"} and subject == "job"
    record = raw["Records"][0]
    assert record["EventSource"] == "aws:sns" and record["Sns"]["TopicArn"] == topic
    assert record["EventSubscriptionArn"].startswith(topic + ":")
    sqs = boto_client("sqs", moto.url)
    for route in bridge.routes:
        attrs = sqs.get_queue_attributes(QueueUrl=route.queue_url, AttributeNames=["All"])
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
        assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    # Visibility follows the function's Lambda timeout from the config.
    upload_route = next(r for r in bridge.routes if r.kind == "s3")
    attrs = sqs.get_queue_attributes(QueueUrl=upload_route.queue_url,
                                     AttributeNames=["VisibilityTimeout"])
    assert attrs["Attributes"]["VisibilityTimeout"] == "150"


def test_a_failed_handler_gets_the_message_again(shared_moto):
    module, seen = _fake_app(fail_times=1, name="retry")
    bridge = _bridge(shared_moto.url, module, "retry", retry_delay_seconds=1)
    boto_client("s3", shared_moto.url).put_object(Bucket="retry-videos", Key="videos/a.mp4",
                                                  Body=b"x")
    _drain(bridge, 4)
    assert seen["calls"] == 2
    assert [k for _, k, _, _ in seen["s3"]] == ["videos/a.mp4"]


def test_a_message_that_always_fails_ends_in_the_dead_letter_queue(shared_moto):
    module, seen = _fake_app(fail_times=1000, name="dead")
    bridge = _bridge(shared_moto.url, module, "dead", retry_delay_seconds=0, max_attempts=2)
    boto_client("s3", shared_moto.url).put_object(Bucket="dead-videos", Key="videos/a.mp4",
                                                  Body=b"x")
    _drain(bridge, 3)
    assert seen["calls"] == 2
    sqs = boto_client("sqs", shared_moto.url)
    route = next(r for r in bridge.routes if r.kind == "s3")
    dead = sqs.get_queue_url(QueueName=route.queue_name + "-failed")["QueueUrl"]
    parked = sqs.receive_message(QueueUrl=dead, WaitTimeSeconds=1)["Messages"]
    key = json.loads(parked[0]["Body"])["Records"][0]["s3"]["object"]["key"]
    assert unquote_plus(key) == "videos/a.mp4"


def test_reads_and_empty_polls_do_not_rewrite_the_snapshot(shared_moto):
    sqs, ddb = boto_client("sqs", shared_moto.url), boto_client("dynamodb", shared_moto.url)
    queue = sqs.create_queue(QueueName="idle-queue")["QueueUrl"]
    snapshot = shared_moto.state_dir / "moto-state.pickle"
    _wait_saved(shared_moto)
    before = snapshot.stat().st_mtime_ns
    for _ in range(3):
        sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
        ddb.list_tables()
        time.sleep(0.4)
    # Not marked as changed (a snapshot may be tens of seconds away, so the
    # file alone would not show a wrong mark), and not rewritten.
    assert requests.get(shared_moto.url + "/_rollcall/state", timeout=5).json()["saved"]
    assert snapshot.stat().st_mtime_ns == before
    sqs.send_message(QueueUrl=queue, MessageBody="a change")
    # However loaded the machine, the server says when the change is in a snapshot.
    _wait_saved(shared_moto)
    assert snapshot.stat().st_mtime_ns != before


# -- the site server ------------------------------------------------------------------
def test_site_server_serves_the_built_site_with_safe_headers(tmp_path):
    import threading

    from ops.publish import build_site
    from local.stack.site_server import make_server

    site = build_site(tmp_path / "site", "http://127.0.0.1:8123")
    server = make_server("127.0.0.1", 0, site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = requests.get(base + "/", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Cache-Control"] == "no-store"
        config = requests.get(base + "/config.js", timeout=10)
        assert config.headers["Content-Type"].startswith("text/javascript")
        assert '"http://127.0.0.1:8123"' in config.text
        assert config.headers["Cache-Control"] == "no-store"
        module = requests.get(base + "/js/app.js", timeout=10)
        assert module.status_code == 200
        assert module.headers["Content-Type"].startswith("text/javascript")
        assert requests.get(base + "/js/", timeout=10).status_code == 404  # no listings
        assert requests.get(base + "/scss/main.scss", timeout=10).status_code == 404
        assert requests.get(base + "/../../etc/passwd", timeout=10).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


# -- acknowledged writes survive a crash (the journal) ----------------------------------
def test_every_acknowledged_change_survives_a_crash_before_any_snapshot(tmp_path):
    state = tmp_path / "moto"
    # Snapshots far apart: only the journal can keep what follows.
    moto = MotoProcess(state, interval=3600).start()
    try:
        made = _fill(moto.url)
        big = bytes(range(256)) * 8192  # 2 MiB: kept beside the journal, not in it
        s3 = boto_client("s3", moto.url)
        s3.put_object(Bucket="photos-bucket", Key="big", Body=big)
        s3.put_object(Bucket="photos-bucket", Key="gone", Body=b"x")
        s3.delete_object(Bucket="photos-bucket", Key="gone")
        ddb = boto_client("dynamodb", moto.url)
        ddb.update_item(TableName="things", Key={"pk": {"S": "p0"}, "sk": {"S": "s0"}},
                        UpdateExpression="SET n = n + :one",
                        ExpressionAttributeValues={":one": {"N": "1"}})
        assert requests.get(moto.url + "/_rollcall/state", timeout=5).json()["snapshots"] == 0
    finally:
        moto.kill()  # SIGKILL right after the last answer: no snapshot at all
    with running_moto(state) as moto:
        assert "replayed" in moto.log.read_text()
        made_sqs = made.copy()
        s3 = boto_client("s3", moto.url)
        assert s3.get_object(Bucket="photos-bucket", Key="big")["Body"].read() == big
        assert s3.list_objects_v2(Bucket="photos-bucket", Prefix="gone")["KeyCount"] == 0
        item = boto_client("dynamodb", moto.url).get_item(
            TableName="things", Key={"pk": {"S": "p0"}, "sk": {"S": "s0"}})["Item"]
        assert item["n"]["N"] == "1"
        _check(moto.url, made_sqs)
    # The restart folded the journal into the snapshot: nothing is replayed twice.
    assert [p.name for p in state.glob("journal-*.log")] == ["journal-00000003.log"] or \
        all(p.stat().st_size == 0 for p in state.glob("journal-*.log"))
    assert list((state / "journal-bodies").iterdir()) == []
    with running_moto(state) as moto:
        assert "replayed" not in moto.log.read_text().split("starting")[-1]
        item = boto_client("dynamodb", moto.url).get_item(
            TableName="things", Key={"pk": {"S": "p0"}, "sk": {"S": "s0"}})["Item"]
        assert item["n"]["N"] == "1"


def test_a_torn_last_journal_record_is_ignored(tmp_path):
    state = tmp_path / "moto"
    moto = MotoProcess(state, interval=3600).start()
    try:
        s3 = boto_client("s3", moto.url)
        s3.create_bucket(Bucket="torn-bucket")
        s3.put_object(Bucket="torn-bucket", Key="k", Body=b"kept")
    finally:
        moto.kill()
    journal = max(state.glob("journal-*.log"))
    with open(journal, "ab") as handle:
        handle.write(b"RCJ1\x00\x00\x10\x00\x00\x00\x00\x00{\"REQUEST_METHOD\"")  # cut short
    with running_moto(state) as moto:
        assert boto_client("s3", moto.url).get_object(Bucket="torn-bucket", Key="k")["Body"].read() \
            == b"kept"
        assert "torn record" in moto.log.read_text()
