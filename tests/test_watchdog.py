"""Nothing stays PROCESSING for ever: the watchdog (scheduled and on read).

A session PROCESSING longer than PROCESSING_CHECK_SECONDS is checked against
its face search job: ended jobs finish it, lost or failed ones end it FAILED
with a retryable reason. moto + the fake face search (tests/test_attendance_fakes.py).
"""
import dataclasses
import datetime
import json

import pytest

import app as app_module
from chalicelib.services import Services
from tests.fakes.drivers import (add_students, create_session, s3_event, session_detail,
                                 sns_event, upload_video)
from tests.fakes.video_search import seen


@pytest.fixture
def watched(services, video_search):
    """The app with a 60 s bound (the default is longer) and a completion topic."""
    fresh = Services(settings=dataclasses.replace(services.settings,
                                                  processing_check_seconds=60),
                     clients=services.clients)
    assert fresh.face_search.notifies
    app_module.reset_services(fresh)
    return fresh


def _stuck_session(api, headers, services, fake):
    """A session whose face search started; no completion message will ever come."""
    session = create_session(api, headers)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    detail = session_detail(api, headers, session["session_id"])["session"]
    assert detail["status"] == "PROCESSING" and detail["job_id"]
    return detail


def _age(services, session_id, seconds):
    """Pretend the session has been PROCESSING for ``seconds``."""
    then = (datetime.datetime.now(datetime.timezone.utc)
            - datetime.timedelta(seconds=seconds)).isoformat(timespec="seconds")
    services.clients.table(services.settings.sessions_table).update_item(
        Key={"session_id": session_id}, UpdateExpression="SET processing_since = :t",
        ExpressionAttributeValues={":t": then})


def test_a_lost_completion_message_is_made_up_for_on_read(api, admin_headers, watched,
                                                          video_search):
    add_students(watched, [("ada", "Ada")])
    video_search.persons = seen("ada", 0, [0, 500, 1000])
    session = _stuck_session(api, admin_headers, watched, video_search)
    # Young: nobody looks at the job (the message may still come).
    calls = len(video_search.pages_read())
    assert session_detail(api, admin_headers, session["session_id"])["session"]["status"] \
        == "PROCESSING"
    assert len(video_search.pages_read()) == calls
    _age(watched, session["session_id"], 61)
    detail = session_detail(api, admin_headers, session["session_id"])
    assert detail["session"]["status"] == "COMPLETED"
    assert [r["status"] for r in detail["attendance"]] == ["PRESENT"]


def test_a_lost_job_ends_failed_and_retryable(api, admin_headers, watched, video_search):
    session = _stuck_session(api, admin_headers, watched, video_search)
    video_search.jobs.clear()  # the engine forgot it (or the job id is unknown)
    _age(watched, session["session_id"], 3600)
    detail = session_detail(api, admin_headers, session["session_id"])["session"]
    assert detail["status"] == "FAILED" and detail["error_kind"] == "retry"
    assert "Retry this session" in detail["error"]
    retried = api.http.post(f"/sessions/{session['session_id']}/retry", headers=admin_headers)
    assert retried.status_code == 202, retried.body


def test_a_failed_job_without_a_message_ends_failed_and_retryable(api, admin_headers, watched,
                                                                  video_search):
    session = _stuck_session(api, admin_headers, watched, video_search)
    job = video_search.jobs[session["job_id"]]
    job.update(status="FAILED", message="The face engine stopped before this video was "
                                        "analysed; start the search again", pending=0)
    _age(watched, session["session_id"], 3600)
    detail = session_detail(api, admin_headers, session["session_id"])["session"]
    assert detail["status"] == "FAILED" and detail["error_kind"] == "retry"


def test_reads_look_at_a_stuck_job_at_most_once_a_minute(api, admin_headers, watched,
                                                         video_search):
    session = _stuck_session(api, admin_headers, watched, video_search)
    video_search.jobs[session["job_id"]]["pending"] = 10 ** 6  # a long video
    _age(watched, session["session_id"], 3600)
    before = len(video_search.pages_read())
    for _ in range(5):
        assert session_detail(api, admin_headers,
                              session["session_id"])["session"]["status"] == "PROCESSING"
    assert len(video_search.pages_read()) == before + 1


def test_the_scheduled_watchdog_fails_a_session_whose_job_never_started(
        api, admin_headers, watched, video_search):
    session = _stuck_session(api, admin_headers, watched, video_search)
    fresh = _stuck_session(api, admin_headers, watched, video_search)
    # A retry whose handler died between "PROCESSING" and StartFaceSearch: no job id.
    watched.clients.table(watched.settings.sessions_table).update_item(
        Key={"session_id": session["session_id"]}, UpdateExpression="REMOVE job_id")
    _age(watched, session["session_id"], 3600)
    answer = api.lambda_.invoke("check_processing_sessions",
                                api.events.generate_cw_event(
                                    source="aws.events", detail_type="Scheduled Event",
                                    detail={}, resources=[], region="us-east-1"))
    assert answer.payload is None or "errorMessage" not in json.dumps(answer.payload)
    table = watched.clients.table(watched.settings.sessions_table)
    stuck = table.get_item(Key={"session_id": session["session_id"]})["Item"]
    assert stuck["status"] == "FAILED" and stuck["error_kind"] == "retry"
    # A young session is left alone.
    young = table.get_item(Key={"session_id": fresh["session_id"]})["Item"]
    assert young["status"] == "PROCESSING"


def test_the_bound_comes_from_the_environment():
    from chalicelib.settings import _REQUIRED, load_settings
    env = {name: "x" for _, name in _REQUIRED}
    assert load_settings(env).processing_check_seconds == 900
    assert load_settings(dict(env, PROCESSING_CHECK_SECONDS="5")).processing_check_seconds == 5


def test_the_local_bridge_runs_the_watchdog_at_its_rate():
    import app as rollcall

    from local.stack.bridge import routes_from_app

    schedules = {r.name: r for r in routes_from_app(rollcall) if r.kind == "schedule"}
    assert schedules["check_processing_sessions"].every_seconds == 300
    assert schedules["check_processing_sessions"].handler is rollcall.check_processing_sessions


def _calls(services):
    """(operation, items answered) of every DynamoDB call on the sessions table's client."""
    client = services.clients.table(services.settings.sessions_table).meta.client
    calls = []
    client.meta.events.register(
        "after-call.dynamodb",
        lambda parsed, model, **kw: calls.append((model.name, len(parsed.get("Items", [])))))
    return calls


def test_the_watchdog_reads_only_live_sessions(api, admin_headers, watched, video_search):
    """Thousands of decided sessions cost the scheduled watchdog nothing: it queries
    the sparse live index, which holds only PROCESSING and CONVERTING sessions."""
    from chalicelib.dynamo import batch_put
    from chalicelib.sessions import with_index_attributes
    table = watched.clients.table(watched.settings.sessions_table)
    decided = [with_index_attributes({
        "session_id": f"{n:032x}", "status": status, "date": "2026-01-05",
        "created_at": "2026-01-05T09:00:00+00:00", "completed_at": "2026-01-05T10:00:00+00:00",
        "updated_at": "2026-01-05T10:00:00+00:00", "evidence_status": "ready"})
        for n, status in enumerate(["COMPLETED"] * 300 + ["FAILED"] * 50
                                   + ["AWAITING_UPLOAD"] * 50, start=1)]
    batch_put(table, decided)
    assert not any("live" in item for item in decided)
    stuck = _stuck_session(api, admin_headers, watched, video_search)
    young = _stuck_session(api, admin_headers, watched, video_search)
    _age(watched, stuck["session_id"], 3600)
    video_search.jobs.clear()  # the stuck one's job is lost
    calls = _calls(watched)
    assert watched.sessions.sweep()
    assert not [name for name, _ in calls if name == "Scan"]
    assert sum(n for name, n in calls if name == "Query") == 2  # the two live sessions
    ended = table.get_item(Key={"session_id": stuck["session_id"]})["Item"]
    assert ended["status"] == "FAILED" and "live" not in ended  # it left the index
    assert table.get_item(Key={"session_id": young["session_id"]})["Item"]["live"] \
        == "PROCESSING"
    calls.clear()
    watched.sessions.sweep()
    assert sum(n for name, n in calls if name == "Query") == 1  # only the young one now


def test_a_session_is_live_only_until_decided_and_then_kept_for_retention(
        api, admin_headers, watched, video_search):
    add_students(watched, [("ada", "Ada")])
    video_search.persons = seen("ada", 0, [0, 500, 1000])
    session = _stuck_session(api, admin_headers, watched, video_search)
    table = watched.clients.table(watched.settings.sessions_table)
    key = {"session_id": session["session_id"]}
    assert table.get_item(Key=key)["Item"]["live"] == "PROCESSING"
    sns_event(api, video_search.message(session["job_id"]))
    item = table.get_item(Key=key)["Item"]
    assert item["status"] == "COMPLETED" and "live" not in item
    assert item["kept_since"] == f"{item['completed_at']}#{session['session_id']}"
    assert (item["video_kept"], item["crops_kept"]) == ("video", "crops")


def test_a_stale_live_mark_is_taken_off_by_the_watchdog(watched):
    """A session written by a tool that did not keep ``live`` (it says PROCESSING
    while the session completed) is read once, then leaves the index."""
    table = watched.clients.table(watched.settings.sessions_table)
    sid = "f" * 32
    table.put_item(Item={"session_id": sid, "status": "COMPLETED", "live": "PROCESSING",
                         "updated_at": "2026-01-05T10:00:00+00:00"})
    assert [i["session_id"] for i in watched.session_store.live()] == [sid]
    assert watched.sessions.sweep() == {}
    item = table.get_item(Key={"session_id": sid})["Item"]
    assert "live" not in item and item["updated_at"] == "2026-01-05T10:00:00+00:00"
    assert list(watched.session_store.live()) == []
