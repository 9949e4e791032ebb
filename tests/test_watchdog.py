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
from tests.fakes.drivers import add_students, create_session, s3_event, session_detail, upload_video
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
