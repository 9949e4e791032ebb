"""Findings of the security review that have no better home among the test files."""
import json
import shutil
import subprocess

import pytest

from chalicelib import publish

JS_DIR = publish.SOURCE_DIR / "js"

# Loads a site module in node with just enough of a DOM for dom.js's h(), then
# calls ui.avatar() with each URL and prints what element it made.
_AVATAR_SCRIPT = r"""
class FakeNode {
  constructor(tag) { this.tagName = tag; this.attrs = {}; this.children = []; this.dataset = {};
    this.style = { setProperty() {} }; }
  setAttribute(name, value) { this.attrs[name] = value; }
  addEventListener() {}
  append(...children) { this.children.push(...children); }
  replaceChildren() { this.children = []; }
}
globalThis.Node = FakeNode;
globalThis.document = {
  createElement: (tag) => new FakeNode(tag),
  createElementNS: (_, tag) => new FakeNode(tag),
  createTextNode: (text) => Object.assign(new FakeNode("#text"), { text }),
};
const ui = await import(process.argv[2]);
const out = {};
for (const url of JSON.parse(process.argv[3])) {
  const el = ui.avatar({ full_name: "Ada Lovelace", photo_url: url });
  out[url] = { tag: el.tagName, src: el.attrs.src ?? null };
}
console.log(JSON.stringify(out));
"""


def avatars(tmp_path, urls):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "avatar.mjs"
    script.write_text(_AVATAR_SCRIPT)
    done = subprocess.run([node, str(script), (JS_DIR / "ui.js").as_uri(), json.dumps(urls)],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_a_photo_url_goes_into_img_src_only_if_it_is_http_or_https(tmp_path):
    good = ["https://rollcall-dev-photos.s3.amazonaws.com/photos/students/a.jpg?X-Amz-Signature=1",
            "http://127.0.0.1:5000/rollcall-dev-photos/photos/students/a.jpg?Signature=1"]
    bad = ["javascript:alert(1)", " JavaScript:alert(1)", "data:image/svg+xml,<svg onload=alert(1)>",
           "vbscript:x", "/relative/path.jpg", "not a url"]
    made = avatars(tmp_path, good + bad)
    for url in good:
        assert made[url] == {"tag": "img", "src": url}, url
    for url in bad:
        # No image from it: the person's initials instead.
        assert made[url] == {"tag": "span", "src": None}, url


def test_every_route_but_login_and_health_needs_a_token(api, services):
    import app as app_module
    from chalicelib.auth import PUBLIC_ROUTES

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
