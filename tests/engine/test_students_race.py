"""Registration rules that must hold under concurrency and odd input.

* the same face sent under several IDs at the same moment ends registered
  once (the oldest registration is kept, the others are rolled back, 409);
* a student ID made only of dots is refused.

Requests go through chalice.test.Client against moto and the built-in face
engine (real photos from /work/shared/faces).
"""
import json
import threading

import pytest

pytestmark = pytest.mark.engine



class _Together:
    """The Rekognition client, but IndexFaces waits until every racer got there:
    all the checks before indexing run before any face is indexed (the race)."""

    def __init__(self, client, racers):
        self._client = client
        self._barrier = threading.Barrier(racers, timeout=60)

    def index_faces(self, **kwargs):
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return self._client.index_faces(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize("racers", [2, 5])
def test_the_same_face_sent_under_several_ids_at_once_is_registered_once(
        racers, threadsafe_app, api, admin_headers, services, engine, upload_photo, shared_photo,
        collection_faces, bucket_keys):
    services.clients.register("rekognition", _Together(engine, racers))
    keys = [upload_photo(shared_photo(f"people/barack_obama/{n % 4 + 1}.jpg"))
            for n in range(racers)]
    answers = [None] * racers

    def register(n):
        answers[n] = api.http.post("/students", headers=admin_headers, body=json.dumps({
            "student_id": f"S-{n}", "full_name": f"Racer {n}", "photo_key": keys[n]}))

    threads = [threading.Thread(target=register, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * (racers - 1), [a.body for a in answers]
    winner = next(a.json_body["student"] for a in answers if a.status_code == 201)
    for answer in answers:
        if answer.status_code == 409:
            error = answer.json_body["error"]
            assert error["code"] == "face_already_registered"
            # An older registration of the same face (itself maybe undone by an
            # even older one that was written later).
            assert error["details"]["student_id"] in {f"S-{n}" for n in range(racers)}
    # Only the kept registration is left: its record, its face, its photo.
    listed = api.http.get("/students", headers=admin_headers).json_body["students"]
    assert [s["student_id"] for s in listed] == [winner["student_id"]]
    assert [external for external, _ in collection_faces()] == [winner["student_id"]]
    assert bucket_keys() == winner["photo_keys"]


@pytest.mark.parametrize("student_id", [".", "..", "...", "....."])
def test_ids_made_only_of_dots_are_refused(student_id, api, admin_headers):
    answer = api.http.post("/students", headers=admin_headers, body=json.dumps({
        "student_id": student_id, "full_name": "Dot", "photo_key":
        "photos/uploads/" + "0" * 32 + ".jpg"}))
    assert answer.status_code == 400, answer.body
    assert answer.json_body["error"]["details"]["field"] == "student_id"
    # Still looked up never, and a dot inside an id stays allowed.
    assert api.http.get(f"/students/{student_id}", headers=admin_headers).status_code in (
        404, 400)


def test_dots_inside_an_id_are_still_allowed():
    from chalicelib.students import is_student_id
    assert is_student_id("a.b") and is_student_id(".a") and is_student_id("a..")
    assert not is_student_id("..") and not is_student_id(".")
