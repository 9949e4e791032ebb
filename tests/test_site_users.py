"""The Users page pages: the first 50 accounts, then "Show more" asks for the next
50, never every account at once (the page's JS run in node with a minimal fake
DOM and a fake API that pages by its cursor)."""
import json
import subprocess

from ops import publish
from tests.support.node import require_node

JS_DIR = publish.SOURCE_DIR / "js"

_SCRIPT = r"""
class FakeNode {
  constructor(tag) { this.tagName = tag; this.attrs = {}; this.children = []; this.dataset = {};
    this.listeners = {}; this.style = { setProperty() {} }; this.classList = { add() {}, remove() {}, toggle() {}, contains() { return false; } }; }
  setAttribute(name, value) { this.attrs[name] = value; }
  getAttribute(name) { return this.attrs[name] ?? null; }
  removeAttribute(name) { delete this.attrs[name]; }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  append(...children) { this.children.push(...children); }
  appendChild(child) { this.children.push(child); return child; }
  replaceChildren(...children) { this.children = children; }
  querySelector() { return null; }
  querySelectorAll() { return []; }
  focus() {}
  get textContent() { return this.text ?? this.children.map((c) => c.textContent ?? "").join(""); }
  set textContent(value) { this.children = []; this.text = value; }
}
globalThis.Node = FakeNode;
globalThis.document = {
  createElement: (tag) => new FakeNode(tag),
  createElementNS: (_, tag) => new FakeNode(tag),
  createTextNode: (text) => Object.assign(new FakeNode("#text"), { text }),
  getElementById: () => null, querySelector: () => null, body: new FakeNode("body"),
  addEventListener() {},
};
globalThis.window = { ROLLCALL_CONFIG: { apiBaseUrl: "http://api.test" }, addEventListener() {} };
const store = {};
globalThis.localStorage = { getItem: (k) => store[k] ?? null, setItem: (k, v) => { store[k] = v; },
  removeItem: (k) => { delete store[k]; } };
const emails = Array.from({ length: Number(process.argv[3]) }, (_, n) => `u${String(n).padStart(3, "0")}@example.org`);
const asked = [];
globalThis.fetch = async (url) => {
  const u = new URL(url);
  asked.push(u.pathname + u.search);
  const limit = Number(u.searchParams.get("limit"));
  const start = u.searchParams.get("cursor") ? Number(u.searchParams.get("cursor")) : 0;
  const page = emails.slice(start, start + limit);
  const next = start + limit < emails.length ? String(start + limit) : null;
  const body = { users: page.map((email) => ({ email, role: "teacher", disabled: false })), next_cursor: next };
  return { ok: true, status: 200, json: async () => body };
};
localStorage.setItem("rollcall.auth", JSON.stringify({ token: "t", expires_at: Date.now() / 1000 + 3600,
  user: { email: "admin@example.org", role: "admin" } }));
const page = await import(process.argv[2]);
const main = new FakeNode("main");
await page.render(main);
const all = [];
(function walk(node) { if (!node || typeof node !== "object") return; all.push(node); (node.children || []).forEach(walk); })(main);
const rows = () => { const found = []; (function walk(node) { if (!node || typeof node !== "object") return;
  if (node.tagName === "tr" && node.dataset.email) found.push(node.dataset.email); (node.children || []).forEach(walk); })(main); return found; };
const more = () => { let b = null; (function walk(node) { if (!node || typeof node !== "object") return;
  if (node.tagName === "button" && node.textContent === "Show more") b = node; (node.children || []).forEach(walk); })(main); return b; };
const out = { first: rows().length, more: Boolean(more()), asked: [...asked] };
if (more()) {
  asked.length = 0;
  for (const fn of more().listeners.click) fn();
  await new Promise((resolve) => setTimeout(resolve, 50));
  out.second = rows().length; out.moreAfter = Boolean(more()); out.askedAfter = [...asked];
}
console.log(JSON.stringify(out));
"""


def render_users(tmp_path, accounts):
    node = require_node()
    script = tmp_path / "users.mjs"
    script.write_text(_SCRIPT)
    done = subprocess.run([node, str(script), (JS_DIR / "pages" / "users.js").as_uri(),
                           str(accounts)], capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout)


def test_the_users_page_shows_a_page_and_more_on_request(tmp_path):
    shown = render_users(tmp_path, 120)
    assert (shown["first"], shown["more"]) == (50, True)
    assert shown["asked"] == ["/users?limit=50"]
    # "Show more": the first 100, read again from the start (the list may have changed).
    assert (shown["second"], shown["moreAfter"]) == (100, True)
    assert shown["askedAfter"] == ["/users?limit=100"]


def test_a_short_list_has_no_show_more(tmp_path):
    shown = render_users(tmp_path, 30)
    assert (shown["first"], shown["more"]) == (30, False)
