"""An iPhone-style recording through the site (Debian's Chromium, the one-machine
stack): the upload page says before sending that the HEVC file will be converted,
and its session shows what the file holds and ends with its attendance taken."""
import re

import pytest

from tests.support.browser import ADMIN, PROCESSING_TIMEOUT_MS, nav, require_browser, sign_in
from tests.support.clips import encode

sync_api = require_browser()
expect = sync_api.expect
pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]

#: An admin: the session belongs to no class (everyone registered).
STACK_USERS = (ADMIN,)


def test_an_hevc_recording_is_announced_converted_and_analysed(page, stack, tmp_path):
    video = tmp_path / "IMG-0042.MOV"
    video.write_bytes(encode("mov", "libx265", tag="hvc1", width=640, height=360, fps=24,
                             seconds=3))
    sign_in(page, stack, ADMIN)
    expect(page.locator("h1")).to_have_text("Sessions")
    nav(page, "Upload a recording")
    page.get_by_label("Recording").set_input_files(str(video))
    note = page.locator(".upload-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("This recording is HEVC (H.265) video: Rollcall converts it "
                                 "to H.264 before the face search")
    page.get_by_label("Title").fill("Phone recording")
    page.get_by_role("button", name="Upload and take attendance").click()
    expect(page).to_have_url(re.compile(r"#/sessions/[0-9a-f]{32}$"), timeout=90_000)
    media = page.locator(".media-line")
    expect(media).to_contain_text("MOV · HEVC (H.265), 640×360, 24 fps",
                                  timeout=PROCESSING_TIMEOUT_MS)
    expect(page.locator(".session-status")).to_contain_text("Completed",
                                                           timeout=PROCESSING_TIMEOUT_MS)
    # Parts with nothing to show are left out, not written as "null".
    expect(page.locator("main")).not_to_contain_text("null")
    page.shots.take(page, "converted-session")
    page.watch.check()
