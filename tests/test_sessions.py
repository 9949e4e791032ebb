"""Sessions: creation with a presigned video upload, the S3 event, the face
search job, completion, polling, retry and deletion, through the API and the
real event handlers (moto for AWS, a fake for the video face search)."""
import base64
import datetime
import json

import pytest
import pytz

from chalicelib.dynamo import batch_put
from chalicelib.sessions import index_attributes
from tests.fakes.drivers import (add_students, create_session, run_session, s3_event,
                                 session_detail, sns_event, upload_video)
from tests.fakes.video_search import MP4_BYTES, seen

pytestmark = pytest.mark.usefixtures("video_search")


# -- creating ---------------------------------------------------------------------
def test_create_answers_a_waiting_session_and_a_limited_upload(api, admin_headers, services):
    created = create_session(api, admin_headers, title="Biology", course="BIO-2",
                             date="2024-09-30", content_type="video/quicktime")
    session = created["session"]
    assert session["status"] == "AWAITING_UPLOAD"
    assert (session["title"], session["course"], session["date"]) == ("Biology", "BIO-2",
                                                                       "2024-09-30")
    assert session["error"] is None and session["job_id"] is None
    assert session["counts"] == {"roster": 0, "present": 0, "absent": 0, "unrecognised": 0, "late": 0, "excused": 0, "not_enrolled": 0}
    assert session["video_key"] == f"videos/{session['session_id']}/video.mov"
    assert created["max_bytes"] == services.settings.max_video_bytes
    fields = created["upload"]["fields"]
    assert fields["key"] == session["video_key"]
    assert fields["Content-Type"] == "video/quicktime"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert {"Content-Type": "video/quicktime"} in policy["conditions"]
    assert ["content-length-range", 1, services.settings.max_video_bytes] in policy["conditions"]
    assert created["upload"]["url"].startswith("https://")
    listed = api.http.get(f"/sessions/{session['session_id']}", headers=admin_headers)
    # The session's own page also lists its unrecognised people and stored crops.
    assert listed.json_body == {"session": dict(session, strangers=[], evidence_cut=[]),
                                "attendance": []}


def test_date_defaults_to_today_in_the_configured_time_zone(api, admin_headers, monkeypatch,
                                                             services):
    # Kiritimati is UTC+14: its "today" differs from UTC's for ten hours a day.
    zone = "Pacific/Kiritimati"
    monkeypatch.setattr(services, "settings",
                        __import__("dataclasses").replace(services.settings, time_zone=zone))
    before = datetime.datetime.now(pytz.timezone(zone)).date().isoformat()
    session = create_session(api, admin_headers)["session"]
    after = datetime.datetime.now(pytz.timezone(zone)).date().isoformat()
    assert session["date"] in (before, after)


BAD_SESSIONS = [
    ({"content_type": "video/mp4"}, "title"),
    ({"title": "  ", "content_type": "video/mp4"}, "title"),
    ({"title": "x" * 201, "content_type": "video/mp4"}, "title"),
    ({"title": "Maths"}, "content_type"),
    ({"title": "Maths", "content_type": "image/png"}, "content_type"),
    ({"title": "Maths", "content_type": "video/mp4", "date": "2024-02-30"}, "date"),
    ({"title": "Maths", "content_type": "video/mp4", "date": "30/09/2024"}, "date"),
    ({"title": "Maths", "content_type": "video/mp4", "date": 20240930}, "date"),
    ({"title": "Maths", "content_type": "video/mp4", "course": ["a"]}, "course"),
    # Unhashable values: `[] in dict` raises TypeError, which was a 500.
    ({"title": "Maths", "content_type": ["video/mp4"]}, "content_type"),
    ({"title": "Maths", "content_type": {}}, "content_type"),
    # A lone surrogate cannot be stored (UTF-8 encoding fails): was a 500.
    ({"title": "Maths \ud800", "content_type": "video/mp4"}, "title"),
    ({"title": "Maths", "content_type": "video/mp4", "course": "\udfff"}, "course"),
]


def test_bad_session_fields_get_a_400_naming_the_field(api, admin_headers):
    # One app for every case: each case is one request, not one fixture setup.
    for body, field in BAD_SESSIONS:
        response = api.http.post("/sessions", headers=admin_headers, body=json.dumps(body))
        assert response.status_code == 400, body
        assert response.json_body["error"]["details"]["field"] == field, body
        assert response.json_body["error"]["message"]
    assert api.http.post("/sessions", headers=admin_headers,
                         body="{not json").status_code == 400
    assert api.http.get("/sessions", headers=admin_headers).json_body["sessions"] == []


def test_sessions_need_a_sign_in(api):
    assert api.http.get("/sessions").status_code == 401
    assert api.http.post("/sessions", body="{}").status_code == 401


def test_list_reads_every_page_newest_first_without_a_scan(api, admin_headers, services):
    table = services.clients.table(services.settings.sessions_table)
    # ~40 KB each: 60 of them need more than one 1 MB query page.
    items = [{"session_id": f"{n:032x}", "title": f"s{n}", "date": f"2024-03-{n % 28 + 1:02d}",
              "created_at": f"2024-03-01T00:00:{n:02d}+00:00", "status": "COMPLETED",
              "padding": "x" * 40_000} for n in range(60)]
    batch_put(table, [dict(item, **index_attributes(item)) for item in items])
    calls = []
    table.meta.client.meta.events.register("before-call.dynamodb.*",
                                           lambda model, **kw: calls.append(model.name))
    answer = api.http.get("/sessions?limit=200", headers=admin_headers).json_body
    sessions = answer["sessions"]
    assert len(sessions) == 60 and answer["next_cursor"] is None
    assert calls.count("Query") >= 2 and "Scan" not in calls
    keys = [(s["date"], s["created_at"]) for s in sessions]
    assert keys == sorted(keys, reverse=True)
    assert "padding" not in sessions[0]


# -- the S3 event and the job -------------------------------------------------------
def test_upload_starts_one_face_search_with_the_session_as_token_and_tag(
        api, admin_headers, services, video_search):
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    [start] = video_search.started()
    sid = session["session_id"]
    assert start["ClientRequestToken"] == sid and start["JobTag"] == sid
    assert start["Video"] == {"S3Object": {"Bucket": services.settings.videos_bucket,
                                           "Name": session["video_key"]}}
    assert start["CollectionId"] == services.settings.face_collection
    assert start["FaceMatchThreshold"] == services.settings.match_threshold
    assert start["NotificationChannel"] == {
        "SNSTopicArn": f"arn:aws:sns:us-east-1:123456789012:{services.settings.completion_topic}",
        "RoleArn": f"arn:aws:iam::123456789012:role/{services.settings.rekognition_role}"}
    now = session_detail(api, admin_headers, sid)["session"]
    assert now["status"] == "PROCESSING"
    assert now["job_id"] in video_search.jobs


def test_a_repeated_s3_event_starts_nothing_new(api, admin_headers, services, video_search):
    add_students(services, [("s1", "Ada")])
    video_search.persons = seen("s1", 0, [0, 500, 1000])
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session)
    for _ in range(3):
        s3_event(api, services, session["video_key"])
    assert len(video_search.jobs) == 1
    job_id = session_detail(api, admin_headers, session["session_id"])["session"]["job_id"]
    sns_event(api, video_search.message(job_id))
    s3_event(api, services, session["video_key"])  # even after completion
    assert len(video_search.jobs) == 1
    detail = session_detail(api, admin_headers, session["session_id"])
    assert detail["session"]["status"] == "COMPLETED"
    assert [row["status"] for row in detail["attendance"]] == ["PRESENT"]


def test_a_job_done_before_its_id_was_stored_still_completes(
        api, admin_headers, services, video_search):
    # The completion message raced ahead of the job id and was ignored; the
    # S3 handler's look at the new job finishes the session.
    add_students(services, [("s1", "Ada")])
    video_search.pending_polls = 0
    video_search.persons = seen("s1", 0, [0, 500])
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    detail = session_detail(api, admin_headers, session["session_id"])
    assert detail["session"]["status"] == "COMPLETED"
    assert detail["attendance"][0]["status"] == "PRESENT"
    sns_event(api, video_search.message(detail["session"]["job_id"]))  # late: changes nothing
    assert session_detail(api, admin_headers, session["session_id"]) == detail


def test_the_same_request_token_gets_the_same_job_from_rekognition(
        api, admin_headers, services, video_search):
    # Two deliveries racing past the status check both call StartFaceSearch;
    # the token makes Rekognition answer the same job to both.
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session)
    workflow = services.sessions
    item = workflow.store.get(session["session_id"])
    workflow._start(item, 0)
    workflow._start(item, 0)
    assert len(video_search.started()) == 2 and len(video_search.jobs) == 1


def test_a_text_file_uploaded_as_a_video_ends_failed_with_a_readable_reason(
        api, admin_headers, services, video_search):
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session, data=b"These are my lecture notes, not a video.\n" * 10,
                 content_type="video/mp4")
    s3_event(api, services, session["video_key"])
    failed = session_detail(api, admin_headers, session["session_id"])["session"]
    assert failed["status"] == "FAILED"
    assert "The file is not an AVI, MKV, MOV, MP4 or WEBM file" in failed["error"]
    assert video_search.started() == []


def test_an_event_for_an_unknown_key_or_session_changes_nothing(
        api, admin_headers, services, video_search):
    session = create_session(api, admin_headers)["session"]
    other = f"videos/{'0' * 32}/video.mp4"
    services.clients.client("s3").put_object(Bucket=services.settings.videos_bucket, Key=other,
                                             Body=MP4_BYTES)
    s3_event(api, services, other)
    s3_event(api, services, f"videos/{session['session_id']}/another.mp4")
    s3_event(api, services, "videos/not-a-session/video.mp4")
    assert video_search.started() == []
    assert session_detail(api, admin_headers,
                          session["session_id"])["session"]["status"] == "AWAITING_UPLOAD"


def test_a_refused_start_ends_failed_with_what_to_do(api, admin_headers, services,
                                                     video_search):
    video_search.fail["StartFaceSearch"] = "LimitExceededException"
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    failed = session_detail(api, admin_headers, session["session_id"])["session"]
    assert failed["status"] == "FAILED"
    assert "Retry this session in a few minutes" in failed["error"]


# -- completion ---------------------------------------------------------------------
def test_a_failed_job_ends_failed_and_a_retry_starts_a_new_job(
        api, admin_headers, services, video_search):
    add_students(services, [("s1", "Ada")])
    video_search.fail_job = "Unsupported codec"
    video_search.persons = seen("s1", 0, [0, 1000])
    session = create_session(api, admin_headers)["session"]
    sid = session["session_id"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    first_job = session_detail(api, admin_headers, sid)["session"]["job_id"]
    sns_event(api, video_search.message(first_job))
    failed = session_detail(api, admin_headers, sid)["session"]
    assert failed["status"] == "FAILED" and "Unsupported codec" in failed["error"]

    retried = api.http.post(f"/sessions/{sid}/retry", headers=admin_headers)
    assert retried.status_code == 202
    assert retried.json_body["session"]["status"] == "PROCESSING"
    assert retried.json_body["session"]["error"] is None
    second_job = retried.json_body["session"]["job_id"]
    assert second_job != first_job
    assert video_search.started()[-1]["ClientRequestToken"] == f"{sid}-1"
    sns_event(api, video_search.message(first_job))  # a late message of the old job: ignored
    assert session_detail(api, admin_headers, sid)["session"]["status"] == "PROCESSING"
    sns_event(api, video_search.message(second_job))
    done = session_detail(api, admin_headers, sid)
    assert done["session"]["status"] == "COMPLETED"
    assert done["attendance"][0]["status"] == "PRESENT"


def test_only_a_failed_session_can_be_retried(api, admin_headers, services, video_search):
    session = create_session(api, admin_headers)["session"]
    response = api.http.post(f"/sessions/{session['session_id']}/retry", headers=admin_headers)
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "not_failed"
    assert "awaiting upload" in response.json_body["error"]["message"]
    done = run_session(api, admin_headers, services, video_search, [])
    again = api.http.post(f"/sessions/{done['session']['session_id']}/retry",
                          headers=admin_headers)
    assert again.status_code == 409


def test_an_error_while_recording_ends_failed_and_leaves_it_retryable(
        api, admin_headers, services, video_search, monkeypatch):
    add_students(services, [("s1", "Ada")])
    video_search.persons = seen("s1", 0, [0, 1000])

    def broken():
        raise RuntimeError("students table unreachable")
    monkeypatch.setattr(services.students, "list_all", broken)
    detail = run_session(api, admin_headers, services, video_search, video_search.persons)
    assert detail["session"]["status"] == "FAILED"
    assert "Retry this session" in detail["session"]["error"]
    assert "unreachable" not in detail["session"]["error"]  # no internals shown
    assert detail["attendance"] == []
    monkeypatch.undo()
    sid = detail["session"]["session_id"]
    job = api.http.post(f"/sessions/{sid}/retry", headers=admin_headers).json_body
    sns_event(api, video_search.message(job["session"]["job_id"]))
    assert session_detail(api, admin_headers, sid)["session"]["status"] == "COMPLETED"


def test_results_that_cannot_be_read_end_failed_not_stuck(api, admin_headers, services,
                                                          video_search):
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    job_id = session_detail(api, admin_headers, session["session_id"])["session"]["job_id"]
    del video_search.jobs[job_id]  # GetFaceSearch now raises ResourceNotFoundException
    sns_event(api, json.dumps({"JobId": job_id, "Status": "SUCCEEDED",
                               "JobTag": session["session_id"]}))
    failed = session_detail(api, admin_headers, session["session_id"])["session"]
    assert failed["status"] == "FAILED" and "Retry this session" in failed["error"]


def test_a_message_that_is_not_a_completion_is_ignored(api, admin_headers, services,
                                                       video_search):
    session = create_session(api, admin_headers)["session"]
    sns_event(api, "not json")
    sns_event(api, json.dumps({"JobId": "nope", "Status": "SUCCEEDED",
                               "JobTag": session["session_id"]}))
    assert session_detail(api, admin_headers,
                          session["session_id"])["session"]["status"] == "AWAITING_UPLOAD"


# -- polling (no completion topic) ----------------------------------------------------
def test_without_a_topic_the_upload_handler_polls_to_completion(
        api, admin_headers, polling, video_search):
    add_students(polling, [("s1", "Ada"), ("s2", "Grace")])
    video_search.persons = seen("s1", 0, [0, 500, 1000])
    video_search.pending_polls = 2
    now, waits = [0.0], []
    polling.face_search.clock = lambda: now[0]

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds
    polling.face_search.sleep = sleep
    session = create_session(api, admin_headers)["session"]
    upload_video(polling, session)
    s3_event(api, polling, session["video_key"])
    [start] = video_search.started()
    assert "NotificationChannel" not in start
    # Backoff between the IN_PROGRESS answers, within the handler's time
    # (chalice's test context gives the function 3 s).
    assert len(waits) == 2 and waits[0] == 1.0 and sum(waits) <= 3.0
    detail = session_detail(api, admin_headers, session["session_id"])
    assert detail["session"]["status"] == "COMPLETED"
    assert detail["session"]["counts"]["present"] == 1


def test_polling_backs_off_up_to_a_cap_and_stops_at_the_budget(services, video_search):
    video_search.pending_polls = 100
    job_id = video_search.jobs.setdefault("job-1", {"pending": 100, "status": "SUCCEEDED",
                                                    "persons": [], "message": None}) and "job-1"
    search = services.face_search
    now, waits = [0.0], []
    search.clock = lambda: now[0]

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds
    search.sleep = sleep
    result = search.wait(job_id, budget_seconds=60)
    assert result.status == "IN_PROGRESS"
    assert waits == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert sum(waits) == 60


def test_a_job_outliving_the_handler_is_finished_by_a_later_look(
        api, admin_headers, polling, video_search):
    add_students(polling, [("s1", "Ada")])
    video_search.persons = seen("s1", 0, [0, 500])
    video_search.pending_polls = 2
    session = create_session(api, admin_headers)["session"]
    upload_video(polling, session)
    # No time left to poll: the session stays PROCESSING with its job id.
    polling.sessions.on_video_uploaded(polling.settings.videos_bucket, session["video_key"],
                                       budget_seconds=0)
    sid = session["session_id"]
    assert polling.sessions.store.get(sid)["status"] == "PROCESSING"
    # A redelivered S3 event polls the same job (starting nothing new)...
    polling.sessions.on_video_uploaded(polling.settings.videos_bucket, session["video_key"],
                                       budget_seconds=0)
    assert len(video_search.started()) == 1
    assert polling.sessions.store.get(sid)["status"] == "PROCESSING"
    # ...and opening the session looks at the job once more, which finishes it.
    detail = session_detail(api, admin_headers, sid)
    assert detail["session"]["status"] == "COMPLETED"
    assert detail["attendance"][0]["status"] == "PRESENT"


# -- deleting -----------------------------------------------------------------------
def test_admin_deletes_a_session_with_its_video_and_rows(
        api, teacher_headers, admin_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    detail = run_session(api, admin_headers, services, video_search, seen("s1", 0, [0, 500]))
    sid = detail["session"]["session_id"]
    assert len(detail["attendance"]) == 2
    assert api.http.delete(f"/sessions/{sid}", headers=teacher_headers).status_code == 403
    response = api.http.delete(f"/sessions/{sid}", headers=admin_headers)
    assert response.status_code == 204
    assert api.http.get(f"/sessions/{sid}", headers=admin_headers).status_code == 404
    s3 = services.clients.client("s3")
    assert s3.list_objects_v2(Bucket=services.settings.videos_bucket,
                              Prefix=f"videos/{sid}/").get("KeyCount") == 0
    rows = services.clients.table(services.settings.attendance_table).scan()["Items"]
    assert rows == []
    assert api.http.get("/students/s1/attendance", headers=admin_headers).json_body["total"] == 0


def test_an_unknown_session_is_a_404(api, admin_headers):
    for sid in ("f" * 32, "not-an-id"):
        for method, path in (("get", "/sessions/{sid}"), ("post", "/sessions/{sid}/retry"),
                             ("delete", "/sessions/{sid}"),
                             ("get", "/sessions/{sid}/export.csv"),
                             ("get", "/sessions/{sid}/report")):
            response = getattr(api.http, method)(path.format(sid=sid), headers=admin_headers)
            assert response.status_code == 404, (method, path, sid)
            assert response.json_body["error"]["code"] == "session_not_found"


# -- uploading the video again ------------------------------------------------------
def new_upload(api, headers, sid, content_type="video/mp4"):
    return api.http.post(f"/sessions/{sid}/upload", headers=headers,
                         body=json.dumps({"content_type": content_type}))


def test_a_failed_file_can_be_uploaded_again_and_then_completes(
        api, admin_headers, services, video_search):
    add_students(services, [("s1", "Ada")])
    video_search.persons = seen("s1", 0, [0, 1000])
    session = create_session(api, admin_headers)["session"]
    sid = session["session_id"]
    upload_video(services, session, data=b"lecture notes, not a video\n" * 10)
    s3_event(api, services, session["video_key"])
    failed = session_detail(api, admin_headers, sid)["session"]
    assert failed["status"] == "FAILED" and failed["error_kind"] == "file"
    assert "upload the video again" in failed["error"]

    answer = new_upload(api, admin_headers, sid, "video/quicktime")  # a teacher may
    assert answer.status_code == 200, answer.body
    again = answer.json_body
    assert again["session"]["status"] == "AWAITING_UPLOAD"
    assert again["session"]["error"] is None and again["session"]["error_kind"] is None
    assert again["session"]["job_id"] is None
    assert again["session"]["video_key"] == f"videos/{sid}/video.mov"
    fields = again["upload"]["fields"]
    assert fields["key"] == again["session"]["video_key"]
    assert fields["Content-Type"] == "video/quicktime"
    policy = json.loads(base64.b64decode(fields["policy"]))
    assert ["content-length-range", 1, services.settings.max_video_bytes] in policy["conditions"]
    assert again["max_bytes"] == services.settings.max_video_bytes and again["expires_in"] > 0

    upload_video(services, again["session"], content_type="video/quicktime")
    s3_event(api, services, again["session"]["video_key"])
    [start] = video_search.started()
    assert start["ClientRequestToken"] == f"{sid}-1"  # a new token: a new job
    processing = session_detail(api, admin_headers, sid)["session"]
    assert processing["status"] == "PROCESSING"
    sns_event(api, video_search.message(processing["job_id"]))
    done = session_detail(api, admin_headers, sid)
    assert done["session"]["status"] == "COMPLETED"
    assert [row["status"] for row in done["attendance"]] == ["PRESENT"]


def test_a_failed_job_can_be_retried_and_says_so(api, admin_headers, services,
                                                 video_search):
    video_search.fail_job = "Internal service error"
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    job = session_detail(api, admin_headers, session["session_id"])["session"]["job_id"]
    sns_event(api, video_search.message(job))
    failed = session_detail(api, admin_headers, session["session_id"])["session"]
    assert failed["status"] == "FAILED" and failed["error_kind"] == "retry"


def test_an_interrupted_upload_can_be_sent_again(api, admin_headers, services,
                                                  video_search):
    session = create_session(api, admin_headers)["session"]
    sid = session["session_id"]
    answer = new_upload(api, admin_headers, sid)
    assert answer.status_code == 200
    assert answer.json_body["session"]["status"] == "AWAITING_UPLOAD"
    upload_video(services, answer.json_body["session"])
    s3_event(api, services, answer.json_body["session"]["video_key"])
    assert session_detail(api, admin_headers, sid)["session"]["status"] == "PROCESSING"


def test_uploading_again_is_refused_while_processing_or_done(api, admin_headers, services,
                                                             video_search):
    session = create_session(api, admin_headers)["session"]
    sid = session["session_id"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    refused = new_upload(api, admin_headers, sid)
    assert refused.status_code == 409
    assert refused.json_body["error"]["code"] == "upload_not_allowed"
    assert "processing" in refused.json_body["error"]["message"]
    done = run_session(api, admin_headers, services, video_search, [])
    assert new_upload(api, admin_headers,
                      done["session"]["session_id"]).status_code == 409
    assert video_search.started()[-1]["ClientRequestToken"] == done["session"]["session_id"]


def test_uploading_again_checks_its_request(api, admin_headers):
    sid = create_session(api, admin_headers)["session"]["session_id"]
    bad = new_upload(api, admin_headers, sid, "image/png")
    assert bad.status_code == 400
    assert bad.json_body["error"]["details"]["field"] == "content_type"
    assert new_upload(api, admin_headers, "0" * 32).status_code == 404
    assert api.http.post(f"/sessions/{sid}/upload",
                         body=json.dumps({"content_type": "video/mp4"})).status_code == 401
