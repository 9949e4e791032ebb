"""Sign-in, tokens, lockout and roles, through the HTTP API."""
import base64
import json
import time

import jwt
import pytest

from chalicelib import passwords
from ops.scanning import scan_all
from chalicelib.users import FIRST_LOCK_SECONDS, LONGEST_LOCK_SECONDS, MAX_FAILURES

JSON = {"Content-Type": "application/json"}


def post_login(api, email, password):
    return api.http.post("/auth/login", headers=JSON,
                         body=json.dumps({"email": email, "password": password}))


def test_login_answers_a_token_that_identifies_the_user(api, make_user, services):
    user = make_user("Teacher@Example.org", "teacher password 1", "teacher")
    response = post_login(api, user["email"], user["password"])
    assert response.status_code == 200
    token = response.json_body["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "teacher@example.org"
    assert claims["role"] == "teacher"
    assert 0 < claims["exp"] - claims["iat"] <= 12 * 3600
    assert response.json_body["time_zone"] == services.settings.time_zone  # for the site
    me = api.http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json_body == {"email": "teacher@example.org", "role": "teacher",
                            "must_change_password": False}


def test_wrong_password_and_unknown_email_get_the_same_answer_and_work(
        api, make_user, monkeypatch):
    make_user("t@example.org", "teacher password 1")
    calls = []
    real_check = passwords.check_password_hash
    monkeypatch.setattr(passwords, "check_password_hash",
                        lambda h, p: calls.append(h) or real_check(h, p))
    wrong = post_login(api, "t@example.org", "not the password")
    checks_for_wrong = len(calls)
    unknown = post_login(api, "nobody@example.org", "not the password")
    checks_for_unknown = len(calls) - checks_for_wrong
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json_body == unknown.json_body
    assert wrong.json_body["error"]["code"] == "invalid_credentials"
    # Both did exactly one scrypt verification, so timing does not tell them apart.
    assert checks_for_wrong == checks_for_unknown == 1


def test_five_failures_lock_the_account_with_a_growing_wait(api, make_user, services):
    user = make_user("t@example.org", "teacher password 1")
    now = [1_000_000.0]
    services.users._clock = lambda: now[0]
    unknown = post_login(api, "nobody@example.org", "wrong password")
    for attempt in range(MAX_FAILURES):
        wrong = post_login(api, user["email"], "wrong password")
        assert wrong.status_code == 401
        now[0] += 10
    # Locked: even the right password is refused, with the answer an unknown
    # email gets (a lock does not tell that the account exists).
    locked = post_login(api, user["email"], user["password"])
    assert (locked.status_code, locked.json_body) == (unknown.status_code, unknown.json_body)
    assert "Retry-After" not in locked.headers
    stored = services.users.get(user["email"])
    assert stored["locked_until"] == int(now[0] - 10) + FIRST_LOCK_SECONDS
    # The second lock in a row lasts twice as long.
    now[0] = stored["locked_until"] + 1
    for attempt in range(MAX_FAILURES):
        assert post_login(api, user["email"], "wrong password").status_code == 401
    second = services.users.get(user["email"])
    assert second["locked_until"] == int(now[0]) + 2 * FIRST_LOCK_SECONDS
    now[0] = second["locked_until"] + 1
    assert post_login(api, user["email"], user["password"]).status_code == 200
    stored = services.users.get(user["email"])
    assert stored["failed_attempts"] == 0 and stored["lock_streak"] == 0


def test_the_lock_grows_to_at_most_the_longest():
    from chalicelib.users import lock_seconds
    assert [lock_seconds(n) for n in range(3)] == [FIRST_LOCK_SECONDS, 2 * FIRST_LOCK_SECONDS,
                                                   4 * FIRST_LOCK_SECONDS]
    assert lock_seconds(50) == LONGEST_LOCK_SECONDS


def test_failures_spread_beyond_the_window_do_not_lock(api, make_user, services):
    user = make_user("t@example.org", "teacher password 1")
    now = [1_000_000.0]
    services.users._clock = lambda: now[0]
    for attempt in range(MAX_FAILURES + 2):
        assert post_login(api, user["email"], "wrong password").status_code == 401
        now[0] += 4 * 60  # five failures take more than 15 minutes
    assert post_login(api, user["email"], user["password"]).status_code == 200


def _token(services, **overrides):
    now = int(time.time())
    claims = {"sub": "t@example.org", "role": "teacher", "iat": now,
              "exp": now + 600, "ver": 1}
    claims.update(overrides)
    secret = services.tokens._secret()
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize("make_token", [
    pytest.param(lambda s: _token(s, exp=int(time.time()) - 10), id="expired"),
    pytest.param(lambda s: _token(s)[:-4] + ("AAAA" if not _token(s).endswith("AAAA") else "BBBB"),
                 id="tampered-signature"),
    pytest.param(lambda s: jwt.encode({"sub": "t@example.org", "role": "admin",
                                        "iat": int(time.time()), "exp": int(time.time()) + 600,
                                        "ver": 1}, "another secret that is long enough to sign", algorithm="HS256"),
                 id="wrongly-signed"),
    pytest.param(lambda s: _unsigned(), id="alg-none"),
    pytest.param(lambda s: _token(s, ver=0), id="old-version"),
    pytest.param(lambda s: "not-a-jwt", id="garbage"),
])
def test_bad_tokens_are_refused(api, make_user, services, make_token):
    make_user("t@example.org", "teacher password 1")
    response = api.http.get("/auth/me", headers={"Authorization": "Bearer " + make_token(services)})
    assert response.status_code == 401
    assert response.json_body["error"]["code"] == "invalid_token"
    # CORS headers ride on the 401 so the browser can read it.
    assert response.headers["Access-Control-Allow-Origin"] == services.settings.site_origin


def _unsigned():
    def b64(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    now = int(time.time())
    return b64({"alg": "none", "typ": "JWT"}) + "." + b64(
        {"sub": "t@example.org", "role": "admin", "iat": now, "exp": now + 600, "ver": 1}) + "."


def test_tampered_claims_are_refused(api, make_user, services):
    make_user("t@example.org", "teacher password 1")
    header, payload, signature = _token(services).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = api.http.get("/auth/me",
                            headers={"Authorization": f"Bearer {header}.{forged}.{signature}"})
    assert response.status_code == 401


def test_no_token_is_refused_on_every_route_but_login(api, services):
    for path in ("/auth/me", "/users"):
        response = api.http.get(path)
        assert response.status_code == 401, path
        assert response.json_body["error"]["code"] == "missing_token"


def test_a_teacher_is_refused_on_an_admin_route(api, teacher_headers):
    response = api.http.get("/users", headers=teacher_headers)
    assert response.status_code == 403
    assert response.json_body["error"]["code"] == "forbidden"


def test_an_admin_lists_users_without_secrets(api, admin_headers, make_user):
    make_user("t@example.org", "teacher password 1")
    response = api.http.get("/users", headers=admin_headers)
    assert response.status_code == 200
    assert [u["email"] for u in response.json_body["users"]] == [
        "admin@example.org", "t@example.org"]
    assert "password_hash" not in json.dumps(response.json_body)


def test_a_password_change_ends_existing_tokens(api, make_user, login, services):
    user = make_user("t@example.org", "teacher password 1")
    headers = login(user)
    assert api.http.get("/auth/me", headers=headers).status_code == 200
    services.users.set_password(user["email"], "a brand new password")
    assert api.http.get("/auth/me", headers=headers).status_code == 401


def test_a_removed_user_token_stops_working(api, make_user, login, services):
    user = make_user("t@example.org", "teacher password 1")
    headers = login(user)
    services.users.remove(user["email"])
    assert api.http.get("/auth/me", headers=headers).status_code == 401


def test_no_stored_user_item_holds_a_plain_password(api, make_user, services):
    created = [make_user(f"user{i}@example.org", f"secret password {i}",
                         "admin" if i == 0 else "teacher") for i in range(3)]
    post_login(api, created[1]["email"], "wrong password attempt")
    services.users.set_password(created[2]["email"], "changed password 2")
    table = services.clients.table(services.settings.users_table)
    items = list(scan_all(table))
    assert len(items) == 3
    plain = [u["password"] for u in created] + ["wrong password attempt", "changed password 2"]
    for item in items:
        text = json.dumps(item, default=str)
        assert not any(p in text for p in plain)
        assert item["password_hash"].startswith("scrypt:")


def test_logs_never_hold_the_password_or_token(api, make_user, capsys):
    user = make_user("t@example.org", "teacher password 1")
    post_login(api, user["email"], "wrong password attempt")
    response = post_login(api, user["email"], user["password"])
    token = response.json_body["token"]
    api.http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    logged = capsys.readouterr().out
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(line.get("path") == "/auth/me" and line.get("status") == 200 for line in lines)
    assert all(line["request_id"] for line in lines if line.get("message") == "request")
    assert response.headers["X-Request-Id"] in {line["request_id"] for line in lines}
    for secret in (user["password"], "wrong password attempt", token):
        assert secret not in logged
