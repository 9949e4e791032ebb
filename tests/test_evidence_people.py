"""Unrecognised people from the video: registering one, and "Not this person".

The face search is the fake (faces at the places the generated video has
them); registration runs against the built-in face engine, so the photo rules
(one usable face of at least 80 px, not someone else's) are the real ones,
applied to the crop cut from the video's full-resolution frame.
"""
import json

import pytest

from test_attendance_fakes import add_students, by_student, session_detail, sighting
from test_attendance_fakes import video_search  # noqa: F401 (fixture)
from test_evidence import complete, deliver_evidence, faces_dir_module  # noqa: F401
from test_evidence import ratio_box
from tests.support.video_maker import make_video


class SearchAndFaces:
    """The fake video search for StartFaceSearch/GetFaceSearch, the engine for the rest."""

    def __init__(self, search, faces):
        self._search, self._faces = search, faces

    def __getattr__(self, name):
        if name in ("start_face_search", "get_face_search"):
            return getattr(self._search, name)
        return getattr(self._faces, name)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory, faces_dir_module):  # noqa: F811
    """Obama (a registered student) left, a stranger with a large face in the middle,
    and one far at the back (a 36 px face: too small to register from)."""
    people = faces_dir_module / "people"
    path = tmp_path_factory.mktemp("video") / "class.mp4"
    meta = make_video(path, [
        dict(image=people / "barack_obama" / "2.jpg", start_s=0.0, end_s=3.0, x=20, y=80,
             height=100),
        dict(image=people / "john_savage" / "1.jpg", start_s=0.0, end_s=3.0, x=250, y=60,
             height=130),
        dict(image=people / "john_schneider" / "1.jpg", start_s=0.0, end_s=3.0, x=520, y=40,
             height=36),
    ], size=(640, 360), fps=10, duration_s=3.0)
    return path, [ratio_box(a["face_box"]) for a in meta["appearances"]]


@pytest.fixture
def engine(services, video_search, face_rekognition):  # noqa: F811
    """Registered before anything builds the students service (it keeps its client)."""
    face_rekognition.create_collection(CollectionId=services.settings.face_collection)
    services.clients.register("rekognition", SearchAndFaces(video_search, face_rekognition))


@pytest.fixture
def class_id(api, admin_headers, teacher_headers, services, engine):
    """A class the teacher teaches, with Obama enrolled."""
    add_students(services, [("obama", "Barack Obama")])
    created = api.http.post("/classes", headers=admin_headers, body=json.dumps(
        {"name": "Civics 2B", "teachers": ["teacher@example.org"]}))
    assert created.status_code == 201, created.body
    class_id = created.json_body["class"]["class_id"]
    enrolled = api.http.put(f"/classes/{class_id}/students/obama", headers=admin_headers)
    assert enrolled.status_code == 201, enrolled.body
    return class_id


@pytest.fixture
def session(api, teacher_headers, services, video_search, classroom, class_id):  # noqa: F811
    path, (obama, savage, schneider) = classroom
    persons = ([sighting(t, 0, [("obama", 96.0)], box=obama) for t in (100, 600, 1100)]
               + [sighting(t, 1, box=savage) for t in (200, 700, 1200)]
               + [sighting(t, 2, box=schneider) for t in (300, 800)])
    session_id, _ = complete(api, teacher_headers, services, video_search, persons,
                             path.read_bytes(), class_id=class_id)
    deliver_evidence(api, services)
    return session_id


def register(api, headers, session_id, number, **body):
    return api.http.post(f"/sessions/{session_id}/unrecognised/{number}/register",
                         headers=headers, body=json.dumps(body))


def test_registering_a_stranger_from_the_video(api, teacher_headers, services, session,
                                               class_id):
    detail = session_detail(api, teacher_headers, session)
    assert detail["session"]["counts"]["unrecognised"] == 2
    assert [s["has_photo"] for s in detail["session"]["strangers"]] == [True, True]

    answer = register(api, teacher_headers, session, 1, student_id="savage",
                      full_name="John Savage")
    assert answer.status_code == 201, answer.body
    student = answer.json_body["student"]
    assert student["student_id"] == "savage" and student["full_name"] == "John Savage"
    row = answer.json_body["row"]
    assert row["status"] == "PRESENT" and row["source"] == "manual"
    assert row["reason"] == "registered from this session"
    assert row["corrected_by"] == "teacher@example.org"

    detail = session_detail(api, teacher_headers, session)
    assert detail["session"]["strangers"][0]["registered_as"] == "savage"
    assert detail["session"]["counts"]["unrecognised"] == 1
    assert detail["session"]["counts"]["present"] == 2
    # Their row shows the face they were registered from.
    assert "/stranger-1.jpg" in by_student(detail)["savage"]["crops"]["best"]
    # Registered for real: their face is in the collection, their photo stored.
    described = api.http.get("/students/savage", headers=teacher_headers).json_body["student"]
    assert described["photo_count"] == 1 and described["face_count"] == 1
    # A class session enrols them in its class.
    roster = api.http.get(f"/classes/{class_id}/students", headers=teacher_headers).json_body
    assert {p["student_id"] for p in roster["students"]} == {"obama", "savage"}
    # Once only.
    again = register(api, teacher_headers, session, 1, student_id="savage2",
                     full_name="John Savage")
    assert again.status_code == 409 and again.json_body["error"]["code"] == "already_registered"


def test_a_face_too_small_in_the_video_asks_for_a_photo(api, teacher_headers, services,
                                                       session, faces_dir_module):  # noqa: F811
    answer = register(api, teacher_headers, session, 2, student_id="schneider",
                      full_name="John Schneider")
    assert answer.status_code == 422, answer.body
    error = answer.json_body["error"]
    assert error["code"] == "video_photo_unusable"
    assert error["details"] == {"field": "photo", "reason": "face_too_small"}
    assert "Choose a photo" in error["message"]
    assert api.http.get("/students/schneider", headers=teacher_headers).status_code == 404
    # The page then sends a photo uploaded the usual way: the same person is registered.
    upload = api.http.post("/uploads/photo", headers=teacher_headers,
                           body=json.dumps({"content_type": "image/jpeg"})).json_body
    services.clients.client("s3").put_object(
        Bucket=services.settings.photos_bucket, Key=upload["photo_key"], ContentType="image/jpeg",
        Body=(faces_dir_module / "people" / "john_schneider" / "2.jpg").read_bytes())
    answer = register(api, teacher_headers, session, 2, student_id="schneider",
                      full_name="John Schneider", photo_key=upload["photo_key"])
    assert answer.status_code == 201, answer.body
    assert session_detail(api, teacher_headers, session)["session"]["counts"][
        "unrecognised"] == 1  # the other stranger


def test_not_this_person_makes_the_face_unrecognised(api, teacher_headers, services, session):
    url = f"/sessions/{session}/attendance/obama/not-this-person"
    answer = api.http.post(url, headers=teacher_headers, body="{}")
    assert answer.status_code == 200, answer.body
    row = answer.json_body["row"]
    assert row["status"] == "ABSENT" and row["source"] == "manual"
    assert row["reason"].startswith("Not this person")
    detail = session_detail(api, teacher_headers, session)
    strangers = detail["session"]["strangers"]
    assert len(strangers) == 3 and strangers[2]["from_student"] == "obama"
    assert strangers[2]["first_seen_ms"] == 100 and strangers[2]["has_photo"] is False
    # The face shown is the crop the match was made on.
    assert "/student-obama-best.jpg" in strangers[2]["crop"]
    assert by_student(detail)["obama"]["auto_status"] == "PRESENT"  # kept beside it
    assert detail["session"]["counts"]["unrecognised"] == 3
    # Repeated: nothing new.
    assert api.http.post(url, headers=teacher_headers, body="{}").status_code == 200
    assert len(session_detail(api, teacher_headers, session)["session"]["strangers"]) == 3
    # Registering that face needs a photo (the crop is only the small one).
    refused = register(api, teacher_headers, session, 3, student_id="x", full_name="X")
    assert refused.status_code == 422
    assert refused.json_body["error"]["code"] == "no_video_photo"


def test_registering_needs_a_completed_session_and_a_real_number(api, teacher_headers,
                                                                 session, make_user, login):
    assert register(api, teacher_headers, session, 9, student_id="a",
                    full_name="A").status_code == 404
    bad = api.http.post(f"/sessions/{session}/unrecognised/0/register", headers=teacher_headers,
                        body=json.dumps({"student_id": "a", "full_name": "A"}))
    assert bad.status_code == 400
    assert api.http.post(f"/sessions/{session}/unrecognised/1/register",
                         body=json.dumps({"student_id": "a", "full_name": "A"}),
                         headers={"Content-Type": "application/json"}).status_code == 401
    # A teacher of other classes does not see this session at all.
    other = login(make_user("other@example.org", "other password 12", "teacher"))
    assert register(api, other, session, 1, student_id="a", full_name="A").status_code == 404
    assert api.http.post(f"/sessions/{session}/attendance/obama/not-this-person",
                         headers=other, body="{}").status_code == 404
