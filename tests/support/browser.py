"""Driving Debian's Chromium with Playwright for the site's browser tests.

Never a downloaded browser: :data:`CHROMIUM` is the system one (``make
browser`` installs it). Every page a test visits is saved as a screenshot
under ``tests/artifacts/<test name>/`` (gitignored) so a person can look at
what the teacher would see. :class:`PageWatch` makes a test fail on any
JavaScript error or dialog (an ``alert`` from injected markup would show up
there), and keeps all traffic on 127.0.0.1.
"""
import os
import pathlib
import re
import shutil
from urllib.parse import urlsplit

import pytest

ARTIFACTS_DIR = pathlib.Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

# The users the browser tests' stack starts with: (email, password, role).
TEACHER = ("teacher@example.org", "teacher password 1", "teacher")
ADMIN = ("admin@example.org", "admin password 12", "admin")


def require_browser():
    """Skip (with the fix) when Chromium or Playwright is missing; in CI, fail.

    ``make test`` installs Chromium first, so in CI a missing browser is a
    broken set-up, never a reason to pass without the browser tests.
    """
    if not pathlib.Path(CHROMIUM).exists():
        message = (f"{CHROMIUM} not found: run 'make browser' "
                   "(apt-get install chromium chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed: run 'make install'")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)


class Shots:
    """Numbered full-page screenshots of one test, in tests/artifacts/<name>/."""

    def __init__(self, test_name):
        self.dir = ARTIFACTS_DIR / re.sub(r"[^\w.-]+", "_", test_name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.count = 0

    def take(self, page, name):
        self.count += 1
        path = self.dir / f"{self.count:02d}-{name}.png"
        # From the top: a full-page shot of a scrolled page draws the sticky bar mid-page.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=True)
        return path


class PageWatch:
    """Records page errors, console errors, dialogs and requests off 127.0.0.1.

    Requests are watched, not intercepted: interception would buffer the
    upload body and hide the upload progress the site shows.
    """

    def __init__(self, page, allowed_console=()):
        self.errors = []
        self.dialogs = []
        self.blocked = []
        self._allowed = [re.compile(p) for p in allowed_console]
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("console", self._console)
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def _console(self, message):
        if message.type != "error":
            return
        text = message.text
        # The browser logs every 4xx answer; those are expected (wrong password...).
        if "Failed to load resource" in text or any(p.search(text) for p in self._allowed):
            return
        self.errors.append(f"console: {text}")

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request):
        url = urlsplit(request.url)
        if url.scheme in ("http", "https") and url.hostname not in LOCAL_HOSTS:
            self.blocked.append(request.url)

    def check(self):
        assert not self.dialogs, f"a dialog opened: {self.dialogs}"
        assert not self.errors, "\n".join(self.errors)
        assert not self.blocked, f"requests left 127.0.0.1: {self.blocked}"


#: How long a browser test waits for a session to be processed.
PROCESSING_TIMEOUT_MS = 150_000


def sign_in(page, stack, user, password=None):
    """Sign ``user`` (email, password, role) in on the site's login page."""
    page.goto(stack.site_url + "#/login")
    page.get_by_label("Email").fill(user[0])
    page.get_by_label("Password").fill(password or user[1])
    page.get_by_role("button", name="Sign in").click()


def sign_in_home(page, stack, user):
    """:func:`sign_in`, then wait for the page a signed-in user lands on (Sessions)."""
    from playwright.sync_api import expect
    sign_in(page, stack, user)
    expect(page.locator("h1")).to_have_text("Sessions")


def nav(page, name):
    """Follow a link of the main navigation (pages may have the same link too)."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def register(page, full_name, student_id, photo):
    """Fill and send the People page's registration form."""
    form = page.locator(".register-form")
    form.get_by_label("Full name").fill(full_name)
    form.get_by_label("ID", exact=True).fill(student_id)
    form.get_by_label("Photo").set_input_files(str(photo))
    from playwright.sync_api import expect
    expect(form.locator(".photo-picker__preview")).to_be_visible()
    form.get_by_role("button", name="Register").click()
