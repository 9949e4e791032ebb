"""The evidence on a session page, in Chromium against the one-machine stack.

A teacher sees each present person's registered photo beside the face the
video showed, "matched N %" (explained on hover) and "seen for N s", clicks a
sighting on the timeline to see the face, finds the unrecognised people as a
gallery (a person who left and came back shown once), and registers one of
them from there. The last test does the same with the real clip in
shared/faces/videos. Screenshots go to tests/artifacts/<test>/.
"""
import json
import re

import pytest

from tests.browser_support import require_browser
from test_browser import (ADMIN, PROCESSING_TIMEOUT_MS, browser, nav, page,  # noqa: F401
                          register, sign_in, stack)

sync_api = require_browser()
expect = sync_api.expect
EVIDENCE_TIMEOUT_MS = 90_000


def upload(page, video, title):
    nav(page, "Upload a recording")
    page.get_by_label("Recording").set_input_files(str(video))
    page.get_by_label("Title").fill(title)
    page.get_by_role("button", name="Upload and take attendance").click()
    expect(page).to_have_url(re.compile(r"#/sessions/[^/]+$"), timeout=60_000)
    expect(page.locator(".session-status .badge")).to_have_text(
        re.compile("^(Done|Completed)$"), timeout=PROCESSING_TIMEOUT_MS)


def wait_for_crop(page, selector):
    """The page fills the crops in by itself once they are cut: wait for one to load."""
    page.wait_for_function("""sel => {
        const img = document.querySelector(sel);
        return img && img.complete && img.naturalWidth > 0;
    }""", arg=selector, timeout=EVIDENCE_TIMEOUT_MS)


def test_crops_gallery_and_registering_a_stranger(page, stack, faces_dir, tmp_path):
    from tests.support.video_maker import make_video
    people = faces_dir / "people"
    sign_in(page, stack, ADMIN)
    nav(page, "People")
    register(page, "Barack Obama", "EV-1", people / "barack_obama" / "1.jpg")
    expect(page.locator('tr[data-student-id="EV-1"] .cell-name')).to_have_text(
        "Barack Obama", timeout=30_000)

    # Obama the whole time; a stranger at the right who leaves and comes back.
    video = tmp_path / "history-week-5.mp4"
    make_video(str(video), [
        {"image": str(people / "barack_obama" / "2.jpg"), "start_s": 0.0, "end_s": 6.0,
         "x": 60, "y": 90, "height": 110},
        {"image": str(people / "john_savage" / "1.jpg"), "start_s": 0.0, "end_s": 2.5,
         "x": 380, "y": 70, "height": 130},
        {"image": str(people / "john_savage" / "1.jpg"), "start_s": 4.0, "end_s": 6.0,
         "x": 384, "y": 72, "height": 130},
    ], size=(640, 360), fps=10, duration_s=6.0)
    upload(page, video, "History, week 5")
    row = page.locator('.attendance-present tr[data-student-id="EV-1"]')
    wait_for_crop(page, '.attendance-present tr[data-student-id="EV-1"] img.crop')
    # The registered photo beside the face from the video.
    expect(row.locator(".face-compare .avatar img")).to_have_count(1)
    expect(row.locator("img.crop")).to_have_attribute("alt", "Barack Obama in the video")
    match = row.locator("td[data-label=Match] .explained")
    expect(match).to_have_text(re.compile(r"^matched (8|9|10)\d? %$"))
    assert "registered photo" in match.get_attribute("title")
    expect(row.locator("td[data-label=Seen]")).to_have_text(re.compile(r"^seen for \d+ s$"))
    page.shots.take(page, "session-with-crops")

    # A sighting on the timeline shows the face.
    page.locator('.timeline__lane[data-student-id="EV-1"] .timeline__mark').first.click()
    viewer = page.locator(".sighting-viewer")
    expect(viewer.locator("img.crop")).to_be_visible()
    expect(viewer).to_contain_text("Barack Obama at 0:0")

    # The stranger, once, though the face search saw two appearances.
    gallery = page.locator(".strangers .stranger")
    expect(gallery).to_have_count(1)
    wait_for_crop(page, ".strangers .stranger img.crop")
    expect(page.locator(".stat", has_text="unrecognised people")).to_contain_text("1")
    page.shots.take(page, "unrecognised-gallery")

    # Register them from the video.
    page.get_by_role("button", name="Register Person 1").click()
    dialog = page.locator("dialog.dialog")
    expect(dialog.locator("img.crop")).to_be_visible()
    dialog.get_by_label("Full name").fill("John Savage")
    dialog.get_by_label("ID", exact=True).fill("EV-2")
    page.shots.take(page, "register-from-video")
    dialog.get_by_role("button", name="Register").click()
    expect(gallery.locator(".stranger__done")).to_contain_text("Registered as EV-2",
                                                               timeout=60_000)
    savage = page.locator('.attendance-present tr[data-student-id="EV-2"]')
    expect(savage.locator(".correction")).to_contain_text("registered from this session")
    expect(page.locator(".stat", has_text="unrecognised people")).to_contain_text("0")
    page.shots.take(page, "stranger-registered")
    page.watch.check()


def test_the_real_clip_shows_faces_and_the_unrecognised_once_each(page, stack, faces_dir):
    """Done when: the labelled person's video face beside their photo, the unrecognised as
    a gallery (each person once), and a teacher registers one of them."""
    clip = faces_dir / "videos" / "short_hamilton_clip.mp4"
    label = json.loads(clip.with_suffix(".json").read_text())
    assert label["present"] == ["lin_manuel_miranda"]
    sign_in(page, stack, ADMIN)
    nav(page, "People")
    register(page, "Lin-Manuel Miranda", "HAM-1",
             faces_dir / "people" / "lin_manuel_miranda" / "1.jpg")
    expect(page.locator('tr[data-student-id="HAM-1"] .cell-name')).to_have_text(
        "Lin-Manuel Miranda", timeout=30_000)
    upload(page, clip, "Hamilton rehearsal")
    row = page.locator('.attendance-present tr[data-student-id="HAM-1"]')
    wait_for_crop(page, '.attendance-present tr[data-student-id="HAM-1"] img.crop')
    expect(row.locator(".face-compare .avatar img")).to_have_count(1)
    page.shots.take(page, "real-clip-session")

    data = page.evaluate("""async () => {
        const id = location.hash.split('/').pop();
        const saved = JSON.parse(localStorage.getItem('rollcall.auth'));
        const r = await fetch(window.ROLLCALL_CONFIG.apiBaseUrl + '/sessions/' + id,
                              {headers: {Authorization: 'Bearer ' + saved.token}});
        return r.json();
    }""")
    strangers = data["session"]["strangers"]
    gallery = page.locator(".strangers .stranger")
    expect(gallery).to_have_count(len(strangers))
    assert data["session"]["counts"]["unrecognised"] == len(strangers)
    if not strangers:
        pytest.fail("the face search found nobody unrecognised in the real clip")
    # Each once: no two unrecognised people are seen at the same place one after the other.
    page.shots.take(page, "real-clip-gallery")

    # Register the last one seen (in the audience); a face too small or blurred in
    # the video asks for a photo instead (a stand-in photo here: nobody labelled them).
    number = len(strangers)
    page.get_by_role("button", name=f"Register Person {number}").click()
    dialog = page.locator("dialog.dialog")
    dialog.get_by_label("Full name").fill("Audience Member")
    dialog.get_by_label("ID", exact=True).fill("HAM-2")
    dialog.get_by_role("button", name="Register").click()
    done = gallery.nth(number - 1).locator(".stranger__done")
    photo_error = dialog.locator('[data-error-for="photo"]')
    expect(done.or_(photo_error)).to_be_visible(timeout=60_000)
    if photo_error.is_visible():
        expect(photo_error).to_contain_text(re.compile("video|photo"))
        page.shots.take(page, "real-clip-asks-for-a-photo")
        dialog.get_by_label("Photo").set_input_files(
            str(faces_dir / "people" / "john_shimkus" / "1.jpg"))
        dialog.get_by_role("button", name="Register").click()
    expect(done).to_contain_text("Registered as HAM-2", timeout=60_000)
    page.shots.take(page, "real-clip-registered")
    page.watch.check()
