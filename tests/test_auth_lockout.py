"""Sign-in under a burst of guesses and against account enumeration.

Concurrent requests (threads) through chalice.test.Client against moto. The
app's ``current_request`` is made per thread, as ``chalice local`` does, and
the users table's writes are made atomic as DynamoDB's are (in-process moto
checks a condition and writes without a lock; the local stack's moto server
applies writes one at a time).
"""
import json
import threading

import pytest

from chalicelib import passwords
from chalicelib.users import MAX_FAILURES

JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def atomic_writes(services, monkeypatch):
    table = services.users._table
    real = table.update_item
    lock = threading.Lock()

    def update_item(**kwargs):
        with lock:
            return real(**kwargs)
    monkeypatch.setattr(table, "update_item", update_item)


@pytest.fixture
def checked(monkeypatch):
    """The password hashes each sign-in was checked against (dummy ones for unknown)."""
    seen = []
    real = passwords.check_password_hash
    lock = threading.Lock()

    def counting(password_hash, password):
        with lock:
            seen.append(password_hash)
        return real(password_hash, password)
    monkeypatch.setattr(passwords, "check_password_hash", counting)
    return seen


def _burst(api, email, guesses):
    answers = [None] * len(guesses)
    start = threading.Barrier(len(guesses), timeout=60)

    def attempt(n):
        start.wait()
        answers[n] = api.http.post("/auth/login", headers=JSON, body=json.dumps(
            {"email": email, "password": guesses[n]}))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(guesses))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return answers


def test_thirty_concurrent_wrong_passwords_check_at_most_five(
        threadsafe_app, api, make_user, services, checked):
    user = make_user("t@example.org", "teacher password 1")
    real_hash = services.users.get(user["email"])["password_hash"]
    answers = _burst(api, user["email"], [f"guess number {n}" for n in range(30)])
    assert [a.status_code for a in answers] == [401] * 30
    assert checked.count(real_hash) == MAX_FAILURES
    # Locked now: the right password is refused without being checked.
    before = checked.count(real_hash)
    refused = api.http.post("/auth/login", headers=JSON, body=json.dumps(
        {"email": user["email"], "password": user["password"]}))
    assert refused.status_code == 401
    assert checked.count(real_hash) == before


def test_the_right_password_in_a_burst_of_wrong_ones_gets_no_extra_guesses(
        threadsafe_app, api, make_user, services, checked):
    user = make_user("t@example.org", "teacher password 1")
    real_hash = services.users.get(user["email"])["password_hash"]
    guesses = [f"guess number {n}" for n in range(29)] + [user["password"]]
    answers = _burst(api, user["email"], guesses)
    right = answers[-1].status_code
    assert right in (200, 401)
    assert {a.status_code for a in answers[:-1]} == {401}
    # The right password is only of use within the first five slots; a success
    # frees them (the account's owner signed in), so at most five more follow.
    assert checked.count(real_hash) <= (2 * MAX_FAILURES if right == 200 else MAX_FAILURES)


def test_unknown_known_and_locked_accounts_answer_alike_with_the_same_work(
        threadsafe_app, api, make_user, services, checked):
    make_user("t@example.org", "teacher password 1")
    calls = []

    answers = {}
    for label, email, password in [("wrong", "t@example.org", "wrong password 1"),
                                   ("unknown", "nobody@example.org", "wrong password 1")]:
        del checked[:]
        answers[label] = api.http.post("/auth/login", headers=JSON, body=json.dumps(
            {"email": email, "password": password}))
        calls.append(len(checked))
    for _ in range(MAX_FAILURES):
        api.http.post("/auth/login", headers=JSON, body=json.dumps(
            {"email": "t@example.org", "password": "wrong password 1"}))
    del checked[:]
    answers["locked"] = api.http.post("/auth/login", headers=JSON, body=json.dumps(
        {"email": "t@example.org", "password": "teacher password 1"}))
    calls.append(len(checked))
    assert {a.status_code for a in answers.values()} == {401}
    assert answers["wrong"].json_body == answers["unknown"].json_body \
        == answers["locked"].json_body
    assert answers["wrong"].json_body["error"]["code"] == "invalid_credentials"
    # One scrypt check each: the answer's time does not tell them apart.
    assert calls == [1, 1, 1]
