"""The web app in a real browser (Debian's Chromium) against the one-machine stack.

One stack serves the module (starting it costs seconds); each test signs in
on its own page with its own people, so none depends on another. Every page
visited is saved under tests/artifacts/<test>/ for a person to look at.
"""
import csv
import io
import re

import pytest

from tests.support.browser import (ADMIN, PROCESSING_TIMEOUT_MS, TEACHER, nav, register,
                                   require_browser, sign_in)

sync_api = require_browser()
expect = sync_api.expect
pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]

XSS_NAME = "<img src=x onerror=alert(1)>"
# Registration photos, and different photos of the same people for the video.
ROSTER = [
    ("Barack Obama", "S-1001", "barack_obama/1.jpg", "barack_obama/2.jpg"),
    ("Rose Leslie", "S-1002", "rose_leslie/1.jpg", "rose_leslie/2.jpg"),
    ("Joe Biden", "S-1003", "joe_biden/2.jpg", None),  # registered, not in the video
]
def overlaps(a, b):
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_wrong_password_shows_the_error(page, stack):
    # With the keyboard only: the email field has the focus, Tab, Enter.
    page.goto(stack.site_url + "#/login")
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(TEACHER[0])
    page.keyboard.press("Tab")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    error = page.locator(".login .form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("email or password is not right")
    expect(page).to_have_url(re.compile(r"#/login$"))
    expect(page.get_by_label("Password")).to_have_value("")
    page.shots.take(page, "wrong-password")
    page.watch.check()


def test_expired_sign_in_goes_back_to_sign_in_then_where_you_were(page, stack):
    sign_in(page, stack, TEACHER)
    expect(page.locator("h1")).to_have_text("Sessions")
    # The server no longer accepts the token (expired, or the password changed).
    page.evaluate("""() => {
        const saved = JSON.parse(localStorage.getItem('rollcall.auth'));
        saved.token = saved.token.slice(0, -4) + 'AAAA';
        localStorage.setItem('rollcall.auth', JSON.stringify(saved));
    }""")
    page.goto(stack.site_url + "#/students")
    expect(page).to_have_url(re.compile(r"#/login$"))
    expect(page.locator(".login .notice")).to_contain_text("Sign in again")
    page.shots.take(page, "sent-back-to-sign-in")
    page.get_by_label("Email").fill(TEACHER[0])
    page.get_by_label("Password").fill(TEACHER[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"#/students$"))
    expect(page.locator("h1")).to_have_text("People")
    page.shots.take(page, "back-where-you-were")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"#/login$"))
    page.goto(stack.site_url + "#/sessions")
    expect(page).to_have_url(re.compile(r"#/login$"))  # signed out for real

    # A sign-in whose time is up is dropped before any call, with the same message.
    sign_in(page, stack, TEACHER)
    expect(page.locator("h1")).to_have_text("Sessions")
    page.evaluate("""() => {
        const saved = JSON.parse(localStorage.getItem('rollcall.auth'));
        saved.expires_at = Math.floor(Date.now() / 1000) - 1;
        localStorage.setItem('rollcall.auth', JSON.stringify(saved));
    }""")
    page.goto(stack.site_url + "#/upload")
    expect(page).to_have_url(re.compile(r"#/login$"))
    expect(page.locator(".login .notice")).to_contain_text("expired")
    page.get_by_label("Email").fill(TEACHER[0])
    page.get_by_label("Password").fill(TEACHER[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Upload a recording")
    page.watch.check()


def test_a_name_with_markup_shows_as_text(page, stack, faces_dir):
    sign_in(page, stack, ADMIN)
    nav(page, "People")
    expect(page.locator("h1")).to_have_text("People")

    # A photo with several faces: the server's message appears beside the photo.
    register(page, "Two People", "X-GROUP", faces_dir / "group" / "two_people.jpg")
    form = page.locator(".register-form")
    expect(form.get_by_label("Full name")).to_be_disabled()  # locked while the face is checked
    photo_error = page.locator('[data-error-for="photo"]')
    expect(photo_error).to_contain_text(re.compile(r"face", re.I), timeout=30_000)
    # Refused: what was typed is still there, and can be changed again.
    expect(form.get_by_label("Full name")).to_have_value("Two People")
    expect(form.get_by_label("ID", exact=True)).to_have_value("X-GROUP")
    expect(form.get_by_label("Full name")).to_be_enabled()
    expect(page.locator('.field[data-field="photo"]')).to_have_class(re.compile("field--invalid"))
    page.shots.take(page, "several-faces-error")

    register(page, XSS_NAME, "X-0001", faces_dir / "people" / "kit_harington" / "2.jpg")
    row = page.locator('tr[data-student-id="X-0001"]')
    expect(row).to_be_visible(timeout=30_000)
    name_cell = row.locator(".cell-name")
    expect(name_cell).to_have_text(XSS_NAME)
    assert name_cell.locator("img").count() == 0
    assert page.locator('img[src="x"]').count() == 0
    page.locator(".search__input").fill("onerror")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.shots.take(page, "markup-name-as-text")

    name_cell.get_by_role("link").click()
    expect(page.locator("h1")).to_have_text(XSS_NAME)
    page.shots.take(page, "person-page")
    page.get_by_role("button", name="Delete…").click()
    dialog = page.locator("dialog.dialog")
    expect(dialog.locator("h2")).to_have_text(f"Delete {XSS_NAME}?")
    page.shots.take(page, "delete-confirmation")
    dialog.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"#/students$"))
    expect(page.locator('tr[data-student-id="X-0001"]')).to_have_count(0)
    page.wait_for_timeout(300)  # an injected onerror would fire by now
    page.watch.check()


@pytest.mark.parametrize("student_id", ["..", "..."])
def test_an_id_of_only_dots_is_refused_before_anything_is_sent(page, stack, faces_dir,
                                                              student_id):
    sign_in(page, stack, ADMIN)
    nav(page, "People")
    expect(page.locator("h1")).to_have_text("People")
    sent = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    register(page, "Dot Dot", student_id, faces_dir / "people" / "kit_harington" / "1.jpg")
    # The API's own rule (a path cannot hold "." or ".."), said beside the field.
    expect(page.locator('[data-error-for="student_id"]')).to_have_text(
        "Use 1 to 64 letters, digits or . _ - : (no spaces or accents, not only dots).")
    assert sent == []
    page.shots.take(page, "dots-refused")
    page.watch.check()


def test_teacher_journey(page, stack, faces_dir, tmp_path):
    from tests.support.video_maker import make_video

    # An admin: a session without a class is taken against everyone registered
    # (a teacher's belongs to a class: see test_a_teacher_runs_one_class).
    sign_in(page, stack, ADMIN)
    expect(page.locator("h1")).to_have_text("Sessions")
    # Nobody registered yet: the first step is People, not an upload.
    empty = page.locator(".empty")
    expect(empty).to_contain_text("First register the people")
    expect(empty.get_by_role("link")).to_have_text("Register people")
    assert empty.get_by_role("link").get_attribute("href") == "#/students"
    page.shots.take(page, "sessions-empty")

    # Register three people with real photos.
    nav(page, "People")
    for full_name, student_id, photo, _ in ROSTER:
        register(page, full_name, student_id, faces_dir / "people" / photo)
        expect(page.locator(f'tr[data-student-id="{student_id}"] .cell-name')).to_have_text(
            full_name, timeout=30_000)
        # The toast that says so leaves the form's button free.
        toast = page.locator(".toast", has_text=f"{full_name} is registered")
        expect(toast).to_be_visible()
        assert not overlaps(toast.bounding_box(), page.locator(".register-form").get_by_role(
            "button", name="Register").bounding_box())
    for _, student_id, _, _ in ROSTER:  # each thumbnail loads: the presigned GET works
        page.wait_for_function("""id => {
            const img = document.querySelector(`tr[data-student-id="${id}"] .avatar img`);
            return img && img.complete && img.naturalWidth > 0;
        }""", arg=student_id)
    # Each thumbnail is cropped around the face the API says is there.
    expect(page.locator("tbody .avatar img.avatar__photo--face")).to_have_count(len(ROSTER))
    page.shots.take(page, "people-registered")
    nav(page, "Sessions")  # now the next step is an upload
    expect(empty).to_contain_text("3 people are registered")
    expect(empty.get_by_role("link")).to_have_text("Upload a recording")
    page.shots.take(page, "sessions-empty-with-people")

    # A video where two of them appear (other photos than the registered ones).
    video = tmp_path / "biology-week-3.mp4"
    appearances = [
        {"image": str(faces_dir / "people" / ROSTER[0][3]), "start_s": 0.0, "end_s": 4.0,
         "x": 120, "y": 90, "height": 110, "label": "obama"},
        {"image": str(faces_dir / "people" / ROSTER[1][3]), "start_s": 1.0, "end_s": 4.0,
         "x": 400, "y": 100, "height": 110, "label": "rose"},
    ]
    make_video(str(video), appearances, size=(640, 360), fps=10, duration_s=4.0)

    nav(page, "Upload a recording")
    expect(page.locator("h1")).to_have_text("Upload a recording")
    date_input = page.get_by_label("Date of the class")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date_input.input_value())  # today by default
    page.get_by_label("Recording").set_input_files(str(video))
    page.get_by_label("Title").fill("Biology, week 3")
    date_input.fill("2026-03-02")
    page.get_by_label("Course").fill("BIO-101")
    page.evaluate("""() => {
        window.progressSeen = [];
        const bar = document.querySelector('progress');
        new MutationObserver(() => window.progressSeen.push(bar.value))
            .observe(bar, {attributes: true});
    }""")
    page.shots.take(page, "upload-form")
    # A slow uplink (about 4 s for this file) so the bar can be seen moving.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 20, "downloadThroughput": -1,
        "uploadThroughput": max(4096, video.stat().st_size // 4)})
    page.get_by_role("button", name="Upload and take attendance").click()
    page.wait_for_function("""() => {
        const bar = document.querySelector('progress');
        return bar && bar.value > 0 && bar.value < 100;
    }""")
    expect(page.locator(".progress")).to_be_visible()
    page.shots.take(page, "upload-in-progress")

    # The session's page follows the processing by itself.
    expect(page).to_have_url(re.compile(r"#/sessions/[^/]+$"), timeout=60_000)
    # Just uploaded by this page: never "waiting for upload" while S3's event comes.
    expect(page.locator(".session-status .badge")).to_have_text(
        re.compile("Uploaded|Processing|Completed"))
    assert "has not arrived" not in page.locator("main").inner_text()
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    seen = page.evaluate("window.progressSeen")  # same document: a single-page app
    assert seen and seen[-1] == 100, seen  # the bar followed the upload to the end
    assert any(0 < value < 100 for value in seen), seen  # ...through the middle
    expect(page.locator("h1")).to_have_text("Biology, week 3")
    badge = page.locator(".session-status .badge")
    expect(badge).to_have_text(re.compile("Processing|Completed"), timeout=30_000)
    page.shots.take(page, "session-processing")
    # Never reloaded by the test: the page follows the session by itself.
    expect(badge).to_have_text("Completed", timeout=PROCESSING_TIMEOUT_MS)
    present = page.locator(".attendance-present")
    absent = page.locator(".attendance-absent")
    expect(present.locator("tbody tr")).to_have_count(2)
    expect(absent.locator("tbody tr")).to_have_count(1)
    expect(present.locator(".cell-name")).to_have_text(["Barack Obama", "Rose Leslie"])
    expect(absent.locator(".cell-name")).to_have_text(["Joe Biden"])
    for cell in present.locator("td[data-label=Match]").all_text_contents():
        assert int(re.fullmatch(r"matched (\d+) %", cell).group(1)) >= 80
    lanes = page.locator(".timeline__lane")
    expect(lanes).to_have_count(2)
    assert lanes.first.locator(".timeline__mark").count() >= 2
    page.shots.take(page, "session-done")

    # Correct one row, with its reason.
    page.get_by_role("button", name="Mark present: Joe Biden").click()
    dialog = page.locator("dialog.dialog")
    dialog.get_by_role("button", name="Mark present").click()
    expect(dialog.locator('[data-error-for="reason"]')).to_contain_text("Say why")
    dialog.get_by_label("Reason").fill("Sat outside the camera's view")
    page.shots.take(page, "correction-dialog")
    dialog.get_by_role("button", name="Mark present").click()
    expect(present.locator("tbody tr")).to_have_count(3)
    expect(absent.locator("tbody tr")).to_have_count(0)
    biden = present.locator('tr[data-student-id="S-1003"]')
    expect(biden.locator(".correction")).to_contain_text("Sat outside the camera's view")
    # The correction's note does not squeeze the ID onto two lines.
    for cell in present.locator(".cell-id").all():
        lines = cell.evaluate("""el => {
            const range = document.createRange();
            range.selectNodeContents(el);
            return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
        }""")
        assert lines == 1, cell.inner_text()
    page.shots.take(page, "session-corrected")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    # The timeline fits its frame, with whole names (on their own lines).
    page.wait_for_function("""() => {
        const box = document.querySelector('.timeline');
        const svg = box && box.querySelector('svg');
        return svg && svg.getBoundingClientRect().width <= box.clientWidth + 1;
    }""")
    expect(page.locator(".timeline__name")).to_have_text(["Barack Obama", "Rose Leslie"])
    # On a phone, sightings merge into bars instead of a blur of dots.
    expect(page.locator(".timeline__mark")).to_have_count(0)
    assert page.locator(".timeline__bar").count() >= 2
    page.shots.take(page, "session-on-a-phone")
    page.set_viewport_size({"width": 1280, "height": 860})

    # The CSV, fetched with the token and saved by the browser.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == "2026-03-02-Biology-week-3.csv"
    raw = open(download.path(), "rb").read()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for spreadsheets
    rows = {row["Student ID"]: row for row in csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))}
    assert set(rows) == {"S-1001", "S-1002", "S-1003"}
    assert rows["S-1001"]["Status"] == "PRESENT" and rows["S-1001"]["Source"] == "auto"
    assert rows["S-1002"]["Status"] == "PRESENT"
    assert rows["S-1003"]["Status"] == "PRESENT" and rows["S-1003"]["Source"] == "manual"
    assert rows["S-1003"]["Automatic result"] == "ABSENT"
    assert rows["S-1003"]["Reason"] == "Sat outside the camera's view"
    assert rows["S-1003"]["Corrected by"] == ADMIN[0]

    # The printable report, in its sandboxed frame.
    page.get_by_role("link", name="Printable report").click()
    frame = page.frame_locator("iframe.report-frame")
    expect(frame.locator("body")).to_contain_text("Joe Biden")
    page.shots.take(page, "printable-report")
    page.set_viewport_size({"width": 390, "height": 844})  # the report fits a phone too
    page.wait_for_function("""() => {
        const frame = document.querySelector('iframe.report-frame');
        const doc = frame.contentDocument;
        const root = doc && doc.documentElement;
        return root && doc.querySelector('table')
            && root.scrollWidth <= root.clientWidth + 1  // nothing wider than the frame
            && frame.clientHeight >= doc.body.getBoundingClientRect().bottom;  // nor cut
    }""")
    page.shots.take(page, "printable-report-on-a-phone")
    page.set_viewport_size({"width": 1280, "height": 860})

    # The history, and one person's attendance rate.
    nav(page, "Sessions")
    row = page.locator("tbody tr").first
    expect(row.locator(".badge")).to_have_text("Completed")
    expect(row).to_contain_text("3 of 3 present")
    page.shots.take(page, "sessions-history")
    # Everyone against every session of March, for a spreadsheet.
    page.get_by_label("From").fill("2026-03-01")
    page.get_by_label("To").fill("2026-03-31")
    with page.expect_download() as download_info:
        page.locator(".export-form").get_by_role("button", name="Download CSV").click()
    matrix = download_info.value
    assert matrix.suggested_filename == "attendance-2026-03-01-to-2026-03-31.csv"
    text = open(matrix.path(), "rb").read().decode("utf-8-sig")
    lines = {row["Student ID"]: row for row in csv.DictReader(io.StringIO(text))}
    assert {k: v["2026-03-02 Biology, week 3"] for k, v in lines.items()} == {
        "S-1001": "P", "S-1002": "P", "S-1003": "P"}
    row.get_by_role("link", name="Biology, week 3").click()
    page.locator('.attendance-present tr[data-student-id="S-1002"] a').click()
    expect(page.locator("h1")).to_have_text("Rose Leslie")
    expect(page.locator(".rate__value")).to_have_text("100%")
    expect(page.locator(".table--history tbody tr")).to_have_count(1)
    page.wait_for_function("""() => {
        const img = document.querySelector('.avatar--large img.avatar__photo--face');
        return img && img.complete && img.naturalWidth > 0;
    }""")
    page.shots.take(page, "person-history")
    page.watch.check()


def test_a_failed_recording_shows_why_and_can_be_uploaded_again(page, stack, faces_dir,
                                                                tmp_path):
    from tests.support.video_maker import make_video

    from tests.support.stack import presigned_post

    sign_in(page, stack, ADMIN)  # a session without a class
    expect(page.locator("h1")).to_have_text("Sessions")
    # The site refuses a renamed text file before sending it (see
    # test_browser_uploads.py); another client sends one anyway, as the session's video.
    created = page.evaluate("""async () => {
        const saved = JSON.parse(localStorage.getItem('rollcall.auth'));
        const answer = await fetch(window.ROLLCALL_CONFIG.apiBaseUrl + '/sessions', {
            method: 'POST', body: JSON.stringify({title: 'Broken recording', content_type: 'video/mp4'}),
            headers: {Authorization: 'Bearer ' + saved.token, 'Content-Type': 'application/json'}});
        return answer.json();
    }""")
    sent = presigned_post(created["upload"], b"this is not a video, whatever its name says" * 100,
                          "lecture.mp4", "video/mp4")
    assert sent.status_code in (200, 201, 204), sent.text
    page.goto(f"{stack.site_url}#/sessions/{created['session']['session_id']}")
    failure = page.locator(".notice--error")
    expect(failure).to_contain_text("could not be processed", timeout=60_000)
    reason = failure.locator(".failure-reason").inner_text()
    assert len(reason) > 20, reason  # a sentence a teacher can act on
    # The file is the problem: retrying it cannot help, another file can.
    expect(failure.get_by_role("button", name="Try again")).to_have_count(0)
    expect(failure.get_by_role("button", name="Upload the video again")).to_be_visible()
    page.shots.take(page, "session-failed")

    page.get_by_role("link", name="All sessions").click()
    row = page.locator("tbody tr", has_text="Broken recording")
    expect(row.locator(".badge")).to_have_text("Failed")
    expect(row.locator(".failure-reason")).to_have_text(reason)
    expect(row.get_by_role("button", name="Try again")).to_have_count(0)
    page.shots.take(page, "sessions-with-a-failure")
    row.get_by_role("link", name="Upload the video again").click()
    expect(page.locator("h1")).to_have_text("Broken recording")

    # A good video this time, into the same session.
    video = tmp_path / "lecture-again.mp4"
    make_video(str(video), [{"image": str(faces_dir / "people" / ROSTER[1][3]),
                             "start_s": 0.0, "end_s": 2.0, "x": 200, "y": 80,
                             "height": 110, "label": "rose"}],
               size=(480, 270), fps=10, duration_s=2.0)
    page.get_by_label("Video file").set_input_files(str(video))
    page.get_by_role("button", name="Upload the video again").click()
    badge = page.locator(".session-status .badge")
    expect(badge).to_have_text(re.compile("Uploaded|Processing|Completed"), timeout=30_000)
    page.shots.take(page, "session-uploaded-again")
    expect(badge).to_have_text("Completed", timeout=PROCESSING_TIMEOUT_MS)
    expect(page.locator(".notice--error")).to_have_count(0)
    page.shots.take(page, "session-done-after-upload-again")
    page.get_by_role("link", name="All sessions").click()
    expect(page.locator("tbody tr", has_text="Broken recording").locator(".badge")).to_have_text(
        "Completed")
    page.watch.check()
