"""Classes, rosters and who sees what, through the HTTP API (moto for AWS, the
fake video face search for Rekognition)."""
import csv
import io
import json

import pytest

from chalicelib.dynamo import batch_put
from tests.fakes.drivers import (add_students, by_student, create_session, run_session,
                                 s3_event, session_detail, sns_event, upload_video)
from tests.fakes.video_search import seen

pytestmark = pytest.mark.usefixtures("video_search")

OTHER = ("other@example.org", "other password 12", "teacher")


def call(api, method, path, headers, body=None):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    return getattr(api.http, method)(path, **kwargs)


def new_class(api, admin_headers, name="BIO 101 – Tuesday lab", teachers=("teacher@example.org",),
              **fields):
    answer = call(api, "post", "/classes", admin_headers,
                  dict({"name": name, "teachers": list(teachers)}, **fields))
    assert answer.status_code == 201, answer.body
    return answer.json_body["class"]


def enrol(api, headers, class_id, *student_ids):
    for student_id in student_ids:
        answer = call(api, "post", f"/classes/{class_id}/students", headers,
                      {"student_id": student_id})
        assert answer.status_code in (200, 201), answer.body


@pytest.fixture
def other_headers(make_user, login):
    return login(make_user(*OTHER))


# -- classes ------------------------------------------------------------------------
def test_admin_creates_renames_archives_and_deletes_a_class(api, admin_headers,
                                                            teacher_headers):
    made = new_class(api, admin_headers, term="2024 autumn",
                     schedule={"start_time": "09:00", "length_minutes": 50})
    assert made["teachers"] == ["teacher@example.org"] and made["late_threshold_minutes"] == 10
    assert made["schedule"] == {"start_time": "09:00", "length_minutes": 50}
    assert made["archived"] is False and made["enrolled"] == 0
    cid = made["class_id"]
    # A teacher may not create, rename, reassign, archive or delete.
    assert call(api, "post", "/classes", teacher_headers, {"name": "x"}).status_code == 403
    for change in ({"name": "Mine now"}, {"teachers": []}, {"archived": True}):
        assert call(api, "patch", f"/classes/{cid}", teacher_headers, change).status_code == 403
    assert call(api, "delete", f"/classes/{cid}", teacher_headers).status_code == 403
    # ...but may set their class's late threshold and schedule hints.
    answer = call(api, "patch", f"/classes/{cid}", teacher_headers, {"late_threshold_minutes": 5})
    assert answer.status_code == 200 and answer.json_body["class"]["late_threshold_minutes"] == 5
    renamed = call(api, "patch", f"/classes/{cid}", admin_headers,
                   {"name": "BIO 101", "archived": True}).json_body["class"]
    assert (renamed["name"], renamed["archived"]) == ("BIO 101", True)
    listed = call(api, "get", "/classes", admin_headers).json_body
    assert listed == {"classes": [], "next_cursor": None}  # archived ones only when asked
    listed = call(api, "get", "/classes?archived=1", admin_headers).json_body["classes"]
    assert [c["name"] for c in listed] == ["BIO 101"]
    assert call(api, "delete", f"/classes/{cid}", admin_headers).status_code == 204
    assert call(api, "get", f"/classes/{cid}", admin_headers).status_code == 404


def test_bad_class_fields_are_400s_naming_the_field(api, admin_headers):
    for body, field in [({}, "name"), ({"name": " "}, "name"),
                        ({"name": "x", "teachers": "a@b.c"}, "teachers"),
                        ({"name": "x", "teachers": ["not an email"]}, "teachers"),
                        ({"name": "x", "teachers": ["nobody@example.org"]}, "teachers"),
                        ({"name": "x", "late_threshold_minutes": -1}, "late_threshold_minutes"),
                        ({"name": "x", "late_threshold_minutes": "10"},
                         "late_threshold_minutes"),
                        ({"name": "x", "schedule": {"start_time": "25:00"}}, "schedule")]:
        answer = call(api, "post", "/classes", admin_headers, body)
        assert answer.status_code == 400, body
        assert answer.json_body["error"]["details"]["field"] == field, body


def test_a_class_with_sessions_is_archived_not_deleted(api, admin_headers, teacher_headers,
                                                       services, video_search):
    cid = new_class(api, admin_headers)["class_id"]
    run_session(api, teacher_headers, services, video_search, [], class_id=cid)
    answer = call(api, "delete", f"/classes/{cid}", admin_headers)
    assert answer.status_code == 409 and answer.json_body["error"]["code"] == "class_has_sessions"


# -- who sees what -------------------------------------------------------------------
def test_a_teacher_cannot_reach_another_teachers_class_by_any_route(
        api, admin_headers, teacher_headers, other_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    mine = new_class(api, admin_headers, "Mine")["class_id"]
    theirs = new_class(api, admin_headers, "Theirs", teachers=[OTHER[0]])["class_id"]
    enrol(api, teacher_headers, mine, "s1")
    enrol(api, other_headers, theirs, "s2")
    detail = run_session(api, other_headers, services, video_search, seen("s2", 0, [0, 500]),
                         class_id=theirs)
    sid = detail["session"]["session_id"]
    correction = {"status": "ABSENT", "reason": "x"}
    routes = [("get", f"/classes/{theirs}", None), ("patch", f"/classes/{theirs}",
                                                     {"late_threshold_minutes": 1}),
              ("get", f"/classes/{theirs}/students", None),
              ("post", f"/classes/{theirs}/students", {"student_id": "s1"}),
              ("delete", f"/classes/{theirs}/students/s2", None),
              ("post", f"/classes/{theirs}/roster/import", {"text": "s1"}),
              ("get", f"/classes/{theirs}/attendance", None),
              ("get", f"/classes/{theirs}/attendance.csv", None),
              ("get", f"/attendance/export.csv?class_id={theirs}", None),
              ("get", f"/sessions?class_id={theirs}", None),
              ("post", "/sessions", {"title": "x", "content_type": "video/mp4",
                                     "class_id": theirs}),
              ("get", f"/sessions/{sid}", None),
              ("patch", f"/sessions/{sid}", {"title": "Mine now"}),
              ("patch", f"/sessions/{sid}/attendance/s2", correction),
              ("post", f"/sessions/{sid}/retry", None),
              ("post", f"/sessions/{sid}/upload", {"content_type": "video/mp4"}),
              ("get", f"/sessions/{sid}/export.csv", None),
              ("get", f"/sessions/{sid}/multipart", None),
              ("post", f"/sessions/{sid}/multipart", {"size": 10_000_000}),
              ("post", f"/sessions/{sid}/multipart/parts", {"upload_id": "x",
                                                           "part_numbers": [1]}),
              ("post", f"/sessions/{sid}/multipart/complete", {"upload_id": "x",
                                                              "parts": []}),
              ("delete", f"/sessions/{sid}/multipart", None),
              ("get", f"/sessions/{sid}/report", None),
              ("get", "/students/s2", None), ("get", "/students/s2/attendance", None),
              ("get", "/students/s2/classes", None),
              ("get", f"/students?class_id={theirs}", None)]
    for method, path, body in routes:
        answer = call(api, method, path, teacher_headers, body if body is not None else (
            {} if method in ("post", "patch", "put") else None))
        assert answer.status_code == 404, (method, path, answer.status_code)
    # Moving one's own session into their class is refused the same way.
    own = create_session(api, teacher_headers, class_id=mine)["session"]["session_id"]
    assert call(api, "patch", f"/sessions/{own}", teacher_headers,
                {"class_id": theirs}).status_code == 404
    # Lists show only what is theirs.
    assert [c["name"] for c in call(api, "get", "/classes", teacher_headers).json_body[
        "classes"]] == ["Mine"]
    assert [s["session_id"] for s in call(api, "get", "/sessions", teacher_headers).json_body[
        "sessions"]] == [own]
    people = call(api, "get", "/students", teacher_headers).json_body["students"]
    assert [p["student_id"] for p in people] == ["s1"]
    assert call(api, "get", "/students?q=gra", teacher_headers).json_body["students"] == []
    assert call(api, "get", "/attendance/export.csv", teacher_headers).status_code == 400
    # Nothing was changed by the refused calls.
    after = session_detail(api, other_headers, sid)
    assert after == detail
    # An admin sees both.
    assert len(call(api, "get", "/classes", admin_headers).json_body["classes"]) == 2
    assert call(api, "get", f"/sessions/{sid}", admin_headers).status_code == 200


def test_a_teacher_must_name_one_of_their_classes_for_a_session(api, admin_headers,
                                                                teacher_headers):
    answer = call(api, "post", "/sessions", teacher_headers,
                  {"title": "x", "content_type": "video/mp4"})
    assert answer.status_code == 400 and answer.json_body["error"]["details"]["field"] == \
        "class_id"
    for bad in ("f" * 32, "not-a-class"):
        answer = call(api, "post", "/sessions", teacher_headers,
                      {"title": "x", "content_type": "video/mp4", "class_id": bad})
        assert answer.status_code == 404, bad
    # An admin may take a session against everyone.
    assert call(api, "post", "/sessions", admin_headers,
                {"title": "Assembly", "content_type": "video/mp4"}).status_code == 201


def test_history_shows_a_teacher_only_their_classes(api, admin_headers, teacher_headers,
                                                    other_headers, services, video_search):
    add_students(services, [("s1", "Ada")])
    mine = new_class(api, admin_headers, "Mine")["class_id"]
    theirs = new_class(api, admin_headers, "Theirs", teachers=[OTHER[0]])["class_id"]
    enrol(api, teacher_headers, mine, "s1")
    enrol(api, other_headers, theirs, "s1")
    run_session(api, teacher_headers, services, video_search, seen("s1", 0, [0, 500]),
                class_id=mine, title="Mine 1")
    run_session(api, other_headers, services, video_search, [], class_id=theirs,
                title="Theirs 1")
    history = call(api, "get", "/students/s1/attendance", teacher_headers).json_body
    assert [h["title"] for h in history["history"]] == ["Mine 1"]
    assert (history["present"], history["total"]) == (1, 1)
    everything = call(api, "get", "/students/s1/attendance", admin_headers).json_body
    assert sorted(h["title"] for h in everything["history"]) == ["Mine 1", "Theirs 1"]
    classes = call(api, "get", "/students/s1/classes", teacher_headers).json_body["classes"]
    assert [c["name"] for c in classes] == ["Mine"]


# -- rosters at completion ---------------------------------------------------------------
def test_a_class_session_is_taken_against_its_roster_with_late_and_seen_not_enrolled(
        api, admin_headers, teacher_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace"), ("s3", "Alan"), ("out", "Outsider")])
    cid = new_class(api, admin_headers, late_threshold_minutes=10)["class_id"]
    enrol(api, teacher_headers, cid, "s1", "s2", "s3")
    minute = 60_000
    persons = (seen("s1", 0, [1 * minute, 2 * minute])          # on time
               + seen("s2", 1, [12 * minute, 13 * minute])      # late
               + seen("out", 2, [3 * minute, 4 * minute], similarity=91.0))  # not on roster
    detail = run_session(api, teacher_headers, services, video_search, persons, class_id=cid)
    rows = by_student(detail)
    assert set(rows) == {"s1", "s2", "s3"}  # the outsider has no row
    assert (rows["s1"]["status"], rows["s2"]["status"], rows["s3"]["status"]) == (
        "PRESENT", "LATE", "ABSENT")
    session = detail["session"]
    assert session["class_id"] == cid and session["late_threshold_minutes"] == 10
    # The outsider is someone registered: listed apart, never an unrecognised person.
    assert session["counts"] == {"roster": 3, "present": 2, "late": 1, "absent": 1,
                                 "excused": 0, "unrecognised": 0, "not_enrolled": 1}
    assert session["seen_not_enrolled"] == [{"student_id": "out", "full_name": "Outsider",
                                             "first_seen_ms": 3 * minute, "similarity": 91.0,
                                             "sightings": 2}]
    # One action enrols them (for later sessions; this one's counts do not change).
    answer = call(api, "post", f"/classes/{cid}/students", teacher_headers,
                  {"student_id": "out"})
    assert answer.status_code == 201 and answer.json_body["result"] == "added"
    assert call(api, "post", f"/classes/{cid}/students", teacher_headers,
                {"student_id": "out"}).json_body["result"] == "already_enrolled"
    assert session_detail(api, teacher_headers, session["session_id"])["session"]["counts"][
        "roster"] == 3


def test_the_roster_is_the_enrolment_when_the_search_completes(
        api, admin_headers, teacher_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    cid = new_class(api, admin_headers)["class_id"]
    enrol(api, teacher_headers, cid, "s1")
    video_search.persons = seen("s2", 0, [0, 500])
    session = create_session(api, teacher_headers, class_id=cid)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    enrol(api, teacher_headers, cid, "s2")  # enrolled while the video was processing
    job_id = session_detail(api, teacher_headers, session["session_id"])["session"]["job_id"]
    sns_event(api, video_search.message(job_id))
    rows = by_student(session_detail(api, teacher_headers, session["session_id"]))
    assert (rows["s1"]["status"], rows["s2"]["status"]) == ("ABSENT", "PRESENT")


def test_an_everyone_session_is_taken_against_all_people_without_lateness(
        api, admin_headers, services, video_search, no_table_scans):
    """Everyone is read from the name index, page by page: no table is scanned."""
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    detail = run_session(api, admin_headers, services, video_search,
                         seen("s1", 0, [50 * 60_000, 51 * 60_000]), title="Assembly")
    rows = by_student(detail)
    assert (rows["s1"]["status"], rows["s2"]["status"]) == ("PRESENT", "ABSENT")
    assert detail["session"]["class_id"] is None
    assert detail["session"]["seen_not_enrolled"] == []


@pytest.mark.parametrize("offset_seconds, first_seen_ms, expected", [
    (None, 10 * 60_000, "PRESENT"),          # exactly at the threshold: on time
    (None, 10 * 60_000 + 1, "LATE"),         # a millisecond after: late
    (120, 12 * 60_000, "PRESENT"),           # the class started 2 minutes in
    (120, 12 * 60_000 + 1, "LATE"),
])
def test_late_threshold_edges(api, admin_headers, teacher_headers, services, video_search,
                              offset_seconds, first_seen_ms, expected):
    add_students(services, [("s1", "Ada")])
    cid = new_class(api, admin_headers)["class_id"]
    enrol(api, teacher_headers, cid, "s1")
    fields = {"class_id": cid}
    if offset_seconds is not None:
        fields["start_offset_seconds"] = offset_seconds
    detail = run_session(api, teacher_headers, services, video_search,
                         seen("s1", 0, [first_seen_ms, first_seen_ms + 500]), **fields)
    assert by_student(detail)["s1"]["status"] == expected


def test_a_threshold_of_zero_makes_anyone_after_the_start_late(
        api, admin_headers, teacher_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    cid = new_class(api, admin_headers, late_threshold_minutes=0)["class_id"]
    enrol(api, teacher_headers, cid, "s1", "s2")
    detail = run_session(api, teacher_headers, services, video_search,
                         seen("s1", 0, [0, 500]) + seen("s2", 1, [1, 500]), class_id=cid)
    assert {r["student_id"]: r["status"] for r in detail["attendance"]} == {
        "s1": "PRESENT", "s2": "LATE"}


def test_excused_only_by_hand_and_it_survives_a_rerun(api, admin_headers, teacher_headers,
                                                      services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    cid = new_class(api, admin_headers)["class_id"]
    enrol(api, teacher_headers, cid, "s1", "s2")
    detail = run_session(api, teacher_headers, services, video_search, seen("s1", 0, [0, 500]),
                         class_id=cid)
    assert {r["status"] for r in detail["attendance"]} == {"PRESENT", "ABSENT"}
    sid = detail["session"]["session_id"]
    answer = call(api, "patch", f"/sessions/{sid}/attendance/s2", teacher_headers,
                  {"status": "EXCUSED", "reason": "Doctor's note"})
    assert answer.status_code == 200, answer.body
    row = answer.json_body["row"]
    assert (row["status"], row["auto_status"], row["source"]) == ("EXCUSED", "ABSENT", "manual")
    assert call(api, "patch", f"/sessions/{sid}/attendance/s2", teacher_headers,
                {"status": "EXCUSED"}).status_code == 400  # a reason is required
    counts = session_detail(api, teacher_headers, sid)["session"]["counts"]
    assert (counts["excused"], counts["absent"], counts["present"]) == (1, 0, 1)
    # Another automatic run (a retry, a repeated result) keeps the teacher's EXCUSED
    # beside the automatic ABSENT.
    from chalicelib.attendance import decide
    roster = services.students.get_many(["s1", "s2"])
    rows = services.attendance.record_automatic(sid, roster, decide(seen("s1", 0, [0, 500]),
                                                                    {"s1", "s2"}, 80), 2)
    assert {r["student_id"]: (r["status"], r["auto_status"]) for r in rows}["s2"] == (
        "EXCUSED", "ABSENT")
    assert by_student(session_detail(api, teacher_headers, sid))["s2"]["status"] == "EXCUSED"


def test_a_person_not_on_the_roster_gets_no_row_by_correction(
        api, admin_headers, teacher_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("out", "Outsider")])
    cid = new_class(api, admin_headers)["class_id"]
    enrol(api, teacher_headers, cid, "s1")
    detail = run_session(api, teacher_headers, services, video_search, [], class_id=cid)
    answer = call(api, "patch", f"/sessions/{detail['session']['session_id']}/attendance/out",
                  teacher_headers, {"status": "PRESENT", "reason": "x"})
    assert answer.status_code == 404


# -- roster import -------------------------------------------------------------------
def test_roster_import_reports_each_line(api, admin_headers, teacher_headers, services):
    add_students(services, [("s1", "Ada"), ("s2", "Grace"), ("s3", "Alan")])
    cid = new_class(api, admin_headers)["class_id"]
    enrol(api, teacher_headers, cid, "s3")
    text = "s1\n\ns2\nghost\nnot an id!\ns1\ns3\n"
    answer = call(api, "post", f"/classes/{cid}/roster/import", teacher_headers, {"text": text})
    assert answer.status_code == 200, answer.body
    results = [(r["line"], r["value"], r["result"]) for r in answer.json_body["results"]]
    assert results == [(1, "s1", "added"), (3, "s2", "added"), (4, "ghost", "unknown_id"),
                       (5, "not an id!", "invalid"), (6, "s1", "already_enrolled"),
                       (7, "s3", "already_enrolled")]
    assert answer.json_body["summary"] == {"added": 2, "already_enrolled": 2, "unknown_id": 1,
                                           "invalid": 1}
    klass = call(api, "get", f"/classes/{cid}", teacher_headers).json_body["class"]
    assert klass["enrolled"] == 3
    roster = call(api, "get", f"/classes/{cid}/students", teacher_headers).json_body
    assert [p["full_name"] for p in roster["students"]] == ["Ada", "Alan", "Grace"]


def test_roster_import_from_a_csv_column(api, admin_headers, teacher_headers, services):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    cid = new_class(api, admin_headers)["class_id"]
    text = 'Name,Student ID\r\n"Lovelace, Ada",s1\r\nGrace,s2\r\nNobody,\r\n'
    answer = call(api, "post", f"/classes/{cid}/roster/import", teacher_headers, {"text": text})
    results = [(r["line"], r["result"]) for r in answer.json_body["results"]]
    assert results == [(1, "header"), (2, "added"), (3, "added"), (4, "invalid")]
    by_number = call(api, "post", f"/classes/{cid}/roster/import", teacher_headers,
                     {"text": "x,s1\ny,s2", "column": 2}).json_body
    assert [r["result"] for r in by_number["results"]] == ["already_enrolled"] * 2
    answer = call(api, "post", f"/classes/{cid}/roster/import", teacher_headers,
                  {"text": "a,b\n1,2", "column": "Student"})
    assert answer.status_code == 400 and answer.json_body["error"]["details"]["field"] == \
        "column"


def test_removing_from_a_roster(api, admin_headers, teacher_headers, services):
    add_students(services, [("s1", "Ada")])
    cid = new_class(api, admin_headers)["class_id"]
    enrol(api, teacher_headers, cid, "s1")
    assert call(api, "delete", f"/classes/{cid}/students/s1", teacher_headers).status_code == 204
    assert call(api, "delete", f"/classes/{cid}/students/s1", teacher_headers).status_code == 404
    assert call(api, "get", f"/classes/{cid}", teacher_headers).json_body["class"]["enrolled"] == 0
    assert call(api, "get", "/students/s1", teacher_headers).status_code == 404
    assert call(api, "post", f"/classes/{cid}/students", teacher_headers,
                {"student_id": "ghost"}).status_code == 404


# -- pages ---------------------------------------------------------------------------
def test_pages_answer_every_person_exactly_once_while_people_are_added(api, admin_headers,
                                                                       services):
    add_students(services, [(f"p{n:03d}", f"Person {n:03d}") for n in range(0, 120, 2)])
    seen_ids, cursor, added = [], None, 0
    while True:
        path = "/students?limit=7" + (f"&cursor={cursor}" if cursor else "")
        answer = call(api, "get", path, admin_headers)
        assert answer.status_code == 200, answer.body
        seen_ids += [p["student_id"] for p in answer.json_body["students"]]
        cursor = answer.json_body["next_cursor"]
        # Between pages, someone is registered (odd numbers, anywhere in the order).
        if added < 30:
            add_students(services, [(f"p{2 * added + 1:03d}", f"Person {2 * added + 1:03d}")])
            added += 1
        if not cursor:
            break
    assert len(seen_ids) == len(set(seen_ids))  # nobody twice
    assert {f"p{n:03d}" for n in range(0, 120, 2)} <= set(seen_ids)  # everyone there before


def test_session_pages_of_a_class_and_of_a_teacher(api, admin_headers, teacher_headers,
                                                   services):
    first = new_class(api, admin_headers, "First")["class_id"]
    second = new_class(api, admin_headers, "Second")["class_id"]
    made = []
    for n in range(9):
        made.append(create_session(api, teacher_headers, class_id=(first, second)[n % 2],
                                   date=f"2024-09-{n + 1:02d}")["session"]["session_id"])
    collected, cursor = [], None
    while True:
        path = "/sessions?limit=4" + (f"&cursor={cursor}" if cursor else "")
        body = call(api, "get", path, teacher_headers).json_body
        collected += [s["session_id"] for s in body["sessions"]]
        if len(collected) == 4:  # a new one between pages, newer than all: not repeated
            made.append(create_session(api, teacher_headers, class_id=first,
                                       date="2024-10-01")["session"]["session_id"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert collected == list(reversed(made[:9]))  # newest first, each once
    ranged = call(api, "get", f"/sessions?class_id={first}&from=2024-09-03&to=2024-09-07",
                  teacher_headers).json_body["sessions"]
    assert [s["date"] for s in ranged] == ["2024-09-07", "2024-09-05", "2024-09-03"]
    for bad in ("limit=0", "limit=201", "limit=x", "cursor=%%%", "cursor=e30"):
        answer = call(api, "get", f"/sessions?{bad}", teacher_headers)
        assert answer.status_code == 400, bad


def test_people_search_by_id_or_name_prefix_without_a_scan(api, admin_headers, services):
    add_students(services, [("AB-100", "Émile Zola"), ("ab-200", "Ada Lovelace"),
                            ("x1", "Abigail Adams"), ("x2", "Grace")])
    calls = []
    client = services.clients.table(services.settings.students_table).meta.client
    client.meta.events.register("before-call.dynamodb.*",
                                lambda model, **kw: calls.append(model.name))

    def ids(q):
        answer = call(api, "get", f"/students?q={q}", admin_headers)
        assert answer.status_code == 200, answer.body
        return [p["student_id"] for p in answer.json_body["students"]]
    assert ids("ab") == ["AB-100", "ab-200", "x1"]  # IDs first, then names
    assert ids("emile") == ["AB-100"] and ids("EMI") == ["AB-100"]
    assert ids("ada") == ["ab-200"] and ids("zzz") == []
    assert "Scan" not in calls and "Query" in calls


# -- the register grid -----------------------------------------------------------------
def test_the_class_register_grid_and_its_csv(api, admin_headers, teacher_headers, services,
                                             video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    cid = new_class(api, admin_headers, "Biology")["class_id"]
    enrol(api, teacher_headers, cid, "s1", "s2")
    one = run_session(api, teacher_headers, services, video_search, seen("s1", 0, [0, 500]),
                      class_id=cid, date="2024-09-02", title="Week 1")
    run_session(api, teacher_headers, services, video_search,
                seen("s1", 0, [11 * 60_000, 11 * 60_000 + 500]) + seen("s2", 1, [0, 500]),
                class_id=cid, date="2024-09-09", title="Week 2")
    run_session(api, teacher_headers, services, video_search, [], class_id=cid,
                date="2024-10-01", title="Outside the range")
    call(api, "patch", f"/sessions/{one['session']['session_id']}/attendance/s2",
         teacher_headers, {"status": "EXCUSED", "reason": "ill"})
    grid = call(api, "get", f"/classes/{cid}/attendance?from=2024-09-01&to=2024-09-30",
                teacher_headers).json_body
    assert [s["title"] for s in grid["sessions"]] == ["Week 1", "Week 2"]
    ada, grace = grid["people"]
    assert [c["status"] for c in ada["cells"]] == ["PRESENT", "LATE"]
    assert [(c["status"], c["source"]) for c in grace["cells"]] == [("EXCUSED", "manual"),
                                                                      ("PRESENT", "auto")]
    assert ada["totals"] == {"attended": 2, "late": 1, "absent": 0, "excused": 0, "taken": 2,
                             "rate": 1.0}
    assert grace["totals"]["rate"] == 1.0 and grace["totals"]["excused"] == 1
    assert grid["sessions"][0]["totals"]["attended"] == 1
    answer = call(api, "get", f"/classes/{cid}/attendance.csv?from=2024-09-01&to=2024-09-30",
                  teacher_headers)
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.body.decode("utf-8-sig"))))
    assert rows[0] == ["Student ID", "Name", "2024-09-02 Week 1", "2024-09-09 Week 2",
                       "Attended", "Late", "Absent", "Excused", "Rate"]
    assert rows[1] == ["s1", "Ada", "P", "L", "2", "1", "0", "0", "100.0%"]
    assert rows[2] == ["s2", "Grace", "E*", "P", "1", "0", "0", "1", "100.0%"]
    assert 'filename="register-Biology-2024-09-01-to-2024-09-30.csv"' in \
        answer.headers["Content-Disposition"]
    matrix = call(api, "get", f"/attendance/export.csv?class_id={cid}&from=2024-09-01",
                  teacher_headers)
    rows = list(csv.reader(io.StringIO(matrix.body.decode("utf-8-sig"))))
    assert [r[:5] for r in rows[1:]] == [["s1", "Ada", "P", "L", "A"],
                                          ["s2", "Grace", "E", "P", "A"]]


# -- migration ---------------------------------------------------------------------------
def test_a_session_from_before_classes_keeps_working_as_no_class(
        api, admin_headers, teacher_headers, services, settings, clients):
    from ops.provision import Provisioner
    table = services.clients.table(settings.sessions_table)
    old = {"session_id": "a" * 32, "title": "Old lecture", "date": "2023-05-01",
           "created_at": "2023-05-01T10:00:00+00:00", "status": "COMPLETED",
           "counts": {"roster": 1, "present": 1, "absent": 0, "unrecognised": 0}}
    table.put_item(Item=old)
    batch_put(services.clients.table(settings.attendance_table), [{
        "session_id": "a" * 32, "student_id": "s1", "full_name": "Ada", "status": "PRESENT",
        "source": "auto", "auto_status": "PRESENT", "sightings": 2, "seen_ms": [0, 500]}])
    # Provisioning gives it its list keys (and a second run has nothing to do).
    provisioner = Provisioner(settings, clients)
    provisioner.backfill()
    assert provisioner.report == [("items", f"{settings.sessions_table} (1)", "updated")]
    again = Provisioner(settings, clients)
    again.backfill()
    assert again.report == []
    detail = call(api, "get", f"/sessions/{'a' * 32}", admin_headers).json_body
    assert detail["session"]["class_id"] is None
    assert detail["session"]["counts"]["late"] == 0
    assert [r["status"] for r in detail["attendance"]] == ["PRESENT"]
    listed = call(api, "get", "/sessions?class_id=none", admin_headers).json_body["sessions"]
    assert [s["title"] for s in listed] == ["Old lecture"]
    assert call(api, "get", f"/sessions/{'a' * 32}", teacher_headers).status_code == 404
    assert call(api, "get", "/sessions?class_id=none", teacher_headers).status_code == 404
    # An admin can file it under a class; its teacher then sees it.
    cid = new_class(api, admin_headers)["class_id"]
    moved = call(api, "patch", f"/sessions/{'a' * 32}", admin_headers, {"class_id": cid})
    assert moved.status_code == 200 and moved.json_body["session"]["class_id"] == cid
    assert call(api, "get", f"/sessions/{'a' * 32}", teacher_headers).status_code == 200
    assert [s["title"] for s in call(api, "get", f"/sessions?class_id={cid}",
                                     teacher_headers).json_body["sessions"]] == ["Old lecture"]
