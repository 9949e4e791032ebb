"""Every page of the site, at desktop and phone sizes, checked by axe-core in
Debian's Chromium: no serious or critical accessibility violation. A
screenshot of each lands in tests/artifacts/<test>/.

axe-core comes from node_modules (``make browser`` runs ``npm ci``; the version
is pinned in package.json), never from a CDN. The page's content security
policy allows no inline script, so axe's source is evaluated through the
DevTools protocol, as a test tool and not as part of the page.

The data (a person, a session whose attendance is taken, a failed one, one
waiting for its video) is made once through the API on the one-machine stack.
"""
import json
import pathlib
import re

import pytest
import requests

from tests.browser_support import PageWatch, Shots, launch, require_browser

sync_api = require_browser()
expect = sync_api.expect

PROJECT_DIR = pathlib.Path(__file__).resolve().parent.parent
AXE = PROJECT_DIR / "node_modules" / "axe-core" / "axe.min.js"
ADMIN = ("a11y-admin@example.org", "a11y admin password", "admin")
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
BLOCKING = {"serious", "critical"}


def axe_source():
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run 'make browser' (npm ci installs axe-core)",
                    pytrace=False)
    return AXE.read_text(encoding="utf-8")


class Api:
    def __init__(self, base, email, password):
        self.base = base
        answer = requests.post(f"{base}/auth/login", json={"email": email, "password": password},
                               timeout=30)
        answer.raise_for_status()
        self.headers = {"Authorization": f"Bearer {answer.json()['token']}"}

    def call(self, method, path, body=None):
        answer = requests.request(method, self.base + path, json=body, headers=self.headers,
                                  timeout=60)
        assert answer.ok, answer.text
        return answer.json() if answer.content else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from tests.stack_support import running_stack

    with running_stack(tmp_path_factory.mktemp("a11y-stack")) as running:
        running.add_user(*ADMIN)
        yield running


@pytest.fixture(scope="module")
def data(stack, tmp_path_factory):
    """One registered person, a completed session, a failed one and a waiting one."""
    from tests.conftest import shared_faces_dir as faces
    from tests.stack_support import presigned_post, wait_for
    from tests.support.video_maker import make_video

    shared_faces_dir = faces()
    if not (shared_faces_dir / "people").is_dir():
        pytest.skip(f"face photos not found in {shared_faces_dir}")

    api = Api(stack.api_url, ADMIN[0], ADMIN[1])
    photo = shared_faces_dir / "people" / "rose_leslie" / "1.jpg"
    upload = api.call("POST", "/uploads/photo", {"content_type": "image/jpeg"})
    assert presigned_post(upload["upload"], photo.read_bytes(), "photo.jpg", "image/jpeg").ok
    api.call("POST", "/students", {"student_id": "S-2001", "full_name": "Rose Leslie",
                                   "photo_key": upload["photo_key"]})
    video = tmp_path_factory.mktemp("a11y-video") / "seminar.mp4"
    make_video(str(video), [{"image": str(shared_faces_dir / "people" / "rose_leslie" / "2.jpg"),
                             "start_s": 0.0, "end_s": 2.0, "x": 150, "y": 60, "height": 110,
                             "label": "rose"}], size=(480, 270), fps=10, duration_s=2.0)
    done = api.call("POST", "/sessions", {"title": "Seminar", "date": "2026-03-02",
                                          "course": "SEM-1", "content_type": "video/mp4"})
    assert presigned_post(done["upload"], video.read_bytes(), "seminar.mp4", "video/mp4").ok
    failed = api.call("POST", "/sessions", {"title": "Broken", "content_type": "video/mp4"})
    assert presigned_post(failed["upload"], b"not a video" * 50, "broken.mp4", "video/mp4").ok
    waiting = api.call("POST", "/sessions", {"title": "Still waiting", "content_type": "video/mp4"})

    def status(created):
        return api.call("GET", f"/sessions/{created['session']['session_id']}")["session"]["status"]
    wait_for(lambda: status(done) == "COMPLETED" and status(failed) == "FAILED", timeout=240,
             interval=1, what="the sessions to be processed")
    return {"done": done["session"]["session_id"], "failed": failed["session"]["session_id"],
            "waiting": waiting["session"]["session_id"], "student": "S-2001"}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def check_page(page, source, shots, name):
    """Run axe on the page as it is now; the serious and critical violations."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    result = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ' :: ' + n.failureSummary)}));
    }""")
    shots.take(page, name)
    return [v for v in result if v["impact"] in BLOCKING]


@pytest.mark.parametrize("size", SIZES)
def test_every_page_passes_axe(browser, stack, data, request, size):
    source = axe_source()
    context = browser.new_context(viewport=SIZES[size], locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = PageWatch(page, allowed_console=[r"Blocked script execution in 'about:srcdoc'"])
    shots = Shots(request.node.name)
    found = {}

    def visit(name, hash_, ready):
        page.goto(f"{stack.site_url}#{hash_}")
        expect(page.locator(ready).first).to_be_visible()
        found[name] = check_page(page, source, shots, name)

    try:
        page.goto(stack.site_url + "#/login")
        expect(page.get_by_label("Email")).to_be_visible()
        found["sign-in"] = check_page(page, source, shots, "sign-in")
        page.get_by_label("Email").fill(ADMIN[0])
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator(".form-error")).to_be_visible()
        found["sign-in-error"] = check_page(page, source, shots, "sign-in-error")
        page.get_by_label("Password").fill(ADMIN[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("h1")).to_have_text("Sessions")

        visit("sessions", "/sessions", "table.table--sessions")
        visit("upload", "/upload", ".upload-form")
        # The title is not focused: on a phone the keyboard would hide the page.
        expect(page.get_by_label("Title")).not_to_be_focused()
        page.get_by_role("button", name="Upload and take attendance").click()
        expect(page.locator('[data-error-for="video"]')).not_to_be_empty()
        found["upload-errors"] = check_page(page, source, shots, "upload-errors")
        visit("people", "/students", ".students-list table, .students-list .empty")
        if size == "phone":
            page.get_by_role("button", name="Register a person").click()
        expect(page.locator(".register-form")).to_be_visible()
        found["people-form"] = check_page(page, source, shots, "people-form")
        visit("person", f"/students/{data['student']}", ".profile")
        page.get_by_role("button", name="Delete…").click()
        dialog = page.locator("dialog.dialog")
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        found["person-delete-dialog"] = check_page(page, source, shots, "person-delete-dialog")
        dialog.get_by_role("button", name="Cancel").click()
        visit("session-completed", f"/sessions/{data['done']}", ".table--attendance")
        page.get_by_role("button", name="Edit…").click()
        found["session-edit-dialog"] = check_page(page, source, shots, "session-edit-dialog")
        page.locator("dialog.dialog").get_by_role("button", name="Cancel").click()
        visit("session-failed", f"/sessions/{data['failed']}", ".notice--error")
        visit("session-waiting", f"/sessions/{data['waiting']}", ".reupload")
        visit("report", f"/sessions/{data['done']}/report", "iframe.report-frame")
        # axe really looks: an image without a text alternative is caught.
        page.evaluate("""() => document.querySelector('main').append(
            Object.assign(document.createElement('img'), {src: 'favicon.svg'}))""")
        caught = check_page(page, source, shots, "with-a-planted-fault")
        assert [v["id"] for v in caught] == ["image-alt"], caught
    finally:
        context.close()

    failing = {name: violations for name, violations in found.items() if violations}
    assert not failing, json.dumps(failing, indent=1)
    watch.check()


def test_the_site_is_usable_with_the_keyboard(browser, stack, data, request):
    """Sign in, reach the upload page and a session's table by Tab and Enter only."""
    context = browser.new_context(viewport=SIZES["desktop"], locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = PageWatch(page)
    try:
        page.goto(stack.site_url + "#/login")
        expect(page.get_by_label("Email")).to_be_focused()
        page.keyboard.type(ADMIN[0])
        page.keyboard.press("Tab")
        page.keyboard.type(ADMIN[1])
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Sessions")

        def tab_to(pattern, limit=40):
            for _ in range(limit):
                page.keyboard.press("Tab")
                label = page.evaluate("() => document.activeElement.textContent.trim()")
                if re.search(pattern, label or ""):
                    return
            raise AssertionError(f"nothing matching {pattern!r} within {limit} tabs")

        tab_to(r"^Upload a recording$")
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Upload a recording")
        tab_to(r"^Sessions$")
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Sessions")
        tab_to(r"^Seminar")
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Seminar")
        # A correction by keyboard: the dialog opens on its reason, Escape closes it.
        tab_to(r"^Mark (absent|present)$")
        page.keyboard.press("Enter")
        expect(page.locator("dialog.dialog textarea")).to_be_focused()
        page.keyboard.press("Escape")
        expect(page.locator("dialog.dialog")).to_have_count(0)
    finally:
        context.close()
    watch.check()
