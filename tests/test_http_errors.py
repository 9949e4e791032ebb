"""Malformed input gets a 4xx in the one error shape, never a 500."""
import json

import pytest

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b"", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (b'"a string"', 400, "invalid_json"),
    (json.dumps({"email": "t@example.org"}).encode(), 400, "missing_field"),
    (json.dumps({"email": 7, "password": "x"}).encode(), 400, "invalid_field"),
    (json.dumps({"email": "t@example.org", "password": ["x"]}).encode(), 400, "invalid_field"),
    (json.dumps({"email": "t@example.org", "password": "x" * 300}).encode(), 400, "invalid_field"),
    (json.dumps({"email": "t@example.org", "password": "x" * 70_000}).encode(), 413,
     "payload_too_large"),
    (b"\xff\xfe\x00garbage", 400, "invalid_json"),
    # A lone UTF-16 surrogate is valid JSON but not text: it cannot be encoded (was a 500).
    (b'{"email": "t@example.org", "password": "abc\\ud800def"}', 400, "invalid_field"),
    # Deep nesting within the size limit: json.loads raises RecursionError (was a 500).
    (b"[" * 30_000 + b"]" * 30_000, 400, "invalid_json"),
    (b'{"email": ' * 5_000 + b"1" + b"}" * 5_000, 400, "invalid_json"),
])
def test_malformed_login_bodies(api, body, status, code):
    response = api.http.post("/auth/login", headers=JSON, body=body)
    assert response.status_code == status, response.body
    assert response.json_body["error"]["code"] == code
    assert response.json_body["error"]["message"]


def test_wrong_method_is_a_405_in_our_shape(api):
    response = api.http.get("/auth/login")
    assert response.status_code == 405
    assert response.json_body["error"]["code"] == "method_not_allowed"


def test_an_unexpected_failure_is_a_500_without_internals(api, services, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr(services.users, "get", explode)
    response = api.http.post("/auth/login", headers=JSON,
                             body=json.dumps({"email": "a@example.org", "password": "p"}))
    assert response.status_code == 500
    assert response.json_body["error"]["code"] == "internal_error"
    assert "secret internal detail" not in response.body.decode()
