"""Students with real photos, against the built-in face engine.

The same HTTP API as ``test_students.py``, but faces are found, compared and
indexed by the real dlib engine behind a Rekognition-compatible endpoint
(the ``face_rekognition`` fixture), reading the photos from moto's S3 just as
Amazon Rekognition reads them from S3. Photos come from /work/shared/faces
(``faces_dir``); variants (blurred, darkened) are made in memory here.
"""
import io
import json

import pytest
from PIL import Image, ImageEnhance, ImageFilter


@pytest.fixture
def engine(services, face_rekognition):
    """This test's services with the real engine as Rekognition and an empty collection."""
    services.clients.register("rekognition", face_rekognition)
    collection = services.settings.face_collection
    existing = face_rekognition.list_collections().get("CollectionIds", [])
    if collection not in existing:
        face_rekognition.create_collection(CollectionId=collection)
    return face_rekognition


@pytest.fixture
def upload(api, admin_headers, services):
    def do_upload(data, content_type="image/jpeg"):
        answer = api.http.post("/uploads/photo", headers=admin_headers,
                               body=json.dumps({"content_type": content_type}))
        key = answer.json_body["photo_key"]
        services.clients.client("s3").put_object(
            Bucket=services.settings.photos_bucket, Key=key, Body=data,
            ContentType=content_type)
        return key
    return do_upload


@pytest.fixture
def photo(faces_dir):
    def read(relative):
        return (faces_dir / relative).read_bytes()
    return read


@pytest.fixture
def collection_faces(engine, services):
    """(ExternalImageId, FaceId) of every face in the collection, all pages."""
    def faces():
        found, token = [], None
        while True:
            kwargs = {"CollectionId": services.settings.face_collection}
            if token:
                kwargs["NextToken"] = token
            page = engine.list_faces(**kwargs)
            found += [(f.get("ExternalImageId"), f["FaceId"]) for f in page["Faces"]]
            token = page.get("NextToken")
            if not token:
                return sorted(found)
    return faces


@pytest.fixture
def bucket_keys(services):
    def keys():
        listing = services.clients.client("s3").list_objects_v2(
            Bucket=services.settings.photos_bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))
    return keys


def post(api, headers, path, body):
    return api.http.post(path, headers=headers, body=json.dumps(body))


def jpeg(image):
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_a_real_person_registered_once_with_more_photos_then_deleted(
        engine, api, admin_headers, upload, photo, services,
        collection_faces, bucket_keys):
    answer = post(api, admin_headers, "/students", {
        "student_id": "obama", "full_name": "Barack Obama",
        "photo_key": upload(photo("people/barack_obama/1.jpg"))})
    assert answer.status_code == 201, answer.body
    [(external_id, face_id)] = collection_faces()
    assert external_id == "obama"
    assert services.students.get("obama")["face_ids"] == [face_id]

    # Another photo of the same man under another id: already registered.
    again = post(api, admin_headers, "/students", {
        "student_id": "B-44", "full_name": "Someone Else",
        "photo_key": upload(photo("people/barack_obama/2.jpg"))})
    assert again.status_code == 409, again.body
    error = again.json_body["error"]
    assert error["code"] == "face_already_registered"
    assert "Barack Obama" in error["message"] and error["details"]["student_id"] == "obama"
    assert services.students.get("B-44") is None

    # His second photo (as an RGBA PNG) is added to his record.
    added = post(api, admin_headers, "/students/obama/photos", {
        "photo_key": upload(photo("variants/barack_obama/obama2_rgba_32bit.png"),
                            "image/png")})
    assert added.status_code == 200, added.body
    assert added.json_body["student"]["photo_count"] == 2
    assert added.json_body["student"]["face_count"] == 2

    # Someone else's photo is not his.
    other = post(api, admin_headers, "/students/obama/photos", {
        "photo_key": upload(photo("people/joe_biden/2.jpg"))})
    assert other.status_code == 422 and other.json_body["error"]["code"] == "face_mismatch"
    assert [e for e, _ in collection_faces()] == ["obama", "obama"]
    assert len(bucket_keys()) == 2

    # A different person registers fine beside him.
    biden = post(api, admin_headers, "/students", {
        "student_id": "biden", "full_name": "Joe Biden",
        "photo_key": upload(photo("people/joe_biden/2.jpg"))})
    assert biden.status_code == 201, biden.body

    listed = api.http.get("/students", headers=admin_headers).json_body["students"]
    assert [s["student_id"] for s in listed] == ["obama", "biden"]

    assert api.http.delete("/students/obama", headers=admin_headers).status_code == 204
    assert [e for e, _ in collection_faces()] == ["biden"]
    assert bucket_keys() == listed[1]["photo_keys"]


def test_real_photos_without_one_usable_face_are_refused_and_leave_nothing(
        engine, api, admin_headers, upload, photo, collection_faces, bucket_keys):
    portrait = Image.open(io.BytesIO(photo("people/barack_obama/1.jpg")))
    cases = [
        ("group/two_people.jpg", photo("group/two_people.jpg"), "several_faces"),
        ("obama-240p.jpg: a 62 px face", photo("variants/barack_obama/obama-240p.jpg"),
         "face_too_small"),
        ("blurred", jpeg(portrait.filter(ImageFilter.GaussianBlur(12))), "face_unclear"),
        ("dark", jpeg(ImageEnhance.Brightness(portrait).enhance(0.12)), "face_unclear"),
        ("no face: the top strip of the photo", jpeg(portrait.crop((0, 0, 910, 120))),
         "no_face"),
    ]
    for label, data, code in cases:
        answer = post(api, admin_headers, "/students", {
            "student_id": "S1", "full_name": "Test", "photo_key": upload(data)})
        assert answer.status_code == 422, (label, answer.body)
        assert answer.json_body["error"]["code"] == code, label
        assert collection_faces() == [] and bucket_keys() == [], label
