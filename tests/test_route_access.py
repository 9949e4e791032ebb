"""Who may call which route: every route but sign-in and health needs a token,
admin routes refuse teachers, and a one-time password opens only changing it."""
import json

import app as app_module
from chalicelib.auth import PUBLIC_ROUTES
from chalicelib.http import ONE_TIME_PASSWORD_ROUTES


def _concrete(path):
    return path.replace("{session_id}", "0" * 32).replace("{student_id}", "S1")


def test_every_route_but_login_and_health_needs_a_token(api, services):
    checked = 0
    for path, methods in app_module.app.routes.items():
        for method in methods:
            response = getattr(api.http, method.lower())(
                _concrete(path), headers={"Content-Type": "application/json"}, body="{}")
            if path in PUBLIC_ROUTES:
                assert response.status_code != 401, (method, path)
                continue
            assert response.status_code == 401, (method, path)
            assert response.json_body["error"]["code"] == "missing_token", (method, path)
            checked += 1
    assert checked >= 18


def test_a_teacher_is_refused_on_every_admin_route(api, teacher_headers):
    for method, path in (("get", "/users"), ("delete", "/students/S1"),
                         ("delete", f"/sessions/{'0' * 32}")):
        response = getattr(api.http, method)(path, headers=teacher_headers)
        assert response.status_code == 403, (method, path)
        assert response.json_body["error"]["code"] == "forbidden"


def test_a_one_time_password_opens_only_who_am_i_and_changing_it(api, services, admin_headers,
                                                                 login):
    added = api.http.post("/users", headers=admin_headers,
                          body=json.dumps({"email": "new@example.org", "role": "admin"}))
    one_time = {"email": "new@example.org", "password": added.json_body["password"]}
    headers = login(one_time)
    refused = 0
    for path, methods in app_module.app.routes.items():
        if path in PUBLIC_ROUTES or path in ONE_TIME_PASSWORD_ROUTES:
            continue
        for method in methods:
            response = getattr(api.http, method.lower())(_concrete(path), headers=headers,
                                                         body="{}")
            assert response.status_code == 403, (method, path, response.body)
            assert response.json_body["error"]["code"] == "password_change_required"
            refused += 1
    assert refused >= 40
    assert api.http.get("/auth/me", headers=headers).json_body["must_change_password"] is True
    changed = api.http.post("/auth/password", headers=headers, body=json.dumps(
        {"current_password": one_time["password"], "new_password": "my own long password"}))
    assert changed.status_code == 200, changed.body
    # Their own password chosen, the rest opens (an admin: every route).
    own = {"Authorization": "Bearer " + changed.json_body["token"],
           "Content-Type": "application/json"}
    assert api.http.get("/users", headers=own).status_code == 200
    assert api.http.get("/sessions", headers=own).status_code == 200
