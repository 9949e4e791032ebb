"""Video uploads in a real browser (Debian's Chromium) against the one-machine stack:
they keep going while the teacher moves around the site, they survive a dropped
connection and a reload (resuming from the parts S3 has), and a renamed
non-video is refused before a byte is sent.

The videos here are made of an MP4 header and filler: they pass the magic-byte
checks (browser and server) and are big enough for several 8 MiB parts; the
face search then fails on them, which is not what these tests look at. Each
test compares what S3 stores with the file.
"""
import hashlib
import re
import urllib.parse

import pytest

from tests.support.browser import nav, require_browser, sign_in_home

sync_api = require_browser()
expect = sync_api.expect
pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.slow]

# An admin: these sessions belong to no class (a teacher's must name one).
TEACHER = ("uploader@example.org", "uploader password 1", "admin")
ADMIN = ("upload-admin@example.org", "upload admin password", "admin")
CLASS_TEACHER = ("class-teacher@example.org", "class teacher password", "teacher")
#: The users the module's stack starts with (tests/browser/conftest.py reads it).
STACK_USERS = (TEACHER, ADMIN, CLASS_TEACHER)
MIB = 1024 * 1024
PART = 8 * MIB


def fake_video(path, size, seed):
    """An MP4 header, then ``size`` bytes of filler that differ for each seed."""
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    block = b"".join(hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(2048))
    with open(path, "wb") as out:
        out.write(head)
        left = size - len(head)
        while left > 0:
            out.write(block[:left])
            left -= len(block)
    return path


def slow_uplink(page, bytes_per_second):
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 5, "downloadThroughput": -1,
        "uploadThroughput": bytes_per_second})
    return cdp


class PartLog:
    """Every PUT of a part the page sends: (part number, outcome)."""

    def __init__(self, page):
        self.sent = []
        self.failed = []
        page.on("requestfinished", lambda r: self._note(r, self.sent))
        page.on("requestfailed", lambda r: self._note(r, self.failed))

    @staticmethod
    def number(request):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
        return int(query["partNumber"][0]) if "partNumber" in query else None

    def _note(self, request, into):
        if request.method == "PUT" and self.number(request):
            into.append(self.number(request))


def start_upload(page, video, title):
    nav(page, "Upload a recording")
    expect(page.locator("h1")).to_have_text("Upload a recording")
    page.get_by_label("Recording").set_input_files(str(video))
    # A title from the file name, once the file is known to be a video.
    expect(page.get_by_label("Title")).to_have_value(video.stem.replace("-", " "))
    page.get_by_label("Title").fill(title)
    page.get_by_role("button", name="Upload and take attendance").click()


def api_call(page, method, path, body=None):
    """Call the API with the page's sign-in; the JSON answer."""
    return page.evaluate("""async ([method, path, body]) => {
        const saved = JSON.parse(localStorage.getItem('rollcall.auth'));
        const headers = {Authorization: 'Bearer ' + saved.token};
        if (body) headers['Content-Type'] = 'application/json';
        const answer = await fetch(window.ROLLCALL_CONFIG.apiBaseUrl + path,
            {method, headers, body: body ? JSON.stringify(body) : undefined});
        return answer.json();
    }""", [method, path, body])


def api_get(page, path):
    return api_call(page, "GET", path)


def session_id_of(stack, title, page):
    """The id of the session titled ``title``."""
    sessions = api_get(page, "/sessions")["sessions"]
    return next(s["session_id"] for s in sessions if s["title"] == title)


def stored_matches(s3, stack, session_id, video):
    from ops.stage_config import stage_environment
    bucket = stage_environment("dev")["VIDEOS_BUCKET"]
    body = s3.get_object(Bucket=bucket, Key=f"videos/{session_id}/video.mp4")["Body"].read()
    return hashlib.sha256(body).digest() == hashlib.sha256(video.read_bytes()).digest()


def test_an_upload_keeps_going_while_the_teacher_moves_around(page, stack, s3, tmp_path):
    video = fake_video(tmp_path / "week-1.mp4", 2 * PART + 3 * MIB, seed=1)
    sign_in_home(page, stack, TEACHER)
    parts = PartLog(page)
    cdp = slow_uplink(page, 4 * MIB)  # about 5 s for this file
    start_upload(page, video, "Moving around")
    chip = page.locator(".upload-chip")
    expect(chip).to_contain_text("Uploading “Moving around”")
    page.wait_for_function("""() => {
        const bar = document.querySelector('.upload-form progress');
        return bar && bar.value > 0;
    }""")
    page.shots.take(page, "uploading")
    # Away to People (a link in the app: no reload, nothing asks).
    nav(page, "People")
    expect(page.locator("h1")).to_have_text("People")
    expect(chip).to_be_visible()
    page.shots.take(page, "people-page-while-uploading")
    nav(page, "Sessions")
    expect(page.locator("h1")).to_have_text("Sessions")
    # It finishes there: the header says so, and S3 has the whole file.
    expect(page.locator(".toast")).to_contain_text("“Moving around” is uploaded", timeout=60_000)
    expect(chip).to_have_count(0)
    page.shots.take(page, "uploaded-elsewhere")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    session_id = session_id_of(stack, "Moving around", page)
    assert stored_matches(s3, stack, session_id, video)
    assert sorted(parts.sent) == [1, 2, 3]
    # The session moved on from "waiting for upload" by itself.
    row = page.locator(f'tr[data-session-id="{session_id}"] .badge')
    expect(row).not_to_have_text("Waiting for upload", timeout=30_000)
    # When the analysis ends (here it fails: the file is filler), the page
    # the teacher is on says so.
    nav(page, "People")
    expect(page.locator(".toast")).to_contain_text("“Moving around” could not be processed",
                                                   timeout=60_000)
    page.shots.take(page, "analysis-finished-notice")
    page.watch.check()


def test_a_cancelled_upload_stops_and_says_so(page, stack, tmp_path):
    video = fake_video(tmp_path / "cancel-me.mp4", 3 * PART, seed=2)
    sign_in_home(page, stack, TEACHER)
    slow_uplink(page, 2 * MIB)
    start_upload(page, video, "Cancelled upload")
    chip = page.locator(".upload-chip")
    expect(chip).to_be_visible()
    chip.get_by_role("button", name="Cancel the upload of Cancelled upload").click()
    expect(chip).to_have_count(0)
    expect(page.locator('[data-error-for="video"]')).to_contain_text("cancelled")
    page.watch.check()


def test_an_interrupted_upload_resumes_and_completes(page, stack, s3, tmp_path):
    video = fake_video(tmp_path / "flaky.mp4", 3 * PART + MIB, seed=3)
    sign_in_home(page, stack, TEACHER)
    parts = PartLog(page)
    cut = {"left": 3}

    def drop_some(route):
        # The network drops part 2 three times, then lets it through.
        if PartLog.number(route.request) == 2 and cut["left"] > 0:
            cut["left"] -= 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r".*partNumber=.*"), drop_some)
    start_upload(page, video, "Flaky network")
    expect(page).to_have_url(re.compile(r"#/sessions/[0-9a-f]{32}$"), timeout=90_000)
    session_id = page.url.rsplit("/", 1)[1]
    assert stored_matches(s3, stack, session_id, video)
    assert parts.failed.count(2) == 3
    assert sorted(parts.sent) == [1, 2, 3, 4]  # the others were sent once each
    page.shots.take(page, "completed-after-drops")
    page.watch.check()


def test_a_reload_mid_upload_resumes_from_the_parts_s3_has(page, stack, s3, tmp_path):
    video = fake_video(tmp_path / "long-lecture.mp4", 4 * PART + 2 * MIB, seed=4)
    sign_in_home(page, stack, TEACHER)
    parts = PartLog(page)
    cdp = slow_uplink(page, 6 * MIB)
    start_upload(page, video, "Reloaded")
    page.wait_for_function("() => document.querySelector('.upload-chip') !== null")
    while len(parts.sent) < 2:
        page.wait_for_timeout(100)
    before = list(parts.sent)
    asked = []

    def on_dialog(dialog):
        asked.append(dialog.type)
        dialog.accept()

    page.remove_listener("dialog", page.watch._dialog)
    page.on("dialog", on_dialog)
    page.reload()
    assert asked == ["beforeunload"]  # closing or reloading asks first
    page.remove_listener("dialog", on_dialog)
    page.on("dialog", page.watch._dialog)
    cdp = slow_uplink(page, 40 * MIB)
    # The header points to the stopped upload; its session page asks for the file again.
    stopped = page.locator(".upload-chip--stopped")
    expect(stopped).to_contain_text("Upload of “Reloaded” stopped at")
    page.shots.take(page, "stopped-upload-after-reload")
    stopped.get_by_role("link").click()
    expect(page.locator(".notice")).to_contain_text("Choose the same file (long-lecture.mp4)")
    page.shots.take(page, "session-asks-for-the-same-file")
    session_id = page.url.rsplit("/", 1)[1]
    had = {p["part_number"] for p in api_get(page, f"/sessions/{session_id}/multipart")["parts"]}
    assert had and had != {1, 2, 3, 4, 5}, had
    parts.sent.clear()
    page.get_by_label("Video file").set_input_files(str(video))
    page.get_by_role("button", name="Carry on with the upload").click()
    expect(page.locator(".session-status .badge")).not_to_have_text(
        re.compile("Waiting for upload|Uploading"), timeout=90_000)
    assert stored_matches(s3, stack, session_id, video)
    # Only the parts S3 did not have went again.
    assert set(before) <= had
    assert sorted(parts.sent) == sorted({1, 2, 3, 4, 5} - had), (had, parts.sent)
    page.watch.check()


def test_a_renamed_text_file_is_refused_before_anything_is_sent(page, stack, tmp_path):
    text = tmp_path / "lecture.mp4"
    text.write_text("These are my notes, not a video.\n" * 50)
    sign_in_home(page, stack, TEACHER)
    requests = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    nav(page, "Upload a recording")
    page.get_by_label("Recording").set_input_files(str(text))
    error = page.locator('[data-error-for="video"]')
    expect(error).to_contain_text("not a video")
    page.get_by_label("Title").fill("Notes")
    page.get_by_role("button", name="Upload and take attendance").click()
    expect(error).to_contain_text("not a video")
    page.shots.take(page, "text-file-refused")
    assert not [r for r in requests if r[0] in ("POST", "PUT")], requests
    # A WebM (an EBML header naming its DocType) passes the same check.
    webm = tmp_path / "seminar-clip.webm"
    webm.write_bytes(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04"
                     b"\x42\xf3\x81\x08\x42\x82\x84webm" + bytes(200))
    page.get_by_label("Title").fill("")
    page.get_by_label("Recording").set_input_files(str(webm))
    expect(page.get_by_label("Title")).to_have_value("seminar clip")
    expect(error).to_be_empty()
    page.watch.check()


def test_a_session_is_renamed_and_deleted_from_its_page(page, stack):
    sign_in_home(page, stack, ADMIN)
    created = api_call(page, "POST", "/sessions", {
        "title": "Wrong title", "date": "2026-03-02", "content_type": "video/mp4"})
    session_id = created["session"]["session_id"]
    page.goto(f"{stack.site_url}#/sessions/{session_id}")
    expect(page.locator("h1")).to_have_text("Wrong title")
    page.get_by_role("button", name="Edit…").click()
    dialog = page.locator("dialog.dialog")
    expect(dialog.get_by_label("Title")).to_be_focused()
    dialog.get_by_label("Title").fill("")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator('[data-error-for="title"]')).to_contain_text("title")
    dialog.get_by_label("Title").fill("Chemistry, week 2")
    dialog.get_by_label("Date of the class").fill("2026-03-09")
    page.shots.take(page, "edit-dialog")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("Chemistry, week 2")
    expect(page.locator(".page-subtitle")).to_have_text("Mon 9 Mar 2026")
    # Enter on the delete dialog cancels: the focus starts on Cancel.
    page.get_by_role("button", name="Delete…").click()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    expect(page.locator("h1")).to_have_text("Chemistry, week 2")
    page.get_by_role("button", name="Delete…").click()
    page.shots.take(page, "delete-dialog")
    dialog.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(re.compile(r"#/sessions$"))
    expect(page.locator(f'tr[data-session-id="{session_id}"]')).to_have_count(0)
    # A range without sessions says so instead of downloading an empty file.
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    page.get_by_label("From").fill("2020-01-01")
    page.get_by_label("To").fill("2020-01-31")
    page.locator(".export-form").get_by_role("button", name="Download CSV").click()
    expect(page.locator(".export-form .form-error")).to_contain_text(
        "no sessions in this range")
    assert downloads == []
    # A teacher may rename a session of their class, but not delete it.
    made = api_call(page, "POST", "/classes", {"name": "Chemistry 2",
                                                "teachers": [CLASS_TEACHER[0]]})
    page.get_by_role("button", name="Sign out").click()
    sign_in_home(page, stack, CLASS_TEACHER)
    created = api_call(page, "POST", "/sessions", {
        "title": "Teacher session", "content_type": "video/mp4",
        "class_id": made["class"]["class_id"]})
    page.goto(f"{stack.site_url}#/sessions/{created['session']['session_id']}")
    expect(page.get_by_role("button", name="Edit…")).to_be_visible()
    expect(page.get_by_role("button", name="Delete…")).to_have_count(0)
    page.watch.check()
