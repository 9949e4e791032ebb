"""Fixtures of the browser tier: Debian's Chromium through Playwright, against
one running stack per module with its users."""
import pytest

from tests.support.browser import ADMIN, TEACHER, PageWatch, Shots, launch, require_browser
from tests.support.stack import boto_client, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    """The stack for one module, with the module's ``STACK_USERS`` (email, password,
    role), by default the teacher and admin of tests/support/browser.py."""
    users = getattr(request.module, "STACK_USERS", (TEACHER, ADMIN))
    with running_stack(tmp_path_factory.mktemp("browser-stack")) as running:
        for email, password, role in users:
            running.add_user(email, password, role)
        yield running


@pytest.fixture(scope="module")
def browser():
    sync_api = require_browser()
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, stack, request):
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  accept_downloads=True, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    # The report's inline Print handler is refused by its sandbox, by design.
    page.watch = PageWatch(page, allowed_console=[r"Blocked script execution in 'about:srcdoc'"])
    page.shots = Shots(request.node.name)
    yield page
    context.close()


@pytest.fixture
def s3(stack):
    """An S3 client on the stack's moto server (to see what the browser uploaded)."""
    return boto_client("s3", stack.moto_url)
