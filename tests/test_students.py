"""Students through the HTTP API: photos, registration rules, rollback, list, delete.

Rekognition is the ``fake_rekognition`` fixture (moto has none of the face calls);
``test_students_engine.py`` repeats the key rules with real photos against
the built-in face engine.
"""
import base64
import datetime
import json
import time
import urllib.parse

import pytest

from chalicelib.dynamo import batch_put
from chalicelib.faces import FaceCollection
from chalicelib.students import index_attributes
from chalicelib.students import Students
from tests.fakes.face_collection import face, jpeg_bytes, png_bytes
from tests.support.failures import (FAILURES, PHOTO_CHANGE_FAILURES, error_of, fail_once,
                                    fail_step)


# -- presigned upload -----------------------------------------------------------
def test_photo_upload_is_a_presigned_post_limited_to_one_key_type_and_size(
        api, admin_headers, services, photos_bucket):
    answer = api.http.post("/uploads/photo", headers=admin_headers,
                           body=json.dumps({"content_type": "image/jpeg"}))
    assert answer.status_code == 200
    body = answer.json_body
    key = body["photo_key"]
    assert key.startswith("photos/uploads/") and key.endswith(".jpg")
    assert body["max_bytes"] == services.settings.max_photo_bytes == 5 * 1024 ** 2
    assert body["expires_in"] == 300
    fields = body["upload"]["fields"]
    assert fields["key"] == key and fields["Content-Type"] == "image/jpeg"
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"bucket": photos_bucket} in conditions
    assert {"key": key} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, 5 * 1024 ** 2] in conditions
    expires = datetime.datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    left = (expires - datetime.datetime.utcnow()).total_seconds()
    assert 240 < left <= 301
    # Each request gets its own key: one upload cannot overwrite another's.
    again = api.http.post("/uploads/photo", headers=admin_headers,
                          body=json.dumps({"content_type": "image/png"}))
    assert again.json_body["photo_key"] != key and again.json_body["photo_key"].endswith(".png")


def test_photo_upload_refuses_other_types(api, admin_headers):
    for body in ({}, {"content_type": "image/gif"}, {"content_type": "video/mp4"},
                 {"content_type": 3}, {"content_type": ["image/png"]},
                 {"content_type": {"a": 1}}):
        answer = api.http.post("/uploads/photo", headers=admin_headers,
                               body=json.dumps(body))
        assert answer.status_code == 400, body
        assert error_of(answer)["details"]["field"] == "content_type"
        assert "image/jpeg" in error_of(answer)["message"]


def test_photo_upload_needs_sign_in(api):
    answer = api.http.post("/uploads/photo", headers={"Content-Type": "application/json"},
                           body=json.dumps({"content_type": "image/png"}))
    assert answer.status_code == 401


# -- registration ---------------------------------------------------------------
def test_teacher_registers_a_student_with_one_face(
        register, photo_of, fake_rekognition, services, bucket_keys):
    key = photo_of("ada")
    answer = register("S-001", "  Ada Lovelace  ", key)
    assert answer.status_code == 201, answer.body
    student = answer.json_body["student"]
    assert student["student_id"] == "S-001"
    assert student["full_name"] == "Ada Lovelace"  # trimmed
    assert student["photo_count"] == 1 and student["face_count"] == 1
    created = datetime.datetime.fromisoformat(student["created_at"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 60
    # The photo moved from the upload key to a permanent one; the upload is gone.
    [stored_key] = student["photo_keys"]
    assert stored_key.startswith("photos/students/")
    assert bucket_keys() == [stored_key]
    url = urllib.parse.urlparse(student["photo_url"])
    assert urllib.parse.unquote(url.path).endswith(stored_key)
    assert link_lifetime(student["photo_url"]) == pytest.approx(300, abs=5)
    # The face's ExternalImageId is the student_id; the record keeps its face id.
    item = services.students.get("S-001")
    assert item["face_ids"] == fake_rekognition.faces_of("S-001")
    assert item["photo_keys"] == [stored_key]
    assert "face_ids" not in student
    index_call = fake_rekognition.operations.index("IndexFaces")
    assert fake_rekognition.operations[:index_call] == ["DetectFaces", "SearchFacesByImage"]


def test_index_faces_keeps_the_largest_face_only_and_filters_quality(services,
                                                                   fake_rekognition):
    """IndexFaces is called with MaxFaces=1 and QualityFilter=AUTO."""
    seen = {}
    real = fake_rekognition.index_faces

    def spy(**params):
        seen.update(params)
        return real(**params)
    fake_rekognition.index_faces = spy
    s3 = services.clients.client("s3")
    bucket = services.settings.photos_bucket
    s3.put_object(Bucket=bucket, Key="k.png",
                  Body=fake_rekognition.describe(png_bytes(), [face("x")]))
    services.faces.index(bucket, "k.png", "S1")
    assert seen["MaxFaces"] == 1 and seen["QualityFilter"] == "AUTO"
    assert seen["ExternalImageId"] == "S1"


def test_a_unicode_name_is_kept_and_never_used_as_the_face_id(register, photo_of,
                                                            fake_rekognition):
    answer = register("x.y_z-1:2", "Zoë 李小龍 O'Brien", photo_of("zoe"))
    assert answer.status_code == 201
    assert answer.json_body["student"]["full_name"] == "Zoë 李小龍 O'Brien"
    assert {f["external_id"] for f in fake_rekognition.faces.values()} == {"x.y_z-1:2"}


BAD_FIELDS = [
    ("student_id", ""), ("student_id", "has space"), ("student_id", "élève"),
    ("student_id", "a/b"), ("student_id", "x" * 65), ("student_id", 12),
    ("full_name", ""), ("full_name", "   "), ("full_name", "n" * 201),
    ("full_name", "two\nlines"), ("full_name", None),
    ("photo_key", "photos/students/0123456789abcdef0123456789abcdef.png"),
    ("photo_key", "videos/x.mp4"), ("photo_key", "photos/uploads/../x.png"),
]


def test_bad_fields_are_400_naming_the_field_and_change_nothing(
        register, photo_of, fake_rekognition, services):
    photo = photo_of("ada")
    for field, value in BAD_FIELDS:
        body = {"student_id": "S1", "full_name": "Ada", "photo_key": photo, field: value}
        answer = register(body["student_id"], body["full_name"], body["photo_key"])
        assert answer.status_code == 400, (field, value)
        assert error_of(answer)["details"]["field"] == field
    assert fake_rekognition.operations == [] and services.students.list_all() == []


def test_a_200_character_name_and_64_character_id_are_fine(register, photo_of):
    answer = register("i" * 64, "é" * 200, photo_of("long"))
    assert answer.status_code == 201


def nothing_left(services, fake_rekognition, bucket_keys, student_id, keep_keys=()):
    assert fake_rekognition.faces_of(student_id) == []
    assert services.students.get(student_id) is None
    assert bucket_keys() == sorted(keep_keys)
    return True


UNUSABLE = [
    ([], "no_face", "No face"),
    ([face("a"), face("b", left=0.0)], "several_faces", "2 faces"),
    ([face("a", width=0.1, height=0.1)], "face_too_small", "closer"),
    ([face("a", sharpness=20.0)], "face_unclear", "blurred"),
    ([face("a", brightness=12.0)], "face_unclear", "dark"),
    ([face("a", brightness=95.0)], "face_unclear", "bright"),
    ([face("a", indexable=False)], "face_unclear", "low sharpness"),
]


def test_photo_without_one_usable_face_is_422_and_leaves_nothing(
        register, photo_of, services, fake_rekognition, bucket_keys):
    for faces, code, words in UNUSABLE:
        answer = register("S1", "Ada", photo_of(faces=faces))
        assert answer.status_code == 422, code
        assert error_of(answer)["code"] == code
        assert words in error_of(answer)["message"]
        assert error_of(answer)["details"]["field"] == "photo_key"
        assert nothing_left(services, fake_rekognition, bucket_keys, "S1")


def test_low_confidence_detections_do_not_count_as_faces(register, photo_of):
    photo = photo_of(faces=[face("a"), face("poster", left=0.0, confidence=60.0)])
    assert register("S1", "Ada", photo).status_code == 201


def test_face_size_is_measured_in_pixels_of_the_image(register, photo_of):
    # The same relative box is too small in a small photo, fine in a large one.
    small_face = [face("a", width=0.2, height=0.2)]
    small = register("S1", "Ada", photo_of(faces=small_face, size=(300, 300)))
    assert error_of(small)["code"] == "face_too_small"
    assert "60 pixels" in error_of(small)["message"]
    big = register("S1", "Ada", photo_of(faces=small_face, size=(1200, 900)))
    assert big.status_code == 201


def test_face_pixels_is_the_same_for_a_rotated_photo():
    box = {"Width": 0.2, "Height": 0.3, "Left": 0, "Top": 0}
    upright = FaceCollection.face_pixels(box, (1000, 600))
    rotated = FaceCollection.face_pixels({**box, "Width": 0.3, "Height": 0.2}, (600, 1000))
    assert upright == pytest.approx(rotated) == pytest.approx((200 * 180) ** 0.5)


BAD_FILES = [
    (b"GIF89a" + b"\0" * 100, "image/png", "not a JPG or PNG file"),
    (b"%PDF-1.7 not a photo", "image/jpeg", "not a JPG or PNG file"),
    (b"", "image/png", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 ** 2), "image/png", "limit is"),
    (b"\xff\xd8\xff\xe0" + b"\0" * 40, "image/jpeg", "damaged"),
    # A PNG cut off inside its IHDR chunk: the size bytes are missing (was a 500).
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x02", "image/png", "damaged"),
]


def test_bad_files_are_422_bad_photo_and_are_deleted(
        register, upload_photo, services, fake_rekognition, bucket_keys):
    for data, content_type, words in BAD_FILES:
        answer = register("S1", "Ada", upload_photo(data, content_type))
        assert answer.status_code == 422, words
        assert error_of(answer)["code"] == "bad_photo"
        assert words in error_of(answer)["message"]
        assert nothing_left(services, fake_rekognition, bucket_keys, "S1")
    assert fake_rekognition.operations == []


def test_a_photo_that_was_never_uploaded_is_422(register, api, admin_headers,
                                               fake_rekognition):
    key = api.http.post("/uploads/photo", headers=admin_headers,
                        body=json.dumps({"content_type": "image/png"})).json_body["photo_key"]
    answer = register("S1", "Ada", key)
    assert answer.status_code == 422 and error_of(answer)["code"] == "bad_photo"
    assert "Upload it again" in error_of(answer)["message"]


def test_a_jpeg_photo_is_measured_too(register, upload_photo, fake_rekognition):
    photo = fake_rekognition.describe(jpeg_bytes(800, 600), [face("a", width=0.15, height=0.15)])
    answer = register("S1", "Ada", upload_photo(photo, "image/jpeg"))
    # sqrt(0.15 * 800 * 0.15 * 600) = 104 px: fine; the size came from the JPEG header.
    assert answer.status_code == 201, answer.body


def test_the_same_face_under_another_id_is_409_naming_that_student(
        register, photo_of, services, fake_rekognition, bucket_keys):
    first = register("S1", "Ada Lovelace", photo_of("ada"))
    kept = first.json_body["student"]["photo_keys"]
    answer = register("S2", "Someone Else", photo_of("ada"))
    assert answer.status_code == 409
    error = error_of(answer)
    assert error["code"] == "face_already_registered"
    assert "Ada Lovelace" in error["message"] and "S1" in error["message"]
    assert error["details"]["student_id"] == "S1"
    assert nothing_left(services, fake_rekognition, bucket_keys, "S2", keep_keys=kept)
    assert len(fake_rekognition.faces_of("S1")) == 1


def test_duplicate_id_is_409_and_leaves_the_first_student_alone(
        register, photo_of, services, fake_rekognition, bucket_keys):
    first = register("S1", "Ada", photo_of("ada")).json_body["student"]
    faces_before = dict(fake_rekognition.faces)
    table = services.clients.table(services.settings.students_table)
    table.scan = lambda **kw: pytest.fail("a registration must never scan the table")
    answer = register("S1", "Bob", photo_of("bob"))
    assert answer.status_code == 409
    assert error_of(answer)["code"] == "duplicate_student_id"
    assert error_of(answer)["details"]["field"] == "student_id"
    assert services.students.get("S1")["full_name"] == "Ada"
    assert fake_rekognition.faces == faces_before
    assert bucket_keys() == first["photo_keys"]  # Bob's upload is gone too


def test_the_conditional_write_decides_a_race_for_one_id(
        register, photo_of, services, fake_rekognition, bucket_keys):
    """Another registration of S1 lands between our checks and our write."""
    rival = {"student_id": "S1", "full_name": "Rival", "photo_keys": [], "face_ids": [],
             "created_at": "2024-01-01T00:00:00+00:00"}
    real_index = fake_rekognition.index_faces

    def index_then_rival_writes(**params):
        answer = real_index(**params)
        services.students.store.create(dict(rival))
        return answer
    fake_rekognition.index_faces = index_then_rival_writes
    answer = register("S1", "Ada", photo_of("ada"))
    assert answer.status_code == 409 and error_of(answer)["code"] == "duplicate_student_id"
    stored = services.students.get("S1")
    assert {k: stored[k] for k in rival} == rival  # untouched (plus its index keys)
    assert fake_rekognition.faces == {} and bucket_keys() == []




@pytest.mark.parametrize("step", list(FAILURES))
def test_a_failure_at_any_step_undoes_every_earlier_step(
        step, register, photo_of, services, fake_rekognition, bucket_keys):
    key = photo_of("ada")
    fail_step(services, fake_rekognition, FAILURES[step])
    answer = register("S1", "Ada", key)
    assert answer.status_code == 500
    assert error_of(answer)["code"] == "internal_error"
    assert "injected" not in answer.body.decode()
    assert nothing_left(services, fake_rekognition, bucket_keys, "S1")
    # And the same request then works: nothing in the way was left behind.
    retry = register("S1", "Ada", photo_of("ada"))
    assert retry.status_code == 201, retry.body


def test_a_failing_undo_step_does_not_stop_the_others(
        register, photo_of, services, fake_rekognition, bucket_keys):
    fake_rekognition.fail["DeleteFaces"] = "InternalServerError"  # undoing the face fails
    fail_once(services.clients.table(services.settings.students_table).meta.client,
              "before-call.dynamodb.PutItem")
    answer = register("S1", "Ada", photo_of("ada"))
    assert answer.status_code == 500
    assert services.students.get("S1") is None
    assert bucket_keys() == []  # photo and upload still removed
    # The face that could not be removed names nobody, so it blocks nothing.
    assert len(fake_rekognition.faces_of("S1")) == 1
    assert register("S2", "Ada", photo_of("ada")).status_code == 201


# -- adding photos ---------------------------------------------------------------
def test_a_second_photo_of_the_same_person_is_added(
        register, add_photo, photo_of, services, fake_rekognition, bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    answer = add_photo("S1", photo_of("ada"))
    assert answer.status_code == 200, answer.body
    student = answer.json_body["student"]
    assert student["photo_count"] == 2 and student["face_count"] == 2
    assert all(k.startswith("photos/students/") for k in student["photo_keys"])
    assert bucket_keys() == sorted(student["photo_keys"])
    assert sorted(services.students.get("S1")["face_ids"]) == sorted(
        fake_rekognition.faces_of("S1"))


def test_a_photo_of_someone_else_is_face_mismatch(
        register, add_photo, photo_of, services, fake_rekognition, bucket_keys):
    kept = register("S1", "Ada", photo_of("ada")).json_body["student"]["photo_keys"]
    register("S2", "Bob", photo_of("bob"))
    before = services.students.get("S1")
    for stranger in ("carol", "bob"):  # unknown, and another registered student
        answer = add_photo("S1", photo_of(stranger))
        assert answer.status_code == 422
        assert error_of(answer)["code"] == "face_mismatch"
        assert "Ada" in error_of(answer)["message"]
    assert services.students.get("S1") == before
    assert len(fake_rekognition.faces_of("S1")) == 1
    assert set(kept) <= set(bucket_keys()) and len(bucket_keys()) == 2


def test_added_photos_follow_the_photo_rules(register, add_photo, photo_of, bucket_keys):
    kept = register("S1", "Ada", photo_of("ada")).json_body["student"]["photo_keys"]
    answer = add_photo("S1", photo_of(faces=[face("ada"), face("bob", left=0)]))
    assert answer.status_code == 422 and error_of(answer)["code"] == "several_faces"
    assert bucket_keys() == kept


def test_at_most_five_photos(register, add_photo, photo_of, services, fake_rekognition,
                             bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    for _ in range(4):
        assert add_photo("S1", photo_of("ada")).status_code == 200
    answer = add_photo("S1", photo_of("ada"))
    assert answer.status_code == 409
    assert error_of(answer)["code"] == "too_many_photos"
    assert "5 photos" in error_of(answer)["message"]
    assert len(services.students.get("S1")["photo_keys"]) == 5
    assert len(fake_rekognition.faces_of("S1")) == 5 and len(bucket_keys()) == 5


def test_the_limit_holds_when_photos_race(register, add_photo, photo_of, services,
                                          fake_rekognition, bucket_keys):
    """The record filled up between our count and our write: the update's condition says no."""
    register("S1", "Ada", photo_of("ada"))
    for _ in range(3):
        add_photo("S1", photo_of("ada"))
    store = services.students.store
    real_index = fake_rekognition.index_faces

    def index_then_rival_adds(**params):
        answer = real_index(**params)
        fake_rekognition.index_faces = real_index
        store.append_photo("S1", "photos/students/rival.png", ["rival-face"], 5)
        return answer
    fake_rekognition.index_faces = index_then_rival_adds
    answer = add_photo("S1", photo_of("ada"))
    assert answer.status_code == 409 and error_of(answer)["code"] == "too_many_photos"
    item = services.students.get("S1")
    assert len(item["photo_keys"]) == 5
    assert len(fake_rekognition.faces_of("S1")) == 4  # our new face was undone
    assert len(bucket_keys()) == 4  # 4 real photos (the rival's key is only a name)


def test_adding_to_a_student_deleted_meanwhile_is_404_and_undone(
        register, add_photo, photo_of, services, fake_rekognition, bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    real_index = fake_rekognition.index_faces

    def index_then_deleted(**params):
        answer = real_index(**params)
        services.students.store.delete("S1")
        return answer
    fake_rekognition.index_faces = index_then_deleted
    answer = add_photo("S1", photo_of("ada"))
    assert answer.status_code == 404
    assert services.students.get("S1") is None  # not recreated by the update
    assert len(fake_rekognition.faces_of("S1")) == 1 and len(bucket_keys()) == 1


@pytest.mark.parametrize("step", list(PHOTO_CHANGE_FAILURES))
def test_a_failed_addition_is_undone(step, register, add_photo, photo_of, services,
                                     fake_rekognition, bucket_keys):
    kept = register("S1", "Ada", photo_of("ada")).json_body["student"]["photo_keys"]
    before = services.students.get("S1")
    fail_step(services, fake_rekognition, PHOTO_CHANGE_FAILURES[step])
    assert add_photo("S1", photo_of("ada")).status_code == 500
    assert services.students.get("S1") == before
    assert len(fake_rekognition.faces_of("S1")) == 1 and bucket_keys() == kept


def test_adding_to_an_unknown_student_is_404(add_photo, photo_of):
    answer = add_photo("nobody", photo_of("ada"))
    assert answer.status_code == 404
    assert error_of(answer)["code"] == "unknown_student"


# -- reading -----------------------------------------------------------------------
def test_one_student_and_404(api, admin_headers, register, photo_of):
    register("S1", "Ada", photo_of("ada"))
    answer = api.http.get("/students/S1", headers=admin_headers)
    assert answer.status_code == 200
    assert set(answer.json_body["student"]) == {
        "student_id", "full_name", "email", "photo_keys", "photo_count", "face_count",
        "created_at", "photo_url", "face_box"}
    for missing in ("S2", "not%20an%20id"):
        gone = api.http.get(f"/students/{missing}", headers=admin_headers)
        assert gone.status_code == 404 and error_of(gone)["code"] == "unknown_student"


@pytest.mark.slow
def test_a_roster_of_1000_is_listed_completely_sorted_with_photo_links(
        api, admin_headers, services):
    """1,000 records of about 1.5 kB, through the name index in pages of 200."""
    table = services.clients.table(services.settings.students_table)
    names = [f"Student {n:04d}" for n in range(1000)]
    items = ({"student_id": f"S{n:04d}", "full_name": names[n],
              "photo_keys": [f"photos/students/{n:032x}.jpg"],
              "face_ids": [f"face-{n}"], "created_at": "2024-01-01T00:00:00+00:00",
              "padding": "x" * 1500} for n in reversed(range(1000)))
    batch_put(table, (dict(item, **index_attributes(item)) for item in items))
    calls = []
    table.meta.client.meta.events.register("before-call.dynamodb.*",
                                           lambda model, **kw: calls.append(model.name))
    students, cursor, pages = [], None, 0
    while True:
        path = "/students?limit=200" + (f"&cursor={cursor}" if cursor else "")
        answer = api.http.get(path, headers=admin_headers)
        assert answer.status_code == 200
        students += answer.json_body["students"]
        cursor, pages = answer.json_body["next_cursor"], pages + 1
        if not cursor:
            break
    assert pages == 5 and "Scan" not in calls
    assert [s["full_name"] for s in students] == names
    assert len({s["student_id"] for s in students}) == 1000
    for student in (students[0], students[-1]):
        assert link_lifetime(student["photo_url"]) == pytest.approx(300, abs=5)
        assert student["photo_keys"][0] in urllib.parse.unquote(student["photo_url"])


def link_lifetime(url):
    """Seconds a presigned S3 link stays valid (SigV4 or SigV2 style)."""
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    if "X-Amz-Expires" in query:
        return int(query["X-Amz-Expires"][0])
    return int(query["Expires"][0]) - time.time()


def test_list_sorts_by_name_ignoring_case_and_accents(api, admin_headers, services):
    for sid, name in [("1", "zoe"), ("2", "Émile"), ("3", "Adam"), ("4", "eve"),
                      ("5", "Emma")]:
        services.students.store.create({"student_id": sid, "full_name": name,
                                        "photo_keys": [], "face_ids": [],
                                        "created_at": "2024-01-01T00:00:00+00:00"})
    names = [s["full_name"] for s in
             api.http.get("/students", headers=admin_headers).json_body["students"]]
    assert names == ["Adam", "Émile", "Emma", "eve", "zoe"]
    assert [s["full_name"] for s in services.students.list_all()] == names


def test_everyone_is_read_a_page_of_the_name_index_at_a_time(services, no_table_scans):
    for n in range(7):
        services.students.store.create({"student_id": f"p{n}", "full_name": f"Person {6 - n}",
                                        "photo_keys": ["photos/students/x.jpg"],
                                        "face_ids": ["f"],
                                        "created_at": "2024-01-01T00:00:00+00:00"})
    pages = list(services.students.store.pages(fields=("student_id", "full_name"),
                                               page_size=3))
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [p["full_name"] for page in pages for p in page] == [f"Person {n}" for n in range(7)]
    assert all(set(p) == {"student_id", "full_name"} for page in pages for p in page)
    assert [p["student_id"] for page in services.students.pages() for p in page] == \
        [f"p{n}" for n in range(6, -1, -1)]


# -- deleting ----------------------------------------------------------------------
def test_admin_deletes_faces_record_and_photos(
        api, admin_headers, register, add_photo, photo_of, services, fake_rekognition,
        bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    add_photo("S1", photo_of("ada"))
    kept = register("S2", "Bob", photo_of("bob")).json_body["student"]["photo_keys"]
    attendance = services.clients.table(services.settings.attendance_table)
    attendance.put_item(Item={"session_id": "sess1", "student_id": "S1",
                              "full_name": "Ada", "status": "PRESENT"})
    answer = api.http.delete("/students/S1", headers=admin_headers)
    assert answer.status_code == 204
    assert fake_rekognition.faces_of("S1") == [] and len(fake_rekognition.faces_of("S2")) == 1
    assert services.students.get("S1") is None
    assert bucket_keys() == kept
    # Past attendance keeps the name it was taken under.
    row = attendance.get_item(Key={"session_id": "sess1", "student_id": "S1"})["Item"]
    assert row["full_name"] == "Ada"
    # The face is free again: the same person can be registered anew.
    assert register("S3", "Ada", photo_of("ada")).status_code == 201
    again = api.http.delete("/students/S1", headers=admin_headers)
    assert again.status_code == 404


def test_teachers_may_not_delete(api, teacher_headers, register, photo_of, services):
    register("S1", "Ada", photo_of("ada"))
    answer = api.http.delete("/students/S1", headers=teacher_headers)
    assert answer.status_code == 403
    assert services.students.get("S1") is not None


def test_a_failed_delete_can_be_retried(api, admin_headers, register, photo_of, services,
                                        fake_rekognition, bucket_keys):
    register("S1", "Ada", photo_of("ada"))
    fail_once(services.clients.client("s3"), "before-call.s3.DeleteObjects")
    assert api.http.delete("/students/S1", headers=admin_headers).status_code == 500
    assert services.students.get("S1") is not None  # the record goes last
    assert api.http.delete("/students/S1", headers=admin_headers).status_code == 204
    assert fake_rekognition.faces_of("S1") == [] and bucket_keys() == []


def test_upload_keys_follow_the_pattern_the_registration_accepts(services):
    import re
    key = services.students.new_upload("image/png")["photo_key"]
    assert re.fullmatch(Students.UPLOAD_KEY_PATTERN, key)


def test_the_indexed_face_box_is_kept_and_answered_for_the_thumbnail(
        api, admin_headers, register, add_photo, photo_of, services):
    # A full-length photo: the face is a small box near the top.
    answer = register("S-box", "Ada", photo_of(faces=[face("ada", left=0.42, top=0.08,
                                                            width=0.16, height=0.12)],
                                                size=(1200, 1800)))
    assert answer.status_code == 201, answer.body
    box = {"left": 0.42, "top": 0.08, "width": 0.16, "height": 0.12}
    assert answer.json_body["student"]["face_box"] == pytest.approx(box)
    listed = api.http.get("/students", headers=admin_headers).json_body["students"]
    assert listed[0]["face_box"] == pytest.approx(box)
    # Another photo keeps its own box; the thumbnail (first photo) keeps its one.
    added = add_photo("S-box", photo_of(faces=[face("ada", left=0.1, top=0.1, width=0.5,
                                                    height=0.6)]))
    assert added.status_code == 200, added.body
    assert added.json_body["student"]["face_box"] == pytest.approx(box)
    stored = services.students.get("S-box")["face_boxes"]
    assert [entry["photo_key"] for entry in stored] == added.json_body["student"]["photo_keys"]
    assert float(stored[1]["width"]) == pytest.approx(0.5)


def test_a_record_from_before_face_boxes_answers_null_and_takes_photos(
        api, admin_headers, register, add_photo, photo_of, services):
    register("S-old", "Ada", photo_of("ada"))
    table = services.clients.table(services.settings.students_table)
    table.update_item(Key={"student_id": "S-old"}, UpdateExpression="REMOVE face_boxes")
    got = api.http.get("/students/S-old", headers=admin_headers).json_body["student"]
    assert got["face_box"] is None
    added = add_photo("S-old", photo_of("ada"))
    assert added.status_code == 200, added.body
    assert added.json_body["student"]["face_box"] is None  # the first photo has none
    assert len(services.students.get("S-old")["face_boxes"]) == 1


def test_a_box_past_the_image_edge_is_clamped():
    from chalicelib.faces import face_box
    assert face_box({"Left": -0.1, "Top": 0.9, "Width": 0.3, "Height": 0.2}) == {
        "left": 0.0, "top": 0.9, "width": 0.2, "height": 0.1}
    assert face_box(None) is None and face_box({"Left": 0.2}) is None
