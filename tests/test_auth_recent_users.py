"""The user records the token check reuses for a moment (chalicelib.auth.RecentUsers):
a change made through the app ends tokens at once, one made elsewhere within
IDENTITY_MAX_AGE_S, and the memory stays bounded."""
import json
import threading

from chalicelib.auth import (IDENTITY_MAX_AGE_S, ForgettingUserStore, RecentUsers)


def _fake_clock(services):
    now = [1000.0]
    services.users.recent._clock = lambda: now[0]
    return now


def _me(api, headers):
    return api.http.get("/auth/me", headers=headers).status_code


def test_disabling_through_the_api_ends_the_token_at_once(api, make_user, login, admin_headers,
                                                          services):
    headers = login(make_user("t@example.org", "teacher password 1"))
    _fake_clock(services)  # time stands still: only forgetting can refuse the token
    assert _me(api, headers) == 200
    assert _me(api, headers) == 200
    answer = api.http.patch("/users/t@example.org", headers=admin_headers,
                            body=json.dumps({"disabled": True}))
    assert answer.status_code == 200
    assert _me(api, headers) == 401


def test_a_reset_or_own_password_change_ends_old_tokens_at_once(api, make_user, login,
                                                                admin_headers, services):
    user = make_user("t@example.org", "teacher password 1")
    first = login(user)
    _fake_clock(services)
    assert _me(api, first) == 200
    changed = api.http.post("/auth/password", headers=first, body=json.dumps(
        {"current_password": user["password"], "new_password": "another long password 2"}))
    assert changed.status_code == 200
    assert _me(api, first) == 401
    second = {"Authorization": "Bearer " + changed.json_body["token"]}
    assert _me(api, second) == 200
    assert api.http.post("/users/t@example.org/reset", headers=admin_headers).status_code == 200
    assert _me(api, second) == 401


def test_a_change_made_elsewhere_is_seen_within_the_bound(api, make_user, login, services):
    headers = login(make_user("t@example.org", "teacher password 1"))
    now = _fake_clock(services)
    assert _me(api, headers) == 200
    # Another process (the CLI, another Lambda container) disables the account:
    # straight into the table, not through this process's user store.
    table = services.clients.table(services.settings.users_table)
    table.update_item(Key={"email": "t@example.org"}, UpdateExpression="SET disabled = :d",
                      ExpressionAttributeValues={":d": True})
    now[0] += IDENTITY_MAX_AGE_S / 2
    assert _me(api, headers) == 200  # still within the bound
    now[0] += IDENTITY_MAX_AGE_S / 2
    assert _me(api, headers) == 401


def test_failed_sign_ins_do_not_empty_the_cache(api, make_user, login, services):
    """Sign-in bookkeeping touches only lockout fields, which the token check never reads."""
    headers = login(make_user("t@example.org", "teacher password 1"))
    _fake_clock(services)
    assert _me(api, headers) == 200
    remembered = services.users.recent.size()
    for email in ("t@example.org", "nobody@example.org"):
        answer = api.http.post("/auth/login", body=json.dumps(
            {"email": email, "password": "wrong password 123"}))
        assert answer.status_code == 401
    assert remembered >= 1 and services.users.recent.size() == remembered


def test_a_read_that_began_before_a_change_is_not_reused():
    recent = RecentUsers(max_age=60, clock=lambda: 0.0)
    reads = []

    def read_while_changed(email):
        reads.append(email)
        recent.forget()  # a change lands while the old record is on its way
        return {"email": email, "disabled": False}

    recent.get("a@example.org", read_while_changed)
    recent.get("a@example.org", lambda email: reads.append(email) or {"email": email})
    assert reads == ["a@example.org", "a@example.org"]
    # Without a change meanwhile the record is reused.
    recent.get("a@example.org", lambda email: reads.append(email))
    assert len(reads) == 2


def test_a_missing_user_is_remembered_too_and_memory_is_bounded():
    now = [0.0]
    recent = RecentUsers(max_age=2, size=3, clock=lambda: now[0])
    reads = []

    def read(email):
        reads.append(email)
        return None

    for n in range(5):
        assert recent.get(f"u{n}@example.org", read) is None
    assert recent.size() == 3
    recent.get("u4@example.org", read)  # remembered
    recent.get("u0@example.org", read)  # the oldest was dropped
    assert reads.count("u4@example.org") == 1 and reads.count("u0@example.org") == 2
    now[0] = 2.0
    recent.get("u4@example.org", read)
    assert reads.count("u4@example.org") == 2


def test_every_method_but_the_reads_counts_as_a_change():
    class Store:
        def get(self, email):
            return {"email": email}

        def set_role(self, email, role):  # a method the wrapper does not know
            return role

    recent = RecentUsers(max_age=60, clock=lambda: 0.0)
    store = ForgettingUserStore(Store(), recent)
    recent.get("a@example.org", store.get)
    assert recent.size() == 1
    store.get("a@example.org")
    assert recent.size() == 1
    assert store.set_role("a@example.org", "admin") == "admin"
    assert recent.size() == 0


def test_concurrent_checks_and_changes_never_reuse_a_record_older_than_the_last_change():
    version = [0]
    recent = RecentUsers(max_age=60)
    stale = []

    def read(email):
        return {"version": version[0]}

    def checker():
        for _ in range(2000):
            seen_before = version[0]
            user = recent.get("a@example.org", read)
            if user["version"] < seen_before:
                stale.append((user["version"], seen_before))

    def changer():
        for _ in range(500):
            version[0] += 1
            recent.forget()

    threads = [threading.Thread(target=checker) for _ in range(3)] + [
        threading.Thread(target=changer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stale == []
