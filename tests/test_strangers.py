"""Unrecognised people grouped by face: entries the person index split, merged once.

The rules are tested pure (:func:`groups_of`, :func:`merge_plan`); the calls
and the session's update with the model-checked fake collection
(tests/fakes/face_collection.py: who is in each crop is what the test says,
and every request and answer is checked against botocore's model); the whole
hand-off through ``cut_evidence``, with the fake as the face service. The same
grouping on the built-in engine and real photos is in
tests/engine/test_strangers_engine.py.
"""
import json
import logging
import pathlib
import re

import pytest

from chalicelib import strangers
from chalicelib.strangers import (FaceGrouping, StrangerMerges, groups_of, merge_plan,
                                  mergeable)
from tests.fakes.drivers import add_students, session_detail
from tests.fakes.evidence import SearchAndFaces, complete, deliver_evidence
from tests.fakes.face_collection import FakeFaceCollection, face, png_bytes
from tests.fakes.video_search import MP4_BYTES, sighting

LEFT, MIDDLE, RIGHT = (0.05, 0.1, 0.2, 0.3), (0.4, 0.1, 0.2, 0.3), (0.7, 0.1, 0.25, 0.35)


# -- the rules (pure) ------------------------------------------------------------------
def both_ways(*pairs):
    """Matches as SearchFaces reports them: (a, b, similarity) each way."""
    found = {}
    for a, b, similarity in pairs:
        found[(a, b)] = found[(b, a)] = similarity
    return found


def test_one_face_is_one_group_and_different_faces_stay_apart():
    assert groups_of([1, 2, 3], both_ways((1, 3, 99.0)), {}) == [(1, 3)]
    assert groups_of([1, 2, 3], {}, {}) == []


def test_a_match_found_one_way_only_merges_nothing():
    assert groups_of([1, 2], {(1, 2): 95.0}, {}) == []


def test_no_chains_every_pair_of_a_group_matched():
    # 1~2 and 2~3, but 1 and 3 are not alike: the closer pair only.
    assert groups_of([1, 2, 3], both_ways((1, 2, 97.0), (2, 3, 92.0)), {}) == [(1, 2)]
    assert groups_of([1, 2, 3], both_ways((1, 2, 97.0), (2, 3, 92.0), (1, 3, 90.0)),
                     {}) == [(1, 2, 3)]


def test_two_faces_seen_at_the_same_moment_are_two_people():
    seen = {1: [0, 100], 2: [100, 200], 3: [500]}
    assert groups_of([1, 2, 3], both_ways((1, 2, 99.0)), seen) == []
    # 1 and 3 merge first (more alike); 2 was beside 1, so it stays apart.
    assert groups_of([1, 2, 3], both_ways((1, 3, 99.0), (2, 3, 95.0), (1, 2, 95.0)),
                     seen) == [(1, 3)]


def test_only_entries_with_someone_never_seen_beside_them_may_merge():
    seen = {1: [0, 200], 2: [0, 400], 3: [200, 400], 4: [600], 5: []}
    # 1, 2 and 3 each share a moment with the two others; 4 and 5 were seen
    # at no moment of theirs, and so could join any of them
    assert mergeable([1, 2, 3, 4, 5], seen) == [1, 2, 3, 4, 5]
    assert mergeable([1, 2, 3], seen) == []
    assert mergeable([1, 4], seen) == [1, 4]
    assert mergeable([4], seen) == []


def test_strangers_all_seen_at_once_cost_no_face_calls(api, admin_headers, services,
                                                      video_search, faces):
    """Two people sitting side by side the whole time can never be one person:
    their crops are not indexed or searched at all."""
    persons = ([sighting(t, 0, box=LEFT) for t in (0, 200, 400)]
               + [sighting(t, 1, box=RIGHT) for t in (0, 200, 400)])
    session_id, _ = complete(api, admin_headers, services, video_search, persons, MP4_BYTES)
    item = services.session_store.get(session_id)
    assert grouping(services, faces).group(item, crops_of(faces, "x", "x")) == 0
    assert faces.called("CreateCollection") == [] and faces.called("IndexFaces") == []
    session = session_detail(api, admin_headers, session_id)["session"]
    assert session["counts"]["unrecognised"] == 2


def test_a_group_is_at_most_max_group_entries():
    numbers = list(range(1, strangers.MAX_GROUP + 3))
    everyone = both_ways(*[(a, b, 99.0) for a in numbers for b in numbers if a < b])
    assert sorted(len(g) for g in groups_of(numbers, everyone, {})) == [2, strangers.MAX_GROUP]


def entry(first, last, seen_for, box, seen_ms, **extra):
    return dict({"first_seen_ms": first, "last_seen_ms": last, "seen_for_ms": seen_for,
                 "seen_ms": seen_ms, "moment": {"ms": first, "box": list(box)},
                 "registered_as": None, "from_student": None}, **extra)


def test_the_largest_face_is_kept_with_the_groups_times():
    entries = [entry(0, 2000, 2000, LEFT, [0, 1000, 2000]),
               entry(100, 900, 800, MIDDLE, [100, 900]),
               entry(5000, 6000, 1000, RIGHT, [5000, 6000])]
    assert merge_plan(entries, [(1, 3)]) == [
        (3, {"first_seen_ms": 0, "last_seen_ms": 6000, "seen_for_ms": 3000,
             "seen_ms": [0, 1000, 2000, 5000, 6000], "merged_from": [1]}, [1])]
    merged = strangers.merged_entries(entries, [(1, 3)])
    assert merged[0]["merged_into"] == 3 and "merged_into" not in merged[2]


def test_entries_a_person_touched_are_never_merged():
    entries = [entry(0, 100, 100, LEFT, [0, 100], registered_as="ada"),
               entry(200, 300, 100, MIDDLE, [200, 300]),
               entry(400, 500, 100, RIGHT, [400, 500], from_student="bob"),
               entry(600, 700, 100, RIGHT, [600, 700])]
    assert strangers.candidates(entries) == [2, 4]
    assert merge_plan(entries, [(1, 2)]) == []


# -- the calls and the session's update (fake collection, moto DynamoDB) --------------
@pytest.fixture
def faces(services, video_search):
    """The fake collection beside the fake face search, as the app's one client."""
    fake = FakeFaceCollection(services.clients.client("s3"))
    services.clients.register("rekognition", SearchAndFaces(video_search, fake))
    return fake


def three_strangers(api, headers, services, video_search):
    """A completed session with three people nobody matched, at three places:
    1 (left) and 2 (middle) at once, 3 (right, the largest face) after them."""
    persons = ([sighting(t, 0, box=LEFT) for t in (0, 200, 400)]
               + [sighting(t, 1, box=MIDDLE) for t in (0, 200, 400)]
               + [sighting(t, 2, box=RIGHT) for t in (600, 800)])
    session_id, job_id = complete(api, headers, services, video_search, persons, MP4_BYTES)
    return session_id, job_id


def grouping(services, fake, **extra):
    return FaceGrouping(rekognition=fake, face_collection=services.settings.face_collection,
                        threshold=services.settings.match_threshold,
                        merges=StrangerMerges(services.clients.table(
                            services.settings.sessions_table)),
                        logger=services.logger, **extra)


def crops_of(fake, *people):
    """Crops numbered from 1, each showing ``people[n - 1]``."""
    return {n: fake.describe(png_bytes(160, 160), [face(person)])
            for n, person in enumerate(people, start=1)}


def test_two_entries_of_one_stranger_merge_and_another_stranger_stays(
        api, admin_headers, services, video_search, faces):
    session_id, job_id = three_strangers(api, admin_headers, services, video_search)
    assert session_detail(api, admin_headers, session_id)["session"]["counts"][
        "unrecognised"] == 3
    faces.resemblance[frozenset(("x", "y"))] = 70.0  # alike, but under the bar
    item = services.session_store.get(session_id)

    assert grouping(services, faces).group(item, crops_of(faces, "x", "y", "x")) == 1

    session = session_detail(api, admin_headers, session_id)["session"]
    assert session["counts"]["unrecognised"] == 2
    assert [s["number"] for s in session["strangers"]] == [2, 3]
    kept = session["strangers"][1]
    assert kept["moment"]["box"] == list(RIGHT)  # the larger face
    assert (kept["first_seen_ms"], kept["last_seen_ms"]) == (0, 800)
    assert kept["seen_for_ms"] == 400 + 200 and kept["merged_from"] == [1]
    assert kept["seen_ms"] == [0, 200, 400, 600, 800]
    # The scratch collection is gone, with its faces; the app's was never touched.
    created = [p["CollectionId"] for p in faces.called("CreateCollection")]
    assert len(created) == 1 and created[0].startswith(
        f"{services.settings.face_collection}-strangers-{session_id}-")
    assert faces.collections == set() and faces.faces == {}
    assert {p["CollectionId"] for p in faces.called("IndexFaces")} == set(created)
    assert all(p["FaceMatchThreshold"] == services.settings.match_threshold
               for p in faces.called("SearchFaces"))


def test_grouping_twice_changes_nothing(api, admin_headers, services, video_search, faces):
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    item = services.session_store.get(session_id)
    crops = crops_of(faces, "x", "y", "x")
    assert grouping(services, faces).group(item, crops) == 1
    after = services.session_store.get(session_id)
    # The same message again, with the session as it was read before (a redelivery
    # racing the first), and as it is now: nothing more is merged or counted.
    faces.resemblance[frozenset(("x", "y"))] = 99.0
    assert grouping(services, faces).group(item, crops) == 0
    assert grouping(services, faces).group(after, crops) == 0
    assert services.session_store.get(session_id) == after


def test_a_new_face_search_of_the_session_is_grouped_again(api, admin_headers, services,
                                                           video_search, faces):
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    crops = crops_of(faces, "x", "y", "x")
    first = services.session_store.get(session_id)
    assert grouping(services, faces).group(first, crops) == 1
    # A retry (or another upload) completes with a new job and fresh entries.
    table = services.clients.table(services.settings.sessions_table)
    table.update_item(Key={"session_id": session_id},
                      UpdateExpression="SET job_id = :job, strangers = :entries, "
                                       "counts.unrecognised = :three",
                      ExpressionAttributeValues={
                          ":job": "another-job", ":three": 3,
                          ":entries": first["strangers"]})
    again = services.session_store.get(session_id)
    assert grouping(services, faces).group(again, crops) == 1
    assert session_detail(api, admin_headers, session_id)["session"]["counts"][
        "unrecognised"] == 2


def test_someone_registered_meanwhile_is_not_merged(api, admin_headers, services,
                                                     video_search, faces):
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    item = services.session_store.get(session_id)
    services.session_store.mark_registered(session_id, 1, "newcomer")  # after the read
    assert grouping(services, faces).group(item, crops_of(faces, "x", "y", "x")) == 0
    session = session_detail(api, admin_headers, session_id)["session"]
    assert [s["number"] for s in session["strangers"]] == [1, 2, 3]
    assert session["strangers"][0]["registered_as"] == "newcomer"


def test_different_strangers_at_different_times_stay_apart(api, admin_headers, services,
                                                           video_search, faces):
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    item = services.session_store.get(session_id)
    assert grouping(services, faces).group(item, crops_of(faces, "x", "y", "z")) == 0
    session = session_detail(api, admin_headers, session_id)["session"]
    assert len(session["strangers"]) == 3 and session["counts"]["unrecognised"] == 3


def test_a_face_at_the_edge_of_a_crop_is_someone_beside_them(api, admin_headers, services,
                                                             video_search, faces):
    """Crop 3 shows x only at its edge (the person sitting beside): not the same entry."""
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    crops = crops_of(faces, "x", "y")
    crops[3] = faces.describe(png_bytes(160, 160), [face("x", left=0.0, top=0.3, width=0.25,
                                                         height=0.3)])
    item = services.session_store.get(session_id)
    assert grouping(services, faces).group(item, crops) == 0
    assert len(session_detail(api, admin_headers, session_id)["session"]["strangers"]) == 3


# -- through cut_evidence --------------------------------------------------------------
def recognising(fake, *people):
    """The fake sees ``people`` in the crops in the order they are indexed (by number)."""
    order = iter(people)
    fake.recognise = lambda data: [face(next(order))]


def unsigned(session):
    """The session without its crop links (signed afresh on every read)."""
    return dict(session, strangers=[{k: v for k, v in s.items() if k != "crop"}
                                    for s in session["strangers"]])


def test_the_evidence_function_merges_and_the_page_reads_one_entry_per_person(
        api, admin_headers, services, video_search, faces):
    session_id, job_id = three_strangers(api, admin_headers, services, video_search)
    recognising(faces, "x", "y", "x")
    deliver_evidence(api, services)
    session = session_detail(api, admin_headers, session_id)["session"]
    assert session["evidence_status"] == "ready"
    assert [s["number"] for s in session["strangers"]] == [2, 3]
    assert session["counts"]["unrecognised"] == 2
    assert all(s["crop"] for s in session["strangers"])
    # Registering by the merged number is refused; by the kept one it is the person.
    refused = api.http.post(f"/sessions/{session_id}/unrecognised/1/register",
                            headers=admin_headers,
                            body='{"student_id": "x1", "full_name": "X One"}')
    assert refused.status_code == 404
    # A repeated message changes nothing (and asks the face service nothing).
    asked = len(faces.requests)
    assert services.evidence.cut(session_id, job_id) == "ready"
    assert unsigned(session_detail(api, admin_headers, session_id)["session"]) == \
        unsigned(session)
    assert len(faces.requests) == asked


def test_a_failed_grouping_leaves_the_per_index_entries(api, admin_headers, services,
                                                        video_search, faces, caplog):
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    recognising(faces, "x", "y", "x")
    faces.fail["SearchFaces"] = "ThrottlingException"
    with caplog.at_level(logging.ERROR, logger="rollcall"):
        deliver_evidence(api, services)
    session = session_detail(api, admin_headers, session_id)["session"]
    assert session["status"] == "COMPLETED" and session["evidence_status"] == "ready"
    assert [s["number"] for s in session["strangers"]] == [1, 2, 3]
    assert session["counts"]["unrecognised"] == 3
    assert all(s["crop"] for s in session["strangers"])
    assert any(r.getMessage() == "unrecognised people could not be grouped by face"
               for r in caplog.records)
    assert faces.collections == set()  # the scratch collection was deleted all the same


# -- races with the other writers of the session ----------------------------------------
class WritesFirst:
    """The sessions table, with ``before()`` run once just before the first update
    of the session's ``counts`` (another writer landing between its read and write)."""

    def __init__(self, table, before):
        self._table, self._before = table, before

    def __getattr__(self, name):
        return getattr(self._table, name)

    def update_item(self, **request):
        if self._before and "counts" in request.get("UpdateExpression", ""):
            before, self._before = self._before, None
            before()
        return self._table.update_item(**request)


def test_a_correction_racing_a_merge_keeps_the_merged_count(
        api, admin_headers, services, video_search, faces):
    """The recount after a correction read the session before the merge and
    writes after it: the count stays the merged one."""
    add_students(services, [("ada1", "Ada One")])
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    item = services.session_store.get(session_id)
    crops = crops_of(faces, "x", "y", "x")
    merged = []
    store = services.sessions.store
    store._table = WritesFirst(store._table, lambda: merged.append(
        grouping(services, faces).group(item, crops)))

    response = api.http.patch(f"/sessions/{session_id}/attendance/ada1", headers=admin_headers,
                              body=json.dumps({"status": "PRESENT", "reason": "seen late"}))

    assert response.status_code == 200, response.body
    assert merged == [1]
    counts = session_detail(api, admin_headers, session_id)["session"]["counts"]
    assert counts["unrecognised"] == 2
    assert counts["present"] == 1 and counts["absent"] == 0


class SecondRunMidway:
    """The fake face service, with another run of the grouping done in full the
    first time this one searches (two deliveries of one message at once)."""

    def __init__(self, fake, other_run):
        self._fake, self._other_run = fake, other_run

    def __getattr__(self, name):
        return getattr(self._fake, name)

    def search_faces(self, **params):
        if self._other_run:
            other_run, self._other_run = self._other_run, None
            other_run()
        return self._fake.search_faces(**params)


def test_two_deliveries_at_once_each_search_their_own_collection(
        api, admin_headers, services, video_search, faces):
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    item = services.session_store.get(session_id)
    crops = crops_of(faces, "x", "y", "x")
    second = []
    first = grouping(services, SecondRunMidway(faces, lambda: second.append(
        grouping(services, faces).group(item, crops))))

    assert first.group(item, crops) == 0  # the second run merged first
    assert second == [1]
    session = session_detail(api, admin_headers, session_id)["session"]
    assert [s["number"] for s in session["strangers"]] == [2, 3]
    assert session["counts"]["unrecognised"] == 2
    created = [p["CollectionId"] for p in faces.called("CreateCollection")]
    assert len(set(created)) == 2 and faces.collections == set()
    prefix = f"{services.settings.face_collection}-strangers-{session_id}-"
    for name in created:  # Rekognition's CollectionId, and the IAM policy's pattern
        assert name.startswith(prefix) and len(name) <= 255
        assert re.fullmatch(r"[a-zA-Z0-9_.\-]+", name)
    assert "strangers_scratch" not in services.session_store.get(session_id)


def test_a_collection_left_by_a_dead_run_is_deleted_by_a_later_run(
        api, admin_headers, services, video_search, faces):
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    crops = crops_of(faces, "x", "y", "x")
    now = [1_800_000_000.0]
    # A run that ends without deleting its collection (as one stopped by its timeout).
    faces.fail["SearchFaces"] = "ThrottlingException"
    faces.fail["DeleteCollection"] = "ThrottlingException"
    with pytest.raises(Exception):
        grouping(services, faces, clock=lambda: now[0]).group(
            services.session_store.get(session_id), crops)
    left = set(faces.collections)
    assert len(left) == 1
    # A run while the first one may still be running leaves its collection alone...
    now[0] += strangers.RUN_SECONDS - 1
    faces.resemblance[frozenset(("x", "y"))] = 0.0
    crops_apart = crops_of(faces, "x", "y", "z")
    assert grouping(services, faces, clock=lambda: now[0]).group(
        services.session_store.get(session_id), crops_apart) == 0
    assert faces.collections == left
    # ...one after it certainly ended deletes it, and groups as usual.
    table = services.clients.table(services.settings.sessions_table)
    table.update_item(Key={"session_id": session_id}, UpdateExpression="REMOVE strangers_grouped")
    now[0] += 1
    assert grouping(services, faces, clock=lambda: now[0]).group(
        services.session_store.get(session_id), crops) == 1
    assert faces.collections == set()
    assert "strangers_scratch" not in services.session_store.get(session_id)


def test_the_evidence_function_ends_before_its_scratch_collections_count_as_left():
    config = json.loads((pathlib.Path(__file__).resolve().parents[1] / ".chalice"
                         / "config.json").read_text())
    timeouts = [stage.get("lambda_functions", {}).get("cut_evidence", {}).get(
        "lambda_timeout", stage.get("lambda_timeout", config.get("lambda_timeout", 60)))
        for stage in config["stages"].values()]
    assert timeouts and max(timeouts) <= strangers.RUN_SECONDS


def test_a_repeated_message_deletes_a_dead_runs_collection_too(
        api, admin_headers, services, video_search, faces):
    """Often the only later run a session gets is the same message again (the
    grouping already done): it must still clear what a dead run left."""
    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    crops = crops_of(faces, "x", "y", "x")
    now = [1_800_000_000.0]
    assert grouping(services, faces, clock=lambda: now[0]).group(
        services.session_store.get(session_id), crops) == 1
    assert faces.collections == set()
    # a dead run's leftover, noted on the session as a run notes its own
    left = strangers.scratch_collection_id(services.settings.face_collection, session_id,
                                           now[0], "dead")
    faces.collections.add(left)
    assert services.session_store.get(session_id) is not None
    grouping(services, faces, clock=lambda: now[0]).merges.note_scratch(session_id, left)
    now[0] += strangers.RUN_SECONDS
    assert grouping(services, faces, clock=lambda: now[0]).group(
        services.session_store.get(session_id), crops) == 0     # already grouped
    assert left not in faces.collections
    assert "strangers_scratch" not in services.session_store.get(session_id)


def test_two_corrections_at_once_keep_both_in_the_counts(
        api, admin_headers, services, video_search, faces):
    """The first correction's recount read the rows before the second's row was
    written, and writes after the second recount: the counts keep both."""
    add_students(services, [("ada1", "Ada One"), ("ada2", "Ada Two")])
    session_id, _ = three_strangers(api, admin_headers, services, video_search)

    def correct(student_id):
        return api.http.patch(f"/sessions/{session_id}/attendance/{student_id}",
                              headers=admin_headers,
                              body=json.dumps({"status": "PRESENT", "reason": "seen late"}))
    second = []
    store = services.sessions.store
    store._table = WritesFirst(store._table, lambda: second.append(correct("ada2")))

    assert correct("ada1").status_code == 200
    assert second and second[0].status_code == 200, second
    counts = session_detail(api, admin_headers, session_id)["session"]["counts"]
    assert counts["present"] == 2 and counts["absent"] == 0, counts


def test_deleting_a_session_deletes_the_scratch_collections_noted_on_it(
        api, admin_headers, services, video_search, faces):
    """Nobody runs for a deleted session again: what its dead runs left (and a
    running run's collection) goes with it; another session's stay."""
    crops = crops_of(faces, "x", "y", "x")

    def dead_run(session_id):
        """A grouping run that dies with its scratch collection made: its name."""
        before = set(faces.collections)
        faces.fail["SearchFaces"] = "ThrottlingException"
        faces.fail["DeleteCollection"] = "ThrottlingException"
        with pytest.raises(Exception):
            grouping(services, faces).group(services.session_store.get(session_id), crops)
        faces.fail.pop("DeleteCollection", None)
        faces.fail.pop("SearchFaces", None)
        made = set(faces.collections) - before
        assert len(made) == 1
        assert made <= set(services.session_store.get(session_id)["strangers_scratch"])
        return made

    session_id, _ = three_strangers(api, admin_headers, services, video_search)
    left = dead_run(session_id)
    other = three_strangers(api, admin_headers, services, video_search)[0]
    kept = dead_run(other)

    answer = api.http.delete(f"/sessions/{session_id}", headers=admin_headers)
    assert answer.status_code in (200, 204), answer.body
    assert faces.collections == kept
    assert services.session_store.get(session_id) is None
    assert services.session_store.get(other) is not None
    assert [p["CollectionId"] for p in faces.called("DeleteCollection")][-1:] == list(left)
