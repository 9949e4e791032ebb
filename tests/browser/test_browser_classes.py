"""A teacher's day with one class among several, in Debian's Chromium against
the one-machine stack: the admin makes the teacher's account and the class,
the teacher imports the roster, uploads a recording for the class, reads the
register, corrects a cell and exports it; the other class stays invisible."""
import csv
import io
import re

import pytest

from tests.support.browser import nav, require_browser, sign_in, sign_in_home

sync_api = require_browser()
expect = sync_api.expect
pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]

ADMIN = ("head@example.org", "head password 123", "admin")
#: The users the module's stack starts with (tests/browser/conftest.py reads it).
STACK_USERS = (ADMIN,)
NEW_TEACHER = "bio.teacher@example.org"
TEACHERS_OWN_PASSWORD = "my own long password"
CLASS = "BIO 101 – Tuesday lab"
# (name, id, registration photo, photo in the video or None)
PEOPLE = [
    ("Barack Obama", "B-2001", "barack_obama/1.jpg", "barack_obama/2.jpg"),
    ("Rose Leslie", "B-2002", "rose_leslie/1.jpg", None),  # enrolled, not in the video
    ("Kit Harington", "B-2003", "kit_harington/1.jpg", "kit_harington/2.jpg"),  # not enrolled
]
PROCESSING_TIMEOUT_MS = 150_000


def test_a_teacher_runs_one_class(page, stack, faces_dir, tmp_path):
    from tests.support.video_maker import make_video

    # -- the admin: an account for the teacher, two classes, three people -------------
    sign_in_home(page, stack, ADMIN)
    nav(page, "Users")
    expect(page.locator("h1")).to_have_text("Users")
    page.get_by_label("Email").fill(NEW_TEACHER)
    page.get_by_role("button", name="Add the account").click()
    secret = page.locator(".one-time__password")
    expect(secret).to_be_visible()
    one_time = secret.inner_text().strip()
    assert len(one_time) >= 16
    expect(page.locator(f'tr[data-email="{NEW_TEACHER}"]')).to_contain_text("one-time password")
    page.shots.take(page, "users-one-time-password")

    nav(page, "Classes")
    for name, teachers in ((CLASS, NEW_TEACHER), ("CHEM 201", "")):
        page.get_by_label("Name", exact=True).fill(name)
        page.get_by_label("Teachers").fill(teachers)
        page.get_by_role("button", name="Create the class").click()
        expect(page.locator("tbody tr", has_text=name)).to_be_visible()
    page.shots.take(page, "classes-created")

    nav(page, "People")
    form = page.locator(".register-form")
    for full_name, student_id, photo, _ in PEOPLE:
        form.get_by_label("Full name").fill(full_name)
        form.get_by_label("ID", exact=True).fill(student_id)
        form.get_by_label("Photo").set_input_files(str(faces_dir / "people" / photo))
        expect(form.locator(".photo-picker__preview")).to_be_visible()
        form.get_by_role("button", name="Register").click()
        expect(page.locator(f'tr[data-student-id="{student_id}"]')).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Sign out").click()

    # -- the teacher: a password of their own first ------------------------------------
    sign_in(page, stack, (NEW_TEACHER, one_time))
    expect(page).to_have_url(re.compile(r"#/account$"))
    page.get_by_label("One-time password").fill(one_time)
    page.get_by_label("New password", exact=True).fill(TEACHERS_OWN_PASSWORD)
    page.get_by_label("The new password again").fill(TEACHERS_OWN_PASSWORD)
    page.get_by_role("button", name="Change the password").click()
    expect(page.locator("h1")).to_have_text("Sessions")
    # No Users page for a teacher, and only their own class.
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Users")).to_be_hidden()
    nav(page, "Classes")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text(CLASS)
    # A part a teacher does not get (the new-class form) is left out, not written "null".
    expect(page.locator(".view")).not_to_contain_text("null")
    page.shots.take(page, "teacher-classes")

    # Nobody in the class yet: the teacher sees nobody on People either.
    page.get_by_role("link", name=CLASS).click()
    expect(page.locator("h1")).to_have_text(CLASS)
    page.get_by_role("textbox", name="IDs").fill("B-2001\nB-2002\n\nNOT-REGISTERED\nB-2001\n")
    page.get_by_role("button", name="Import the list").click()
    results = page.locator(".table--import tbody tr")
    expect(results).to_have_count(4)
    expect(results.locator("td:nth-child(3)")).to_have_text(
        ["Added", "Added", "Unknown ID", "Already enrolled"])
    expect(page.locator(".table--roster tbody tr")).to_have_count(2)
    expect(page.locator(".view")).not_to_contain_text("null")  # no archived notice
    page.shots.take(page, "roster-imported")

    # -- a recording of the class: Obama (enrolled) and Kit (not enrolled) ---------------
    video = tmp_path / "bio-week-1.mp4"
    make_video(str(video), [
        {"image": str(faces_dir / "people" / PEOPLE[0][3]), "start_s": 0.0, "end_s": 3.0,
         "x": 120, "y": 90, "height": 110, "label": "obama"},
        {"image": str(faces_dir / "people" / PEOPLE[2][3]), "start_s": 0.0, "end_s": 3.0,
         "x": 400, "y": 100, "height": 110, "label": "kit"},
    ], size=(640, 360), fps=10, duration_s=3.0)
    page.get_by_role("link", name="Upload a recording").first.click()
    expect(page.locator("h1")).to_have_text("Upload a recording")
    expect(page.get_by_label("Class", exact=True)).to_have_value(re.compile(r"[0-9a-f]{32}"))
    page.get_by_label("Recording").set_input_files(str(video))
    page.get_by_label("Title").fill("Week 1")
    page.get_by_label("Date of the class").fill("2026-03-03")
    page.get_by_role("button", name="Upload and take attendance").click()
    expect(page).to_have_url(re.compile(r"#/sessions/[0-9a-f]{32}$"), timeout=60_000)
    expect(page.locator(".session-status .badge")).to_have_text(
        "Completed", timeout=PROCESSING_TIMEOUT_MS)
    expect(page.locator(".attendance-present .cell-name")).to_have_text(["Barack Obama"])
    expect(page.locator(".attendance-absent .cell-name")).to_have_text(["Rose Leslie"])
    apart = page.locator(".seen-not-enrolled tbody tr")
    expect(apart).to_have_count(1)
    expect(apart).to_contain_text("Kit Harington")
    expect(page.locator(".session-class__name")).to_have_text(CLASS)
    page.shots.take(page, "session-of-the-class")

    # -- the register: correct a cell, then export it -------------------------------------
    page.get_by_role("link", name="the class register").click()
    expect(page.locator("h1")).to_have_text(f"{CLASS}: register")
    page.get_by_label("From").fill("2026-03-01")
    page.get_by_label("To").fill("2026-03-31")
    page.get_by_role("button", name="Show").click()
    rose = page.locator('tr[data-student-id="B-2002"] .register__cell')
    expect(rose).to_have_text("A")
    expect(page.locator('tr[data-student-id="B-2001"] .register__cell')).to_have_text("P")
    page.shots.take(page, "register")
    rose.click()
    dialog = page.locator("dialog.dialog")
    dialog.get_by_label("Status").select_option("EXCUSED")
    dialog.get_by_label("Reason").fill("Doctor's note")
    dialog.get_by_role("button", name="Save the correction").click()
    expect(rose).to_have_text("E*")
    # Excused is not held against the rate: with only that session, there is none.
    expect(page.locator('tr[data-student-id="B-2002"] td').last).to_have_text("—")
    page.shots.take(page, "register-corrected")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("register-BIO-101")
    rows = list(csv.reader(io.StringIO(open(download.path(), "rb").read().decode("utf-8-sig"))))
    assert rows[0][:3] == ["Student ID", "Name", "2026-03-03 Week 1"]
    assert [r[:3] for r in rows[1:]] == [["B-2001", "Barack Obama", "P"],
                                         ["B-2002", "Rose Leslie", "E*"]]

    # Kit is not theirs to see (not enrolled); Rose is.
    nav(page, "People")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.goto(stack.site_url + "#/students/B-2003")
    expect(page.locator(".notice--error")).to_contain_text("Not found")
    page.watch.check()
