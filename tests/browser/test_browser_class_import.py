"""Importing into a class from its page, as its teacher, in Debian's Chromium.

Its own stack (its own face collection): people the admin registered outside
the teacher's classes are enrolled when the spreadsheet names them rightly,
and refused (and left out of the class) when the name is someone else's.
"""
import csv
import io
import re
import zipfile

import pytest
import requests

from tests.support.browser import ADMIN, TEACHER, require_browser, sign_in_home
from tests.support.stack import presigned_post

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]

sync_api = require_browser()
expect = sync_api.expect


def admin_api(stack):
    http = requests.Session()
    token = http.post(f"{stack.api_url}/auth/login",
                      json={"email": ADMIN[0], "password": ADMIN[1]}).json()["token"]
    http.headers["Authorization"] = f"Bearer {token}"

    def register(student_id, name, photo):
        upload = http.post(f"{stack.api_url}/uploads/photo",
                           json={"content_type": "image/jpeg"}).json()
        presigned_post(upload["upload"], photo.read_bytes(), "p.jpg", "image/jpeg").raise_for_status()
        answer = http.post(f"{stack.api_url}/students", json={
            "student_id": student_id, "full_name": name, "photo_key": upload["photo_key"]})
        assert answer.status_code == 201, answer.text
    return http, register


def test_a_teacher_imports_into_their_class(page, stack, faces_dir, tmp_path):
    http, register = admin_api(stack)
    register("C-1", "Barack Obama", faces_dir / "people/barack_obama/1.jpg")
    register("C-3", "Rose Leslie", faces_dir / "people/rose_leslie/1.jpg")
    made = http.post(f"{stack.api_url}/classes", json={"name": "7C", "teachers": [TEACHER[0]]})
    assert made.status_code == 201, made.text
    class_id = made.json()["class"]["class_id"]

    roster = tmp_path / "7C.csv"
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerows([["student_id", "full_name"], ["C-1", "Barack Obama"],
                      ["C-2", "Joe Biden"], ["C-3", "Rosa Leslie-Smith"]])
    roster.write_text(text.getvalue(), encoding="utf-8")
    archive = tmp_path / "7C.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(faces_dir / "people/barack_obama/2.jpg", "C-1.jpg")
        zipped.write(faces_dir / "people/joe_biden/2.jpg", "C-2.jpg")
        zipped.write(faces_dir / "people/kit_harington/2.jpg", "C-3.jpg")

    sign_in_home(page, stack, TEACHER)
    page.goto(stack.site_url + f"#/classes/{class_id}")
    page.get_by_role("link", name="Import people").click()
    expect(page.locator("h1")).to_have_text("Import people into 7C")
    expect(page.locator(".notice")).to_have_count(0)  # no "import from your class" hint
    page.get_by_label("CSV file").set_input_files(str(roster))
    page.get_by_label("Photos or ZIP").set_input_files(str(archive))
    page.get_by_role("button", name="Import 3 people").click()
    expect(page.locator(".import-summary")).to_have_text(
        re.compile(r"^1 registered, 1 already registered, 1 failed, 0 not sent\. "
                   r"Everyone imported or already registered is in 7C\."), timeout=240_000)
    rows = page.locator(".import-rows tbody tr")
    expect(rows.nth(2)).to_contain_text("ID already used by Rose Leslie")
    page.shots.take(page, "class-import")

    # The class holds the newcomer and the one already registered; not Rose.
    roster_now = http.get(f"{stack.api_url}/classes/{class_id}/students").json()["students"]
    assert sorted(p["student_id"] for p in roster_now) == ["C-1", "C-2"]
    page.get_by_role("link", name="Back to 7C").click()
    expect(page.locator("h1")).to_have_text("7C")
    page.watch.check()
