"""Accounts from the site: admins add, list, disable and reset; users change
their own password. Passwords keep the hashing and lockout rules."""
import json

from chalicelib.users import MAX_FAILURES


def call(api, method, path, headers, body=None):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["body"] = json.dumps(body)
    return getattr(api.http, method)(path, **kwargs)


def sign_in(api, email, password):
    return api.http.post("/auth/login", headers={"Content-Type": "application/json"},
                         body=json.dumps({"email": email, "password": password}))


def bearer(answer):
    return {"Authorization": "Bearer " + answer.json_body["token"],
            "Content-Type": "application/json"}


def test_an_admin_adds_a_teacher_with_a_one_time_password(api, admin_headers, services):
    answer = call(api, "post", "/users", admin_headers,
                  {"email": "New.Teacher@Example.org", "role": "teacher"})
    assert answer.status_code == 201, answer.body
    body = answer.json_body
    assert body["user"]["email"] == "new.teacher@example.org"
    assert body["user"]["must_change_password"] is True
    password = body["password"]
    assert len(password) >= 16
    stored = services.users.get("new.teacher@example.org")
    assert password not in json.dumps({k: str(v) for k, v in stored.items()})  # only a hash
    signed = sign_in(api, "new.teacher@example.org", password)
    assert signed.status_code == 200
    assert signed.json_body["user"]["must_change_password"] is True
    # The teacher picks their own; the one-time password stops working.
    headers = bearer(signed)
    changed = call(api, "post", "/auth/password", headers,
                   {"current_password": password, "new_password": "my own long password"})
    assert changed.status_code == 200, changed.body
    assert changed.json_body["user"]["must_change_password"] is False
    assert call(api, "get", "/auth/me", headers).status_code == 401  # old token ended
    assert call(api, "get", "/auth/me", bearer(changed)).status_code == 200
    assert sign_in(api, "new.teacher@example.org", password).status_code == 401
    assert sign_in(api, "new.teacher@example.org", "my own long password").status_code == 200
    again = call(api, "post", "/users", admin_headers,
                 {"email": "new.teacher@example.org", "role": "teacher"})
    assert again.status_code == 409


def test_users_are_listed_in_pages_without_secrets(api, admin_headers, services):
    for n in range(5):
        services.users.add(f"t{n}@example.org", "a long password 1", "teacher")
    seen, cursor = [], None
    while True:
        path = "/users?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = call(api, "get", path, admin_headers).json_body
        seen += body["users"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [u["email"] for u in seen] == ["admin@example.org"] + [
        f"t{n}@example.org" for n in range(5)]
    assert not any("password_hash" in u or "token_version" in u for u in seen)


def test_disabling_ends_sign_in_and_tokens_and_reset_gives_a_new_password(
        api, admin_headers, teacher_headers):
    email = "teacher@example.org"
    answer = call(api, "patch", f"/users/{email}", admin_headers, {"disabled": True})
    assert answer.status_code == 200 and answer.json_body["user"]["disabled"] is True
    assert call(api, "get", "/auth/me", teacher_headers).status_code == 401
    refused = sign_in(api, email, "teacher password 1")
    assert refused.status_code == 401
    assert refused.json_body["error"]["code"] == "account_disabled"
    assert sign_in(api, email, "wrong password 1").json_body["error"]["code"] == \
        "invalid_credentials"  # said only to someone who knows the password
    call(api, "patch", f"/users/{email}", admin_headers, {"disabled": False})
    assert sign_in(api, email, "teacher password 1").status_code == 200
    reset = call(api, "post", f"/users/{email}/reset", admin_headers)
    assert reset.status_code == 200 and reset.json_body["user"]["must_change_password"]
    assert sign_in(api, email, "teacher password 1").status_code == 401
    assert sign_in(api, email, reset.json_body["password"]).status_code == 200
    assert call(api, "post", "/users/nobody@example.org/reset",
                admin_headers).status_code == 404
    own = call(api, "patch", "/users/admin@example.org", admin_headers, {"disabled": True})
    assert own.status_code == 409


def test_only_admins_manage_accounts(api, teacher_headers):
    for method, path, body in [("get", "/users", None),
                               ("post", "/users", {"email": "x@example.org", "role": "admin"}),
                               ("patch", "/users/admin@example.org", {"disabled": True}),
                               ("post", "/users/admin@example.org/reset", None)]:
        assert call(api, method, path, teacher_headers, body).status_code == 403, path


def test_a_wrong_current_password_counts_towards_the_lock(api, teacher_headers):
    for _ in range(MAX_FAILURES - 1):
        answer = call(api, "post", "/auth/password", teacher_headers,
                      {"current_password": "not it at all", "new_password": "whatever 12345"})
        assert answer.status_code == 400
        assert answer.json_body["error"]["details"]["field"] == "current_password"
    locked = call(api, "post", "/auth/password", teacher_headers,
                  {"current_password": "not it at all", "new_password": "whatever 12345"})
    assert locked.status_code == 429
    weak = call(api, "post", "/auth/password", teacher_headers,
                {"current_password": "teacher password 1", "new_password": "short"})
    assert weak.status_code == 429  # still locked, even with the right one


def test_the_whole_list_of_accounts_is_read_from_the_index_not_a_scan(services,
                                                                      no_table_scans):
    """The CLI's list (every account, sorted by email) pages through the listing index."""
    for email in ("zoe@example.org", "al@example.org", "Mo@Example.org"):
        services.users.add(email, "a long password 1", "teacher")
    listed = services.users.list()
    assert [u["email"] for u in listed] == ["al@example.org", "mo@example.org",
                                            "zoe@example.org"]
    assert all(set(u) <= {"email", "role", "locked_until"} for u in listed)
