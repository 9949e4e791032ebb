"""Editing a person through the API: rename, email, photos with their face boxes,
removing a photo (its face goes too, the last one stays), replacing the main photo.

Rekognition is the in-memory fake of ``test_students_fakes.py``.
"""
import json

import pytest

from tests.fakes.face_collection import face
from tests.support.failures import (FAILURES, PHOTO_CHANGE_FAILURES, error_of,
                                    fail_step)


def enrol(services, class_id, student_id, full_name):
    """An enrolment row as the classes service writes it."""
    from chalicelib import names
    services.clients.table(services.settings.members_table).put_item(Item={
        "class_id": class_id, "member": f"student#{student_id}", "student_id": student_id,
        "full_name": full_name, "name_key": names.sort_key(full_name, student_id),
        "enrolled_at": "2026-01-01T00:00:00+00:00", "enrolled_by": "admin@example.org"})


@pytest.fixture
def patch_student(api, admin_headers):
    def do_patch(student_id, body):
        return api.http.patch(f"/students/{student_id}", headers=admin_headers,
                              body=json.dumps(body))
    return do_patch


@pytest.fixture
def photos_of(api, admin_headers):
    def listing(student_id):
        answer = api.http.get(f"/students/{student_id}/photos", headers=admin_headers)
        assert answer.status_code == 200, answer.body
        return answer.json_body["photos"]
    return listing


@pytest.fixture
def remove_photo(api, admin_headers):
    def do_remove(student_id, photo_id):
        return api.http.delete(f"/students/{student_id}/photos/{photo_id}",
                               headers=admin_headers)
    return do_remove


@pytest.fixture
def replace_main(api, admin_headers):
    def do_replace(student_id, photo_key):
        return api.http.put(f"/students/{student_id}/main-photo", headers=admin_headers,
                            body=json.dumps({"photo_key": photo_key}))
    return do_replace


# -- rename ------------------------------------------------------------------------
def test_rename_changes_the_record_and_keeps_the_name_on_past_attendance(
        api, admin_headers, register, photo_of, patch_student, services, fake_rekognition):
    register("S1", "Ada Byron", photo_of("ada"))
    attendance = services.clients.table(services.settings.attendance_table)
    attendance.put_item(Item={"session_id": "sess1", "student_id": "S1",
                              "full_name": "Ada Byron", "status": "PRESENT"})
    faces_before = dict(fake_rekognition.faces)
    answer = patch_student("S1", {"full_name": "  Ada Lovelace "})
    assert answer.status_code == 200, answer.body
    assert answer.json_body["student"]["full_name"] == "Ada Lovelace"
    assert services.students.get("S1")["full_name"] == "Ada Lovelace"
    got = api.http.get("/students/S1", headers=admin_headers).json_body["student"]
    assert got["full_name"] == "Ada Lovelace"
    # History keeps the name the row was taken under; faces are keyed by ID.
    row = attendance.get_item(Key={"session_id": "sess1", "student_id": "S1"})["Item"]
    assert row["full_name"] == "Ada Byron"
    assert fake_rekognition.faces == faces_before


def test_email_is_set_and_removed(register, photo_of, patch_student, services):
    register("S1", "Ada", photo_of("ada"))
    answer = patch_student("S1", {"email": "ada@example.org"})
    assert answer.status_code == 200
    assert answer.json_body["student"]["email"] == "ada@example.org"
    assert answer.json_body["student"]["full_name"] == "Ada"
    assert patch_student("S1", {"email": ""}).json_body["student"]["email"] is None
    assert "email" not in services.students.get("S1")


@pytest.mark.parametrize("body, field", [
    ({}, "full_name"), ({"full_name": ""}, "full_name"), ({"full_name": "a\nb"}, "full_name"),
    ({"full_name": "n" * 201}, "full_name"), ({"email": "not an address"}, "email"),
    ({"email": 3}, "email")])
def test_bad_changes_are_400_naming_the_field(register, photo_of, patch_student, services,
                                              body, field):
    register("S1", "Ada", photo_of("ada"))
    answer = patch_student("S1", body)
    assert answer.status_code == 400
    assert error_of(answer)["details"]["field"] == field
    assert services.students.get("S1")["full_name"] == "Ada"


def test_renaming_nobody_is_404_and_creates_nothing(patch_student, services, fake_rekognition):
    answer = patch_student("S9", {"full_name": "Ghost"})
    assert answer.status_code == 404 and error_of(answer)["code"] == "unknown_student"
    assert services.students.get("S9") is None


def test_a_rename_racing_a_delete_does_not_recreate_the_record(
        register, photo_of, patch_student, services, fake_rekognition):
    register("S1", "Ada", photo_of("ada"))
    store = services.students.store
    real = store.update_details

    def deleted_first(*args, **kwargs):
        store.delete("S1")
        return real(*args, **kwargs)
    store.update_details = deleted_first
    assert patch_student("S1", {"full_name": "Ada L"}).status_code == 404
    assert services.students.get("S1") is None


# -- photos --------------------------------------------------------------------------
def test_every_photo_is_listed_main_first_with_its_face_box(
        register, add_photo, photo_of, photos_of):
    register("S1", "Ada", photo_of(faces=[face("ada", left=0.1, top=0.2, width=0.3,
                                                height=0.4)]))
    add_photo("S1", photo_of(faces=[face("ada", left=0.5, top=0.1, width=0.2, height=0.3)]))
    photos = photos_of("S1")
    assert [p["main"] for p in photos] == [True, False]
    assert photos[0]["face_box"] == pytest.approx({"left": 0.1, "top": 0.2, "width": 0.3,
                                                   "height": 0.4})
    assert photos[1]["face_box"] == pytest.approx({"left": 0.5, "top": 0.1, "width": 0.2,
                                                   "height": 0.3})
    for photo in photos:
        assert photo["photo_key"].startswith("photos/students/")
        assert photo["photo_id"] == photo["photo_key"].rsplit("/", 1)[1]
        assert photo["photo_key"] in photo["url"] and "Signature" in photo["url"]


def test_photos_of_nobody_is_404(api, admin_headers):
    answer = api.http.get("/students/S9/photos", headers=admin_headers)
    assert answer.status_code == 404


# -- who may edit ------------------------------------------------------------------------
def test_a_teacher_edits_people_of_their_classes_only(
        api, make_user, login, register, photo_of, services, fake_rekognition):
    teacher = login(make_user("t@example.org", "teacher password 1", "teacher"))
    ours = services.classes.create(name="7B", term=None, teachers=["t@example.org"],
                                   schedule=None, late_threshold_minutes=10)
    register("S1", "Ada", photo_of("ada"))
    register("S2", "Bob", photo_of("bob"))
    enrol(services, ours["class_id"], "S1", "Ada")
    for method, path, body in (("patch", "/students/{}", {"full_name": "New"}),
                               ("get", "/students/{}/photos", None),
                               ("delete", "/students/{}/photos/" + "0" * 32 + ".png", None),
                               ("put", "/students/{}/main-photo", {"photo_key": photo_of("x")})):
        other = getattr(api.http, method)(path.format("S2"), headers=teacher,
                                          body=json.dumps(body) if body else None)
        assert other.status_code == 404, (method, path)
    assert services.students.get("S2")["full_name"] == "Bob"
    answer = api.http.patch("/students/S1", headers=teacher,
                            body=json.dumps({"full_name": "Ada Lovelace"}))
    assert answer.status_code == 200, answer.body
    assert api.http.get("/students/S1/photos", headers=teacher).status_code == 200


def test_a_rename_shows_on_the_class_roster_and_in_the_name_search(
        api, admin_headers, register, photo_of, patch_student, services, fake_rekognition):
    a_class = services.classes.create(name="7B", term=None, teachers=[], schedule=None,
                                      late_threshold_minutes=10)
    register("S1", "Ada Byron", photo_of("ada"))
    enrol(services, a_class["class_id"], "S1", "Ada Byron")
    assert patch_student("S1", {"full_name": "Zoë Lovelace"}).status_code == 200
    roster = api.http.get(f"/classes/{a_class['class_id']}/students", headers=admin_headers)
    assert [p["full_name"] for p in roster.json_body["students"]] == ["Zoë Lovelace"]
    found = api.http.get("/students?q=zoe", headers=admin_headers).json_body["students"]
    assert [p["student_id"] for p in found] == ["S1"]
    assert api.http.get("/students?q=ada", headers=admin_headers).json_body["students"] == []


def test_removing_a_photo_removes_its_face_and_file(
        register, add_photo, photo_of, photos_of, remove_photo, services, fake_rekognition,
        bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    add_photo("S1", photo_of("ada"))
    add_photo("S1", photo_of("ada"))
    before = services.students.get("S1")
    middle = photos_of("S1")[1]
    answer = remove_photo("S1", middle["photo_id"])
    assert answer.status_code == 200, answer.body
    assert answer.json_body["student"]["photo_count"] == 2
    after = services.students.get("S1")
    removed_face = before["face_ids"][1]
    assert after["photo_keys"] == [before["photo_keys"][0], before["photo_keys"][2]]
    assert after["face_ids"] == [before["face_ids"][0], before["face_ids"][2]]
    assert middle["photo_key"] not in [b["photo_key"] for b in after["face_boxes"]]
    assert len(after["face_boxes"]) == 2
    # The face is gone from the collection, the file from the bucket.
    assert removed_face not in fake_rekognition.faces
    assert sorted(fake_rekognition.faces_of("S1")) == sorted(after["face_ids"])
    assert bucket_keys() == sorted(after["photo_keys"])


def test_the_last_photo_cannot_be_removed(register, photo_of, photos_of, remove_photo,
                                          services, fake_rekognition, bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    before = services.students.get("S1")
    [only] = photos_of("S1")
    answer = remove_photo("S1", only["photo_id"])
    assert answer.status_code == 409
    assert error_of(answer)["code"] == "last_photo"
    assert "at least one" in error_of(answer)["message"]
    assert services.students.get("S1") == before
    assert fake_rekognition.faces_of("S1") == before["face_ids"]
    assert bucket_keys() == before["photo_keys"]


def test_removing_an_unknown_photo_is_404(register, add_photo, photo_of, remove_photo):
    register("S1", "Ada", photo_of("ada"))
    add_photo("S1", photo_of("ada"))
    for photo_id in ("0" * 32 + ".jpg", "nonsense"):
        answer = remove_photo("S1", photo_id)
        assert answer.status_code == 404 and error_of(answer)["code"] == "unknown_photo"
    assert remove_photo("S9", "0" * 32 + ".jpg").status_code == 404


def test_two_removals_racing_for_the_last_two_photos_leave_one(
        register, add_photo, photo_of, photos_of, remove_photo, services, fake_rekognition,
        bucket_keys):
    """Both read two photos; the conditional write lets only the first through."""
    register("S1", "Ada", photo_of("ada"))
    add_photo("S1", photo_of("ada"))
    first, second = photos_of("S1")
    store = services.students.store
    real = store.set_photos

    def rival_removes_first(before, *args):
        store.set_photos = real
        services.students.remove_photo("S1", first["photo_id"])
        return real(before, *args)
    store.set_photos = rival_removes_first
    answer = remove_photo("S1", second["photo_id"])
    assert answer.status_code == 409 and error_of(answer)["code"] == "photos_changed"
    item = services.students.get("S1")
    assert item["photo_keys"] == [second["photo_key"]]
    assert fake_rekognition.faces_of("S1") == item["face_ids"]
    assert bucket_keys() == [second["photo_key"]]


# -- replacing the main photo ------------------------------------------------------------
def test_replacing_the_main_photo(register, add_photo, photo_of, replace_main, photos_of,
                                  services, fake_rekognition, bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    add_photo("S1", photo_of("ada"))
    before = services.students.get("S1")
    new_photo = photo_of(faces=[face("ada", left=0.2, top=0.1, width=0.5, height=0.6)])
    answer = replace_main("S1", new_photo)
    assert answer.status_code == 200, answer.body
    student = answer.json_body["student"]
    assert student["photo_count"] == 2
    assert student["face_box"] == pytest.approx({"left": 0.2, "top": 0.1, "width": 0.5,
                                                 "height": 0.6})
    after = services.students.get("S1")
    assert after["photo_keys"][1] == before["photo_keys"][1]
    assert after["photo_keys"][0] not in before["photo_keys"]
    assert before["face_ids"][0] not in fake_rekognition.faces
    assert sorted(fake_rekognition.faces_of("S1")) == sorted(after["face_ids"])
    assert bucket_keys() == sorted(after["photo_keys"])
    assert [p["main"] for p in photos_of("S1")] == [True, False]


def test_another_photo_of_theirs_becomes_the_main_one(
        api, admin_headers, register, add_photo, photo_of, photos_of, services, fake_rekognition):
    register("S1", "Ada", photo_of(faces=[face("ada", left=0.1, top=0.1, width=0.3,
                                                height=0.3)]))
    add_photo("S1", photo_of("ada"))
    add_photo("S1", photo_of(faces=[face("ada", left=0.5, top=0.2, width=0.4, height=0.5)]))
    before = services.students.get("S1")
    third = photos_of("S1")[2]
    answer = api.http.put("/students/S1/main-photo", headers=admin_headers,
                          body=json.dumps({"photo_id": third["photo_id"]}))
    assert answer.status_code == 200, answer.body
    assert answer.json_body["student"]["face_box"] == pytest.approx(
        {"left": 0.5, "top": 0.2, "width": 0.4, "height": 0.5})
    after = services.students.get("S1")
    order = [2, 0, 1]
    assert after["photo_keys"] == [before["photo_keys"][i] for i in order]
    assert after["face_ids"] == [before["face_ids"][i] for i in order]
    assert sorted(fake_rekognition.faces_of("S1")) == sorted(before["face_ids"])
    assert [p["photo_id"] for p in photos_of("S1")][0] == third["photo_id"]
    for body, status in (({"photo_id": "0" * 32 + ".png"}, 404),
                         ({"photo_id": third["photo_id"], "photo_key": photo_of("ada")}, 400),
                         ({}, 400)):
        refused = api.http.put("/students/S1/main-photo", headers=admin_headers,
                               body=json.dumps(body))
        assert refused.status_code == status, body
    assert services.students.get("S1") == after


def test_the_main_photo_can_be_replaced_with_five_photos(
        register, add_photo, photo_of, replace_main, services):
    register("S1", "Ada", photo_of("ada"))
    for _ in range(4):
        add_photo("S1", photo_of("ada"))
    assert replace_main("S1", photo_of("ada")).status_code == 200
    assert len(services.students.get("S1")["photo_keys"]) == 5


def test_a_replacement_of_someone_else_is_refused_and_leaves_nothing(
        register, photo_of, replace_main, services, fake_rekognition, bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    before = services.students.get("S1")
    for photo, code in ((photo_of("bob"), "face_mismatch"), (photo_of(faces=[]), "no_face")):
        answer = replace_main("S1", photo)
        assert answer.status_code == 422 and error_of(answer)["code"] == code
    assert services.students.get("S1") == before
    assert fake_rekognition.faces_of("S1") == before["face_ids"]
    assert bucket_keys() == before["photo_keys"]


@pytest.mark.parametrize("step", list(PHOTO_CHANGE_FAILURES))
def test_a_failed_replacement_is_undone(step, register, photo_of, replace_main, services,
                                        fake_rekognition, bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    before = services.students.get("S1")
    fail_step(services, fake_rekognition, PHOTO_CHANGE_FAILURES[step])
    assert replace_main("S1", photo_of("ada")).status_code == 500
    assert services.students.get("S1") == before
    assert fake_rekognition.faces_of("S1") == before["face_ids"]
    assert bucket_keys() == before["photo_keys"]


def test_editing_needs_sign_in(api):
    headers = {"Content-Type": "application/json"}
    for method, path in (("patch", "/students/S1"), ("get", "/students/S1/photos"),
                         ("delete", "/students/S1/photos/" + "0" * 32 + ".jpg"),
                         ("put", "/students/S1/main-photo")):
        answer = getattr(api.http, method)(path, headers=headers, body="{}")
        assert answer.status_code == 401, (method, path)


# -- a batch of registrations, as the import page sends them ---------------------------------
@pytest.mark.parametrize("step", ["inspect the upload", "detect faces", "search the collection",
                                  "index the face", "copy the photo", "write the record"])
def test_a_row_failing_at_any_step_leaves_nothing_and_the_batch_goes_on(
        step, api, admin_headers, register, photo_of, services, fake_rekognition, bucket_keys):
    people = [("S1", "Ada", "ada"), ("S2", "Bob", "bob"), ("S3", "Carol", "carol")]
    photos = {sid: photo_of(person) for sid, _, person in people}
    answers = {}
    for sid, name, _ in people:
        if sid == "S2":  # exactly this row's request fails at this step
            fail_step(services, fake_rekognition, FAILURES[step])
        answers[sid] = register(sid, name, photos[sid]).status_code
    assert answers == {"S1": 201, "S2": 500, "S3": 201}
    assert services.students.get("S2") is None and fake_rekognition.faces_of("S2") == []
    kept = [k for sid in ("S1", "S3") for k in services.students.get(sid)["photo_keys"]]
    assert bucket_keys() == sorted(kept)  # S2's upload and copy are gone too
    # Running the import again: S1 and S3 are found as they are (the page skips
    # them), S2 registers with a new upload of its photo.
    for sid, name in (("S1", "Ada"), ("S3", "Carol")):
        found = api.http.get(f"/students/{sid}", headers=admin_headers)
        assert found.status_code == 200 and found.json_body["student"]["full_name"] == name
    assert api.http.get("/students/S2", headers=admin_headers).status_code == 404
    assert register("S2", "Bob", photo_of("bob")).status_code == 201


def test_four_registrations_at_once_two_for_one_id(photo_of, services, fake_rekognition,
                                                  bucket_keys):
    """As the import sends them: 4 in flight; the ID's conditional put decides the pair."""
    import concurrent.futures

    from chalicelib.errors import DuplicateStudentId

    rows = [("S1", "Ada", photo_of("ada")), ("S2", "Bob", photo_of("bob")),
            ("S3", "Carol", photo_of("carol")), ("S3", "Carol", photo_of("carol-twin"))]
    barrier = __import__("threading").Barrier(4)

    def register(row):
        barrier.wait()
        try:
            return services.students.register(*row)["student_id"]
        except DuplicateStudentId:
            return "duplicate"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(register, rows))
    assert sorted(outcomes) == ["S1", "S2", "S3", "duplicate"]
    items = [services.students.get(sid) for sid in ("S1", "S2", "S3")]
    for item in items:
        assert fake_rekognition.faces_of(item["student_id"]) == item["face_ids"]
    # The loser's face, copy and upload are gone: only the winners' photos remain.
    assert bucket_keys() == sorted(k for item in items for k in item["photo_keys"])
