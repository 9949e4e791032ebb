"""Deciding present/absent from face-search results, writing the rows,
corrections, and one student's history."""
import json

import pytest

from chalicelib.attendance import MAX_TIMELINE, best_match, decide, thin_timeline
from test_attendance_fakes import (  # noqa: F401 - fixtures
    add_students, by_student, create_session, run_session, s3_event, seen, session_detail,
    sighting, sns_event, upload_video, video_search)

pytestmark = pytest.mark.usefixtures("video_search")


# -- the decision (pure) ------------------------------------------------------------
def test_only_the_best_match_of_a_tracked_person_counts():
    persons = [
        # Person 0 looks like both; Ada is the better match at each moment.
        sighting(0, 0, [("grace", 85.0), ("ada", 97.0)]),
        sighting(500, 0, [("ada", 96.0), ("grace", 90.0)]),
    ]
    decision = decide(persons, {"ada", "grace"}, threshold=80)
    assert set(decision.evidence) == {"ada"}
    assert decision.evidence["ada"].seen == {0: 97.0, 500: 96.0}
    assert decision.unrecognised == 0


def test_repeated_entries_and_matches_below_the_threshold_are_not_sightings():
    persons = [sighting(0, 0, [("ada", 95.0)]), sighting(0, 0, [("ada", 95.0)]),
               sighting(400, 0, [("ada", 79.9)]), sighting(800, 0, [("ada", 80.0)])]
    decision = decide(persons, {"ada"}, threshold=80)
    assert decision.evidence["ada"].seen == {0: 95.0, 800: 80.0}


def test_unrecognised_people_are_tracks_nobody_on_the_roster_matched():
    persons = [
        sighting(0, 0, [("ada", 95.0)]),
        sighting(0, 1),                              # a stranger
        sighting(300, 1),
        sighting(0, 2, [("ada", 60.0)]),             # a poor match only
        sighting(0, 3, [("deleted-student", 99.0)]),  # no longer registered
        sighting(900, 4, [("ada", 91.0)]),           # a second track of Ada
    ]
    decision = decide(persons, {"ada"}, threshold=80)
    assert decision.unrecognised == 3
    assert decision.evidence["ada"].seen == {0: 95.0, 900: 91.0}


def test_results_kept_as_best_matches_decide_the_same():
    persons = [sighting(0, 0, [("grace", 85.0), ("ada", 97.0)]), sighting(0, 1),
               sighting(500, 0, [("ada", 96.0)]), sighting(900, 2, [("grace", 81.0)])]
    box = (0.1, 0.1, 0.2, 0.3)  # the face's BoundingBox, kept for the evidence crops
    assert best_match(persons[0]) == (0, 0, "ada", 97.0, box)
    assert best_match(persons[1]) == (0, 1, None, 0.0, box)
    whole = decide(persons, {"ada", "grace"}, threshold=80)
    kept = decide([best_match(p) for p in persons], {"ada", "grace"}, threshold=80)
    assert whole == kept and whole.unrecognised == 1
    assert set(whole.evidence) == {"ada", "grace"}


def test_the_timeline_is_thinned_evenly_keeping_first_and_last():
    assert thin_timeline([3, 1, 2]) == [1, 2, 3]
    thinned = thin_timeline(list(range(0, 100_000, 100)))
    assert len(thinned) == MAX_TIMELINE
    assert thinned[0] == 0 and thinned[-1] == 99_900
    assert thinned == sorted(set(thinned))


# -- rows through the whole path ----------------------------------------------------
def test_present_absent_and_the_evidence_of_each_row(api, admin_headers, services,
                                                     video_search):
    add_students(services, [("s1", "Zoë Zed"), ("s2", "Ada Lovelace"), ("s3", "Grace Hopper"),
                            ("s4", "Alan Turing")])
    persons = (seen("s1", 0, [1000, 1500, 2000, 9000], similarity=93.25)
               + seen("s2", 1, [4000], similarity=99.0)          # once: below MIN_SIGHTINGS=2
               + [sighting(5000, 2, box=(0.6, 0.5, 0.1, 0.15)),  # an unknown person,
                  sighting(5500, 2, box=(0.6, 0.5, 0.1, 0.15))]  # elsewhere in the room
               + seen("s3", 3, [100, 200], similarity=70.0))     # below the threshold
    detail = run_session(api, admin_headers, services, video_search, persons)
    rows = by_student(detail)
    assert [r["full_name"] for r in detail["attendance"]] == [
        "Ada Lovelace", "Alan Turing", "Grace Hopper", "Zoë Zed"]  # sorted by name
    assert rows["s1"] == {
        "session_id": detail["session"]["session_id"], "student_id": "s1",
        "full_name": "Zoë Zed", "status": "PRESENT", "source": "auto", "auto_status": "PRESENT",
        "similarity": 93.25, "first_seen_ms": 1000, "last_seen_ms": 9000, "sightings": 4,
        "seen_ms": [1000, 1500, 2000, 9000], "corrected_by": None, "corrected_at": None,
        "reason": None, "seen_for_ms": 1000,
        "moments": {"best": {"ms": 1000, "box": [0.1, 0.1, 0.2, 0.3]},
                    "first": {"ms": 1000, "box": [0.1, 0.1, 0.2, 0.3]}},
        # Crops are cut after completion (none yet); the registered photo (none here).
        "crops": {"best": None, "first": None}, "photo_url": None, "face_box": None}
    assert rows["s2"]["status"] == "ABSENT" and rows["s2"]["sightings"] == 1
    assert rows["s2"]["first_seen_ms"] == 4000 and rows["s2"]["similarity"] == 99.0
    assert rows["s3"]["status"] == "ABSENT" and rows["s3"]["sightings"] == 0
    assert rows["s3"]["similarity"] is None and rows["s3"]["seen_ms"] == []
    assert rows["s4"]["status"] == "ABSENT"
    assert detail["session"]["counts"] == {"roster": 4, "present": 1, "absent": 3,
                                           "unrecognised": 2, "late": 0, "excused": 0, "not_enrolled": 0}


def test_results_over_three_pages_are_all_read(api, admin_headers, services, video_search):
    add_students(services, [("early", "Early"), ("middle", "Middle"), ("late", "Late")])
    video_search.page_size = 4
    persons = (seen("early", 0, [0, 100, 200, 300]) + seen("middle", 1, [400, 500, 600, 700])
               + seen("late", 2, [800, 900]))
    detail = run_session(api, admin_headers, services, video_search, persons)
    job_id = detail["session"]["job_id"]
    pages = video_search.pages_read(job_id)
    # One look while the job ran (the S3 handler's), then the completion's three pages.
    assert [p.get("NextToken") for p in pages] == [None, None, "4", "8"]
    assert {r["student_id"]: r["status"] for r in detail["attendance"]} == {
        "early": "PRESENT", "middle": "PRESENT", "late": "PRESENT"}


def test_a_duplicated_message_leaves_one_set_of_rows_and_writes_nothing(
        api, admin_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    detail = run_session(api, admin_headers, services, video_search, seen("s1", 0, [0, 500]))
    writes = []
    client = services.clients.table(services.settings.attendance_table).meta.client
    for operation in ("BatchWriteItem", "PutItem", "UpdateItem"):
        client.meta.events.register(f"before-call.dynamodb.{operation}",
                                    lambda model, **kw: writes.append(model.name))
    sns_event(api, video_search.message(detail["session"]["job_id"]))
    again = session_detail(api, admin_headers, detail["session"]["session_id"])
    assert again == detail
    assert writes == []
    # Even a second run of the completion code on the same result writes no row.
    services.attendance.record_automatic(detail["session"]["session_id"],
                                         services.students.list_all(),
                                         decide(seen("s1", 0, [0, 500]), {"s1", "s2"}, 80), 2)
    assert writes == []


def test_a_roster_of_1000_students_is_written_with_batch_writes(
        api, admin_headers, services, video_search):
    add_students(services, [(f"st{n:04d}", f"Student {n:04d}") for n in range(1000)])
    persons = [entry for n in range(0, 1000, 10) for entry in seen(f"st{n:04d}", n, [n, n + 40])]
    calls = []
    client = services.clients.table(services.settings.attendance_table).meta.client
    client.meta.events.register("before-parameter-build.dynamodb.*",
                                lambda model, params, **kw: calls.append(
                                    (model.name, len(params.get("RequestItems", {}).get(
                                        services.settings.attendance_table, [])))))
    detail = run_session(api, admin_headers, services, video_search, persons)
    assert detail["session"]["counts"] == {"roster": 1000, "present": 100, "absent": 900,
                                           "unrecognised": 0, "late": 0, "excused": 0, "not_enrolled": 0}
    assert len(detail["attendance"]) == 1000
    batches = [size for name, size in calls if name == "BatchWriteItem"]
    assert sum(batches) == 1000 and max(batches) == 25 and len(batches) == 40
    assert not [name for name, _ in calls if name == "PutItem"]


def test_the_roster_is_the_one_at_completion_with_the_name_at_that_time(
        api, admin_headers, services, video_search):
    add_students(services, [("s1", "Ada")])
    video_search.persons = seen("s2", 0, [0, 500])
    session = create_session(api, admin_headers)["session"]
    upload_video(services, session)
    s3_event(api, services, session["video_key"])
    add_students(services, [("s2", "Grace")])  # registered while the video was processing
    job_id = session_detail(api, admin_headers, session["session_id"])["session"]["job_id"]
    sns_event(api, video_search.message(job_id))
    rows = by_student(session_detail(api, admin_headers, session["session_id"]))
    assert rows["s2"]["status"] == "PRESENT" and rows["s1"]["status"] == "ABSENT"
    add_students(services, [("s2", "Grace Hopper")])  # renamed later
    rows = by_student(session_detail(api, admin_headers, session["session_id"]))
    assert rows["s2"]["full_name"] == "Grace"


# -- corrections ------------------------------------------------------------------
def test_a_correction_keeps_the_automatic_result_who_and_when(
        api, admin_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    detail = run_session(api, admin_headers, services, video_search, seen("s1", 0, [0, 500]))
    sid = detail["session"]["session_id"]
    response = api.http.patch(f"/sessions/{sid}/attendance/s2", headers=admin_headers,
                              body=json.dumps({"status": "PRESENT",
                                               "reason": "Sat behind a pillar"}))
    assert response.status_code == 200, response.body
    row = response.json_body["row"]
    assert (row["status"], row["source"], row["auto_status"]) == ("PRESENT", "manual", "ABSENT")
    assert row["corrected_by"] == "admin@example.org"
    assert row["corrected_at"].startswith("20") and row["reason"] == "Sat behind a pillar"
    after = session_detail(api, admin_headers, sid)
    # The session's page also links the crops and the registered photo.
    shown = by_student(after)["s2"]
    assert {k: v for k, v in shown.items() if k not in ("crops", "photo_url", "face_box")} == row
    assert after["session"]["counts"]["present"] == 2
    assert after["session"]["counts"]["absent"] == 0


def test_a_bad_correction_is_a_400_naming_the_field(api, admin_headers, services,
                                                    video_search):
    add_students(services, [("s1", "Ada")])
    detail = run_session(api, admin_headers, services, video_search, [])
    path = f"/sessions/{detail['session']['session_id']}/attendance/s1"
    for body, field in [({"status": "MAYBE", "reason": "x"}, "status"),
                        ({"reason": "x"}, "status"),
                        ({"status": "PRESENT"}, "reason"),
                        ({"status": "PRESENT", "reason": "   "}, "reason"),
                        ({"status": "PRESENT", "reason": "x" * 501}, "reason")]:
        response = api.http.patch(path, headers=admin_headers, body=json.dumps(body))
        assert response.status_code == 400, body
        assert response.json_body["error"]["details"]["field"] == field, body
    assert by_student(session_detail(api, admin_headers, detail["session"]["session_id"]))[
        "s1"]["source"] == "auto"  # nothing was changed by the refused corrections


def test_correcting_an_unknown_student_or_session_is_a_404(api, admin_headers, services,
                                                           video_search):
    detail = run_session(api, admin_headers, services, video_search, [])
    body = json.dumps({"status": "PRESENT", "reason": "x"})
    sid = detail["session"]["session_id"]
    unknown = api.http.patch(f"/sessions/{sid}/attendance/nobody", headers=admin_headers,
                             body=body)
    assert unknown.status_code == 404
    assert unknown.json_body["error"]["code"] == "student_not_found"
    assert api.http.patch(f"/sessions/{'a' * 32}/attendance/s1", headers=admin_headers,
                          body=body).status_code == 404
    too_long = api.http.patch(f"/sessions/{sid}/attendance/{'x' * 2000}",
                              headers=admin_headers, body=body)
    assert too_long.status_code == 404


def test_a_correction_survives_a_retry_of_the_session(api, admin_headers, services,
                                                      video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    video_search.fail_job = "The video could not be decoded"
    detail = run_session(api, admin_headers, services, video_search, seen("s2", 0, [0, 500]))
    sid = detail["session"]["session_id"]
    assert detail["session"]["status"] == "FAILED"
    # While it is failed, the teacher records what they saw in class.
    for student, status in (("s1", "PRESENT"), ("s2", "ABSENT")):
        response = api.http.patch(f"/sessions/{sid}/attendance/{student}",
                                  headers=admin_headers,
                                  body=json.dumps({"status": status, "reason": "roll call"}))
        assert response.status_code == 200, response.body
        assert response.json_body["row"]["auto_status"] is None
    retried = api.http.post(f"/sessions/{sid}/retry", headers=admin_headers).json_body
    sns_event(api, video_search.message(retried["session"]["job_id"]))
    done = session_detail(api, admin_headers, sid)
    assert done["session"]["status"] == "COMPLETED"
    rows = by_student(done)
    # The automatic result is recorded beside the teacher's, which stands.
    assert (rows["s1"]["status"], rows["s1"]["auto_status"], rows["s1"]["source"]) == (
        "PRESENT", "ABSENT", "manual")
    assert (rows["s2"]["status"], rows["s2"]["auto_status"]) == ("ABSENT", "PRESENT")
    assert rows["s2"]["sightings"] == 2 and rows["s2"]["reason"] == "roll call"
    assert done["session"]["counts"]["present"] == 1


# -- one student's history -----------------------------------------------------------
def test_a_students_history_and_attendance_rate(api, admin_headers, services, video_search):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    first = run_session(api, admin_headers, services, video_search, seen("s1", 0, [0, 500]),
                        title="Monday", date="2024-09-02", course="CS1")
    run_session(api, admin_headers, services, video_search, [], title="Tuesday",
                date="2024-09-03")
    third = run_session(api, admin_headers, services, video_search, [], title="Wednesday",
                        date="2024-09-04")
    api.http.patch(f"/sessions/{third['session']['session_id']}/attendance/s1",
                   headers=admin_headers,
                   body=json.dumps({"status": "PRESENT", "reason": "came late"}))
    response = api.http.get("/students/s1/attendance", headers=admin_headers)
    assert response.status_code == 200, response.body
    body = response.json_body
    assert body["student"]["student_id"] == "s1" and body["student"]["full_name"] == "Ada"
    assert [h["title"] for h in body["history"]] == ["Wednesday", "Tuesday", "Monday"]
    assert [h["source"] for h in body["history"]] == ["manual", "auto", "auto"]
    monday = body["history"][2]
    assert monday == {"session_id": first["session"]["session_id"], "title": "Monday",
                      "course": "CS1", "date": "2024-09-02", "class_id": None,
                      "status": "PRESENT",
                      "source": "auto", "similarity": 95.0, "first_seen_ms": 0}
    assert (body["present"], body["total"]) == (2, 3)
    assert body["rate"] == pytest.approx(2 / 3, abs=1e-4)
    grace = api.http.get("/students/s2/attendance", headers=admin_headers).json_body
    assert (grace["present"], grace["total"], grace["rate"]) == (0, 3, 0)


def test_history_of_a_student_without_sessions_or_unknown(api, admin_headers, services):
    add_students(services, [("s1", "Ada")])
    body = api.http.get("/students/s1/attendance", headers=admin_headers).json_body
    assert body["history"] == [] and body["total"] == 0 and body["rate"] is None
    assert api.http.get("/students/ghost/attendance",
                        headers=admin_headers).status_code == 404


# -- unrecognised people, grouped (attendance.group_strangers) -----------------------
SEAT = (0.2, 0.3, 0.1, 0.15)         # a face at a seat: left, top, width, height
SEAT_NUDGED = (0.215, 0.31, 0.095, 0.14)  # the same seat, head turned a little
OTHER_SEAT = (0.6, 0.3, 0.1, 0.15)


def unknown(index, timestamps, box):
    return [sighting(t, index, box=box) for t in timestamps]


def test_a_person_who_leaves_and_comes_back_is_one_unrecognised_person():
    # An engine that gives each appearance its own index: 0 then, after a minute away, 1.
    persons = unknown(0, [0, 500, 1000, 1500], SEAT) + unknown(1, [61000, 61500, 62000],
                                                               SEAT_NUDGED)
    decision = decide(persons, set(), threshold=80)
    [stranger] = decision.strangers
    assert decision.unrecognised == 1 and stranger.tracks == [0, 1]
    assert stranger.seen[0] == 0 and stranger.seen[-1] == 62000
    # Seen for 1.5 s + 1 s: the minute away is not "seen".
    assert stranger.public()["seen_for_ms"] == 2500
    assert stranger.public()["first_seen_ms"] == 0


def test_an_engine_that_keeps_one_index_per_person_gives_the_same_answer():
    persons = unknown(4, [0, 500, 1000, 1500], SEAT) + unknown(4, [61000, 61500], OTHER_SEAT)
    [stranger] = decide(persons, set(), threshold=80).strangers
    assert stranger.tracks == [4] and stranger.public()["seen_for_ms"] == 2000


def test_two_faces_at_once_are_two_people_even_at_one_place():
    # Track 1 starts while track 0 is still seen: two faces in one frame.
    persons = unknown(0, [0, 500, 1000], SEAT) + unknown(1, [1000, 1500], SEAT_NUDGED)
    assert decide(persons, set(), threshold=80).unrecognised == 2


def test_someone_else_elsewhere_later_is_another_person():
    persons = unknown(0, [0, 500], SEAT) + unknown(1, [5000, 5500], OTHER_SEAT)
    strangers = decide(persons, set(), threshold=80).strangers
    assert [s.tracks for s in strangers] == [[0], [1]]


def test_a_returning_person_joins_the_most_recent_group_at_that_place():
    # Two people took the same seat one after the other (0-1 s, then 3-4 s, with
    # no overlap: the rule cannot tell them apart, so they are one), then a third
    # track comes back there: it joins that group, not a new one.
    persons = (unknown(0, [0, 500, 1000], SEAT) + unknown(1, [3000, 3500, 4000], SEAT_NUDGED)
               + unknown(2, [9000, 9500], SEAT) + unknown(3, [9000, 9500], OTHER_SEAT))
    strangers = decide(persons, set(), threshold=80).strangers
    assert [s.tracks for s in strangers] == [[0, 1, 2], [3]]


def test_a_recognised_track_is_nobody_unrecognised_and_the_best_frame_is_the_largest_face():
    small, large = (0.6, 0.3, 0.05, 0.08), (0.6, 0.3, 0.1, 0.15)
    persons = (seen("ada", 0, [0, 500]) + [sighting(0, 1, box=small), sighting(500, 1, box=large),
                                            sighting(1000, 1, box=small)])
    decision = decide(persons, {"ada"}, threshold=80)
    [stranger] = decision.strangers
    assert stranger.tracks == [1] and stranger.best == (500, large)
    assert decision.evidence["ada"].best == (0, (0.1, 0.1, 0.2, 0.3))
