"""The site's own JS modules, run in node with a minimal fake DOM.

A photo link only becomes an ``<img src>`` if it is http(s); a malformed
address sends the browser to a page instead of leaving it stuck.
"""
import json
import subprocess


from ops import publish
from tests.support.node import require_node

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
// ui.js imports modules that read the site's config and listen on the window.
globalThis.window = { ROLLCALL_CONFIG: { apiBaseUrl: "http://127.0.0.1:9" }, addEventListener() {} };
const ui = await import(process.argv[2]);
const out = {};
for (const url of JSON.parse(process.argv[3])) {
  const el = ui.avatar({ full_name: "Ada Lovelace", photo_url: url,
                        face_box: { left: 0.4, top: 0.1, width: 0.2, height: 0.15 } });
  // A photo is an <img> inside its round frame.
  const img = el.children.find((child) => child.tagName === "img") || el;
  out[url] = { tag: img.tagName, src: img.attrs.src ?? null };
}
console.log(JSON.stringify(out));
"""


def avatars(tmp_path, urls):
    node = require_node()
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


# Imports the whole app (app.js routes at once) with a fake DOM, storage and
# location, and prints where it sent the browser and any unhandled error.
_APP_SCRIPT = r"""
class FakeNode {
  constructor(tag) { this.tagName = tag; this.attrs = {}; this.children = []; this.dataset = {};
    this.style = { setProperty() {} }; this.classList = { toggle() {}, add() {}, remove() {} }; }
  setAttribute(name, value) { this.attrs[name] = value; }
  removeAttribute() {}
  addEventListener() {}
  append(...children) { this.children.push(...children); }
  replaceChildren() { this.children = []; }
  querySelectorAll() { return []; }
  contains() { return false; }
  focus() {}
}
globalThis.Node = FakeNode;
const storage = () => {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)),
           removeItem: (k) => m.delete(k), clear: () => m.clear() };
};
globalThis.localStorage = storage();
globalThis.sessionStorage = storage();
globalThis.document = {
  createElement: (tag) => new FakeNode(tag), createElementNS: (_, tag) => new FakeNode(tag),
  createTextNode: (text) => Object.assign(new FakeNode("#text"), { text }),
  getElementById: () => new FakeNode("div"), querySelector: () => new FakeNode("a"),
  body: new FakeNode("body"), activeElement: null, title: "",
};
const replaced = [];
globalThis.location = { hash: process.argv[3], replace: (hash) => replaced.push(hash) };
globalThis.window = { ROLLCALL_CONFIG: { apiBaseUrl: "http://127.0.0.1:9" }, addEventListener() {} };
const errors = [];
process.on("unhandledRejection", (error) => errors.push(String(error)));
await import(process.argv[2]);
await new Promise((resolve) => setTimeout(resolve, 50));
console.log(JSON.stringify({ replaced, errors }));
"""


def open_app_at(tmp_path, hash_):
    node = require_node()
    script = tmp_path / "app.mjs"
    script.write_text(_APP_SCRIPT)
    done = subprocess.run([node, str(script), (JS_DIR / "app.js").as_uri(), hash_],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_a_malformed_escape_in_the_address_goes_to_sessions_not_a_stuck_page(tmp_path):
    assert open_app_at(tmp_path, "#/students/%E0%A4%A") == {"replaced": ["#/sessions"],
                                                           "errors": []}
    # A well-formed address still asks a signed-out person to sign in first.
    assert open_app_at(tmp_path, "#/students/S%3A1") == {"replaced": ["#/login"], "errors": []}
