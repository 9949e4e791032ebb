"""Renaming a person keeps class rosters on the record's name: under concurrent
renames, after a rename cut short between its record write and its roster
writes, and with an enrolment running at the same moment.

Interleavings are forced with a stand-in for the members table that holds one
chosen write until the rival request has finished; the unforced race is also
run a number of times in threads. Rekognition is the in-memory fake.

Writes to the students and members tables are made atomic as DynamoDB's are
(in-process moto checks a condition and writes without a lock).
"""
import json
import threading

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib.students import rosters_behind


@pytest.fixture(autouse=True)
def requests_per_thread(threadsafe_app):
    """Requests run in several threads at once each see their own."""


@pytest.fixture(autouse=True)
def atomic_writes(services, fake_rekognition, monkeypatch):
    lock = threading.Lock()
    students, members = services.students.store._table, services.classes.members._table
    for owner, method in [(table, method) for table in (students, members)
                          for method in ("update_item", "put_item", "delete_item")] + [
                              (members.meta.client, "transact_write_items")]:
        def atomic(real=getattr(owner, method), **kwargs):
            with lock:
                return real(**kwargs)
        monkeypatch.setattr(owner, method, atomic)


class Held:
    """The first write to the members table made by ``thread`` waits (up to 10 s)
    until :meth:`release`; :attr:`reached` is set when it starts waiting."""

    def __init__(self, services, monkeypatch, thread):
        self.reached, self._go = threading.Event(), threading.Event()
        members = services.classes.members._table
        for owner, method in ((members, "update_item"), (members, "put_item"),
                              (members.meta.client, "transact_write_items")):
            def held(real=getattr(owner, method), **kwargs):
                if threading.current_thread() is thread and not self.reached.is_set():
                    self.reached.set()
                    assert self._go.wait(10), "the held write was never released"
                return real(**kwargs)
            monkeypatch.setattr(owner, method, held)

    def release(self):
        self._go.set()


def held_while(services, monkeypatch, call, meanwhile):
    """``call()`` in a thread, its first members-table write held while
    ``meanwhile()`` runs; answers what ``call()`` answered."""
    answers = {}
    thread = threading.Thread(target=lambda: answers.update(answer=call()))
    held = Held(services, monkeypatch, thread)
    thread.start()
    assert held.reached.wait(10)
    try:
        meanwhile()
    finally:
        held.release()
        thread.join(10)
    return answers["answer"]


class Crash(Exception):
    """Stands in for a Lambda timeout: the request stops there, nothing is caught."""


@pytest.fixture
def people(services, register, photo_of, fake_rekognition):
    """S1 "Ada Byron", enrolled in two classes; answers the two class ids."""
    assert register("S1", "Ada Byron", photo_of("ada")).status_code == 201
    class_ids = []
    for name in ("7B", "8C"):
        a_class = services.classes.create(name=name, term=None, teachers=[], schedule=None,
                                          late_threshold_minutes=10)
        services.classes.enrol(services.classes.require(a_class["class_id"]), "S1",
                               "admin@example.org")
        class_ids.append(a_class["class_id"])
    return class_ids


@pytest.fixture
def rename(api, admin_headers):
    def do_rename(full_name, student_id="S1"):
        return api.http.patch(f"/students/{student_id}", headers=admin_headers,
                              body=json.dumps({"full_name": full_name}))
    return do_rename


def roster_names(api, admin_headers, class_id):
    answer = api.http.get(f"/classes/{class_id}/students", headers=admin_headers)
    assert answer.status_code == 200, answer.body
    return [p["full_name"] for p in answer.json_body["students"]]


def assert_rosters_follow_the_record(api, admin_headers, services, class_ids):
    record = services.students.get("S1")
    for class_id in class_ids:
        assert roster_names(api, admin_headers, class_id) == [record["full_name"]], class_id
    members = services.clients.table(services.settings.members_table)
    for class_id in class_ids:
        entry = members.get_item(Key={"class_id": class_id, "member": "student#S1"},
                                 ConsistentRead=True)["Item"]
        assert entry["name_key"].startswith(record["full_name"].casefold())
    return record


# -- two renames ---------------------------------------------------------------------
def test_a_slower_rename_does_not_put_its_older_name_back_on_the_rosters(
        api, admin_headers, services, people, rename, monkeypatch):
    """Record A then record B; roster writes B then A (A's held until B is done)."""
    def meanwhile():
        assert services.students.get("S1")["full_name"] == "Ada Lovelace"
        assert rename("Ada King").status_code == 200
    first = held_while(services, monkeypatch, lambda: rename("Ada Lovelace"), meanwhile)
    assert first.status_code == 200, first.body
    record = assert_rosters_follow_the_record(api, admin_headers, services, people)
    assert record["full_name"] == "Ada King"
    assert not rosters_behind(record)


def test_concurrent_renames_leave_the_rosters_on_the_records_name(
        api, admin_headers, services, people, rename):
    for attempt in range(8):
        names = [f"Ada {attempt} one", f"Ada {attempt} two"]
        barrier, answers = threading.Barrier(2), {}

        def run(name):
            barrier.wait()
            answers[name] = rename(name)
        threads = [threading.Thread(target=run, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert all(answers[n].status_code == 200 for n in names), answers
        record = assert_rosters_follow_the_record(api, admin_headers, services, people)
        assert record["full_name"] in names
        assert not rosters_behind(record)


# -- a rename cut short ----------------------------------------------------------------
def fail_members_write(services, number, error):
    """The ``number``-th roster entry write (UpdateItem on the members table) raises."""
    members = services.classes.members
    real, calls = members._table, []

    class Failing:
        def __getattr__(self, name):
            attribute = getattr(real, name)
            if name != "update_item":
                return attribute

            def update_item(**kwargs):
                calls.append(kwargs)
                if len(calls) == number:
                    raise error
                return attribute(**kwargs)
            return update_item
    members._table = Failing()


def cut_short(services, rename, full_name, number, error):
    """A rename whose ``number``-th roster write raises ``error`` answers 500."""
    real = services.classes.members._table
    fail_members_write(services, number, error)
    try:
        assert rename(full_name).status_code == 500
    finally:
        services.classes.members._table = real


ERRORS = {
    "DynamoDB error": ClientError({"Error": {"Code": "InternalServerError",
                                             "Message": "injected failure"}}, "UpdateItem"),
    "timeout": Crash("the Lambda ran out of time"),
}


@pytest.mark.parametrize("number", [1, 2], ids=["before any roster", "after one roster"])
@pytest.mark.parametrize("error", ERRORS.values(), ids=ERRORS.keys())
@pytest.mark.parametrize("repair", ["get the person", "change the email", "enrol elsewhere"])
def test_a_rename_cut_short_is_finished_by_the_next_request_for_the_person(
        api, admin_headers, services, people, rename, number, error, repair):
    cut_short(services, rename, "Ada Lovelace", number, error)
    assert services.students.get("S1")["full_name"] == "Ada Lovelace"
    assert ["Ada Byron"] in [roster_names(api, admin_headers, c) for c in people]
    assert rosters_behind(services.students.get("S1"))
    if repair == "get the person":
        answer = api.http.get("/students/S1", headers=admin_headers)
    elif repair == "change the email":
        answer = api.http.patch("/students/S1", headers=admin_headers,
                                body=json.dumps({"email": "ada@example.org"}))
    else:
        other = services.classes.create(name="9D", term=None, teachers=[], schedule=None,
                                        late_threshold_minutes=10)
        answer = api.http.post(f"/classes/{other['class_id']}/students", headers=admin_headers,
                               body=json.dumps({"student_id": "S1"}))
        people = people + [other["class_id"]]
    assert answer.status_code in (200, 201), answer.body
    record = assert_rosters_follow_the_record(api, admin_headers, services, people)
    assert record["full_name"] == "Ada Lovelace"
    assert not rosters_behind(record)


@pytest.mark.parametrize("failure", [
    ERRORS["DynamoDB error"],
    EndpointConnectionError(endpoint_url="http://dynamodb"),    # botocore's retries spent
], ids=["DynamoDB error", "connection error"])
def test_a_repair_failing_on_a_read_still_answers_and_the_next_read_repairs(
        api, admin_headers, services, people, rename, failure):
    """Looking at a person never fails because the roster catch-up behind it did."""
    cut_short(services, rename, "Ada Lovelace", 1, ERRORS["DynamoDB error"])
    real = services.classes.members._table
    fail_members_write(services, 1, failure)
    try:
        answer = api.http.get("/students/S1", headers=admin_headers)
    finally:
        services.classes.members._table = real
    assert answer.status_code == 200, answer.body
    assert json.loads(answer.body)["student"]["full_name"] == "Ada Lovelace"
    assert rosters_behind(services.students.get("S1"))
    assert api.http.get("/students/S1", headers=admin_headers).status_code == 200
    assert not rosters_behind(assert_rosters_follow_the_record(api, admin_headers, services,
                                                               people))


def test_repairing_twice_or_beside_a_later_rename_changes_nothing(
        api, admin_headers, services, people, rename):
    """A repair holding an old read of the record never puts its older name back."""
    cut_short(services, rename, "Ada Lovelace", 1, ERRORS["timeout"])
    stale = services.students.get("S1")
    assert rename("Ada King").status_code == 200
    services.classes.catch_up_rosters(stale)
    services.classes.catch_up_rosters(services.students.get("S1"))
    record = assert_rosters_follow_the_record(api, admin_headers, services, people)
    assert record["full_name"] == "Ada King" and not rosters_behind(record)


# -- enrolment at the moment of a rename ------------------------------------------------
def enrol_by_api(api, admin_headers, class_id):
    return api.http.post(f"/classes/{class_id}/students", headers=admin_headers,
                         body=json.dumps({"student_id": "S1"}))


def enrol_by_import(api, admin_headers, class_id):
    return api.http.post(f"/classes/{class_id}/roster/import", headers=admin_headers,
                         body=json.dumps({"text": "S1\n"}))


@pytest.mark.parametrize("enrol", [enrol_by_api, enrol_by_import], ids=["one", "import"])
def test_an_enrolment_racing_a_rename_takes_the_new_name(
        api, admin_headers, services, people, rename, enrol, monkeypatch):
    """The enrolment read the old name; the whole rename runs before its put."""
    new_class = services.classes.create(name="9D", term=None, teachers=[], schedule=None,
                                        late_threshold_minutes=10)
    def meanwhile():
        assert rename("Ada Lovelace").status_code == 200
    enrolled = held_while(services, monkeypatch,
                          lambda: enrol(api, admin_headers, new_class["class_id"]), meanwhile)
    assert enrolled.status_code in (200, 201), enrolled.body
    record = assert_rosters_follow_the_record(api, admin_headers, services,
                                              people + [new_class["class_id"]])
    assert record["full_name"] == "Ada Lovelace"


def test_enrolments_and_renames_in_threads_end_on_the_records_name(
        api, admin_headers, services, people, rename):
    for attempt in range(6):
        new_class = services.classes.create(name=f"X{attempt}", term=None, teachers=[],
                                            schedule=None, late_threshold_minutes=10)
        barrier, answers = threading.Barrier(2), {}

        def run(key, call):
            barrier.wait()
            answers[key] = call()
        threads = [threading.Thread(target=run, args=("rename", lambda: rename(
                       f"Ada {attempt}"))),
                   threading.Thread(target=run, args=("enrol", lambda: enrol_by_api(
                       api, admin_headers, new_class["class_id"])))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert answers["rename"].status_code == 200, answers["rename"].body
        assert answers["enrol"].status_code == 201, answers["enrol"].body
        people = people + [new_class["class_id"]]
        record = assert_rosters_follow_the_record(api, admin_headers, services, people)
        assert record["full_name"] == f"Ada {attempt}"


def test_a_person_registered_again_under_the_same_id_renames_the_old_entries(
        api, admin_headers, services, people, rename, register, photo_of):
    """Roster entries outlive a deleted record; the new record's names are newer."""
    for name in ("Ada Lovelace", "Ada King", "Ada Lovelace-King"):
        assert rename(name).status_code == 200
    assert api.http.delete("/students/S1", headers=admin_headers).status_code == 204
    assert register("S1", "Ada Again", photo_of("ada")).status_code == 201
    assert rename("Ada Renamed").status_code == 200
    record = assert_rosters_follow_the_record(api, admin_headers, services, people)
    assert record["full_name"] == "Ada Renamed" and not rosters_behind(record)


def test_an_enrolment_racing_a_deletion_enrols_nobody(
        api, admin_headers, services, people, monkeypatch):
    new_class = services.classes.create(name="9D", term=None, teachers=[], schedule=None,
                                        late_threshold_minutes=10)
    def meanwhile():
        assert api.http.delete("/students/S1", headers=admin_headers).status_code == 204
    enrolled = held_while(services, monkeypatch,
                          lambda: enrol_by_api(api, admin_headers, new_class["class_id"]),
                          meanwhile)
    assert enrolled.status_code == 404, enrolled.body
    assert roster_names(api, admin_headers, new_class["class_id"]) == []
    assert services.classes.require(new_class["class_id"])["enrolled"] == 0


def test_a_person_registered_again_has_the_old_entries_named_at_the_first_request(
        api, admin_headers, services, people, register, photo_of):
    """Before any rename: the first read of the new record catches the entries
    its earlier life left (they are still enrolments) up to its name."""
    assert api.http.delete("/students/S1", headers=admin_headers).status_code == 204
    assert register("S1", "Ada Again", photo_of("ada")).status_code == 201
    assert rosters_behind(services.students.get("S1"))
    assert api.http.get("/students/S1", headers=admin_headers).status_code == 200
    record = assert_rosters_follow_the_record(api, admin_headers, services, people)
    assert record["full_name"] == "Ada Again" and not rosters_behind(record)


class _Raw:
    """An answer's bytes, as botocore reads a raw response."""

    def __init__(self, data):
        self._data = data

    def stream(self, **_):
        yield self._data


class ConflictsOn:
    """The next ``times`` calls of ``operation`` through ``client`` are answered,
    before they leave botocore, as DynamoDB answers a plain write to an item
    a running TransactWriteItems uses (TransactionConflictException); the
    calls after them go through. :attr:`refused` counts the answered ones,
    :attr:`passed` the others."""

    BODY = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                       "message": "Transaction is ongoing for the item"}).encode()

    def __init__(self, client, operation, times=1):
        self.left, self.refused, self.passed = times, 0, 0
        self._event = f"before-send.dynamodb.{operation}"
        self._events = client.meta.events
        self._events.register_first(self._event, self._send)

    def _send(self, request, **_):
        if self.left <= 0:
            self.passed += 1
            return None
        self.left -= 1
        self.refused += 1
        # botocore calls every before-send handler and keeps the first answer:
        # the in-process moto would still carry out a request it recognises,
        # so the refused one is pointed where moto answers nothing (and is
        # never sent: this answer comes first).
        request.url = "http://127.0.0.1:9/refused"
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0",
                                              "x-amzn-RequestId": "conflict"}, _Raw(self.BODY))

    def remove(self):
        self._events.unregister(self._event, self._send)


def test_an_edit_meeting_a_running_enrolment_transaction_goes_through(
        api, admin_headers, services, people, rename):
    """DynamoDB refuses a plain write to an item a transaction is checking
    (TransactionConflictException, not retried by botocore's own modes): a
    rename during a roster import must wait its turn, not fail."""
    table = services.clients.table(services.settings.students_table)
    assert table is services.students.store._table
    conflicts = ConflictsOn(table.meta.client, "UpdateItem")
    try:
        assert rename("Ada Lovelace").status_code == 200
    finally:
        conflicts.remove()
    assert conflicts.refused == 1 and conflicts.passed >= 1
    assert assert_rosters_follow_the_record(api, admin_headers, services,
                                            people)["full_name"] == "Ada Lovelace"


def test_an_unenrolment_meeting_a_running_enrolment_transaction_goes_through(
        api, admin_headers, services, people):
    """A roster entry is written by an enrolment's transaction: removing it
    at that moment waits its turn too (every DynamoDB client the app makes
    retries the conflict, the members table's as well)."""
    members = services.classes.members._table
    conflicts = ConflictsOn(members.meta.client, "DeleteItem", times=2)
    try:
        answer = api.http.delete(f"/classes/{people[0]}/students/S1", headers=admin_headers)
    finally:
        conflicts.remove()
    assert (conflicts.refused, conflicts.passed) == (2, 1)
    assert answer.status_code in (200, 204), answer.body
    assert "S1" not in roster_names(api, admin_headers, people[0])


def test_a_conflict_that_lasts_is_an_error_not_a_hang(services, people):
    """Four tries again (about 0.4 s of pauses), then the write fails as
    DynamoDB answered: nothing is retried for ever, and a failed condition
    is never retried (it is an answer, not a conflict)."""
    from chalicelib import clients
    members = services.classes.members._table
    conflicts = ConflictsOn(members.meta.client, "DeleteItem", times=100)
    try:
        with pytest.raises(ClientError) as raised:
            services.classes.members.unenrol(people[0], "S1")
    finally:
        conflicts.remove()
    assert raised.value.response["Error"]["Code"] == "TransactionConflictException"
    assert conflicts.refused == 1 + len(clients._CONFLICT_PAUSES) and conflicts.passed == 0
    answer = ({"Error": {"Code": "ConditionalCheckFailedException"}},)
    assert clients.retry_transaction_conflicts(1, response=(None, answer[0])) is None
    assert clients.retry_transaction_conflicts(1, response=None) is None


def test_an_import_stopped_by_a_line_still_counts_what_it_added(
        api, admin_headers, services, register, photo_of, monkeypatch):
    for sid, who in (("S2", "bo"), ("S3", "cy")):
        assert register(sid, f"Person {sid}", photo_of(who)).status_code == 201
    a_class = services.classes.create(name="9E", term=None, teachers=[], schedule=None,
                                      late_threshold_minutes=10)
    real = services.classes.members.enrol

    def stop_at_s3(class_id, student, by):
        if student["student_id"] == "S3":
            raise RuntimeError("the function's time ran out")
        return real(class_id, student, by)
    monkeypatch.setattr(services.classes.members, "enrol", stop_at_s3)
    with pytest.raises(RuntimeError):
        services.classes.import_ids(services.classes.require(a_class["class_id"]),
                                    "S2\nS3\n", None, "admin@example.org")
    assert services.classes.require(a_class["class_id"])["enrolled"] == 1
