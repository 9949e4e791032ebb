"""Who may call which route: every route but sign-in and health needs a token,
and admin routes refuse teachers."""
import app as app_module
from chalicelib.auth import PUBLIC_ROUTES


def test_every_route_but_login_and_health_needs_a_token(api, services):
    checked = 0
    for path, methods in app_module.app.routes.items():
        concrete = (path.replace("{session_id}", "0" * 32)
                    .replace("{student_id}", "S1"))
        for method in methods:
            response = getattr(api.http, method.lower())(
                concrete, headers={"Content-Type": "application/json"}, body="{}")
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
