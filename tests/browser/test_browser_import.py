"""Bulk import and editing a person, in Debian's Chromium against the one-machine stack.

A teacher's spreadsheet (semicolons, a byte-order mark, accents) and a ZIP of
real photos from ../shared/faces: 12 rows, 2 of which cannot be registered.
Screenshots land in tests/artifacts/<test>/.
"""
import csv
import io
import re
import zipfile

import pytest
from PIL import Image

from tests.support.browser import ADMIN, TEACHER, nav, require_browser, sign_in_home

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.engine, pytest.mark.slow]

sync_api = require_browser()
expect = sync_api.expect

# One registration photo per identity, under the ID the spreadsheet gives.
PEOPLE = [
    ("S-2001", "Barack Obama", "barack_obama/1.jpg"),
    ("S-2002", "Joe Biden", "joe_biden/2.jpg"),
    ("S-2003", "Alex Lacamoire", "alex_lacamoire/1.jpg"),
    ("S-2004", "Kit Harington", "kit_harington/2.jpg"),
    ("S-2005", "Rose Leslie", "rose_leslie/1.jpg"),
    ("S-2006", "Lin-Manuel Miranda", "lin_manuel_miranda/1.jpg"),
    ("S-2007", "John Salley", "john_salley/1.jpg"),
    ("S-2008", "John Savage", "john_savage/1.jpg"),
    ("S-2009", "John Schneider", "john_schneider/1.jpg"),
    ("S-2010", "Jöhn Šimkus, Jr", "john_shimkus/1.jpg"),
]
TWO_FACES = ("S-2011", "Two People", "group/two_people.jpg")
NO_FACE = ("S-2012", "Nobody There", None)  # a plain grey picture
PROCESSING_MS = 240_000


def class_files(tmp_path, faces_dir):
    """The spreadsheet (as Excel writes it in a semicolon locale) and the ZIP."""
    rows = [(sid, name, f"{sid.lower()}@example.org") for sid, name, _ in PEOPLE]
    rows += [(TWO_FACES[0], TWO_FACES[1], ""), (NO_FACE[0], NO_FACE[1], "")]
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Student_ID", "Full_Name", "Email", "Notes"])
    for sid, name, email in rows:
        writer.writerow([sid, name, email, "7B"])
    roster = tmp_path / "class 7B.csv"
    roster.write_bytes(b"\xef\xbb\xbf" + text.getvalue().encode("utf-8"))
    grey = io.BytesIO()
    Image.new("RGB", (400, 400), (128, 128, 128)).save(grey, "JPEG")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for n, (sid, _, photo) in enumerate(PEOPLE):
            ext = ".JPG" if n % 3 == 0 else ".jpg"  # any case of the extension
            zipped.write(faces_dir / "people" / photo, f"7B/photos/{sid}{ext}")
        zipped.write(faces_dir / TWO_FACES[2], f"7B/photos/{TWO_FACES[0]}.jpeg")
        zipped.writestr(f"7B/{NO_FACE[0]}.jpg", grey.getvalue())
        zipped.write(faces_dir / "people/john_simm/1.jpg", "7B/photos/S-9999.jpg")
        zipped.writestr("7B/readme.txt", "not a photo")
        zipped.writestr("__MACOSX/7B/._S-2001.jpg", "resource fork")
    return roster, archive


def choose_files(page, roster, archive):
    page.get_by_label("CSV file").set_input_files(str(roster))
    page.get_by_label("Photos or ZIP").set_input_files(str(archive))


def stat(page, label):
    return page.locator(f'[data-stat="{label}"] .stat__value')


def test_import_a_class_from_a_spreadsheet_and_a_zip_then_again(page, stack, faces_dir,
                                                                tmp_path):
    roster, archive = class_files(tmp_path, faces_dir)
    sign_in_home(page, stack, ADMIN)
    nav(page, "People")
    page.get_by_role("link", name="Import from a spreadsheet").click()
    expect(page).to_have_url(re.compile(r"#/import$"))
    expect(page.locator("h1")).to_have_text("Import people")
    choose_files(page, roster, archive)

    # The preview, before anything is sent.
    expect(stat(page, "Ready to import")).to_have_text("12")
    expect(stat(page, "Photos without a row")).to_have_text("1")
    expect(stat(page, "Rows without a photo")).to_have_text("0")
    expect(stat(page, "Duplicate IDs")).to_have_text("0")
    expect(stat(page, "Bad IDs")).to_have_text("0")
    expect(page.locator('[data-problems="unmatched"]')).to_contain_text("7B/photos/S-9999.jpg")
    ignored = page.locator('[data-problems="ignored"]')
    expect(ignored).to_contain_text("readme.txt")
    page.shots.take(page, "preview")

    # Registering, 4 at once, with progress.
    page.get_by_role("button", name="Import 12 people").click()
    progress = page.locator(".import-progress")
    expect(progress).to_be_visible()
    detail = progress.locator(".progress__detail")
    expect(detail).to_contain_text(re.compile(r"^\d+ done · \d+ failed · \d+ left"))
    page.shots.take(page, "progress")
    # Once the pace is known, the time left is shown.
    expect(detail).to_contain_text(re.compile(r"about \d+ (s|min) left"), timeout=PROCESSING_MS)
    page.shots.take(page, "time-left")
    summary = page.locator(".import-summary")
    expect(summary).to_have_text(re.compile(r"^10 registered, 0 already registered, 2 failed, "
                                            r"0 not sent\."), timeout=PROCESSING_MS)
    expect(progress.locator(".progress__detail")).to_contain_text("10 done · 2 failed · 0 left")
    page.shots.take(page, "finished")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the outcome (CSV)").click()
    download = download_info.value
    assert download.suggested_filename.startswith("import-outcome")
    text = open(download.path(), encoding="utf-8-sig").read()
    outcome = {row["student_id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert len(outcome) == 12
    for sid, name, _ in PEOPLE:
        assert (outcome[sid]["full_name"], outcome[sid]["outcome"]) == (name, "registered")
    assert (outcome["S-2011"]["outcome"], outcome["S-2011"]["reason"]) == ("failed", "2 faces")
    assert (outcome["S-2012"]["outcome"], outcome["S-2012"]["reason"]) == ("failed",
                                                                          "no face found")
    assert outcome["S-2010"]["email"] == "s-2010@example.org"

    # The people page lists them, with the email kept.
    page.goto(stack.site_url + "#/students/S-2010")
    expect(page.locator("h1")).to_have_text("Jöhn Šimkus, Jr")
    expect(page.locator(".facts")).to_contain_text("s-2010@example.org")

    # The same files again: nobody is registered twice, the two failures stay.
    page.goto(stack.site_url + "#/import")
    choose_files(page, roster, archive)
    expect(stat(page, "Ready to import")).to_have_text("12")
    page.get_by_role("button", name="Import 12 people").click()
    expect(page.locator(".import-summary")).to_have_text(
        re.compile(r"^0 registered, 10 already registered, 2 failed"), timeout=PROCESSING_MS)
    expect(page.locator(".import-rows")).to_contain_text("Already registered")
    page.shots.take(page, "again")
    page.watch.check()


def test_edit_a_person_rename_photos_with_face_boxes_remove_and_replace(
        page, stack, faces_dir, tmp_path):
    sign_in_home(page, stack, ADMIN)
    page.goto(stack.site_url + "#/students")
    form = page.locator(".register-form")
    form.get_by_label("Full name").fill("John Simm")
    form.get_by_label("ID", exact=True).fill("E-1")
    form.get_by_label("Photo").set_input_files(str(faces_dir / "people/john_simm/2.jpg"))
    form.get_by_role("button", name="Register").click()
    expect(page.locator(".table--students")).to_contain_text("E-1", timeout=60_000)
    page.goto(stack.site_url + "#/students/E-1")
    expect(page.locator("h1")).to_have_text("John Simm")

    # One photo: its face box is drawn, and it cannot be removed.
    tiles = page.locator(".photo-tile")
    expect(tiles).to_have_count(1)
    expect(tiles.first.locator(".photo-tile__box")).to_be_visible()
    expect(tiles.first.get_by_role("button", name="Remove")).to_be_disabled()

    # Another photo of her, then remove the first one (the main photo).
    add = page.locator(".add-photo-form")
    add.get_by_label("Another photo").set_input_files(str(faces_dir / "people/john_simm/3.jpg"))
    add.get_by_role("button", name="Add photo").click()
    expect(tiles).to_have_count(2, timeout=60_000)
    page.shots.take(page, "two-photos")
    # The second becomes the main one, and back.
    second_id = tiles.nth(1).get_attribute("data-photo-id")
    tiles.nth(1).get_by_role("button", name="Make main").click()
    expect(tiles.first).to_have_attribute("data-photo-id", second_id)
    expect(tiles.first.locator(".photo-tile__main")).to_have_text("Main photo")
    tiles.nth(1).get_by_role("button", name="Make main").click()
    expect(tiles.first).not_to_have_attribute("data-photo-id", second_id)
    first_id = tiles.first.get_attribute("data-photo-id")
    tiles.first.get_by_role("button", name="Remove").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(tiles).to_have_count(1)
    assert tiles.first.get_attribute("data-photo-id") != first_id
    expect(tiles.first.locator(".photo-tile__main")).to_have_text("Main photo")

    # Replace the main photo with a third one of him.
    replace = page.locator(".replace-photo-form")
    replace.get_by_label("New main photo").set_input_files(
        str(faces_dir / "people/john_simm/4.jpg"))
    kept_id = tiles.first.get_attribute("data-photo-id")
    replace.get_by_role("button", name="Replace the main photo").click()
    expect(tiles.first).not_to_have_attribute("data-photo-id", kept_id, timeout=60_000)
    expect(tiles).to_have_count(1)

    # Rename: the page and the list follow.
    page.get_by_role("button", name="Rename…").click()
    rename = page.locator(".rename-form")
    rename.get_by_label("Full name").fill("John Simm-Smith")
    rename.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("John Simm-Smith")
    page.shots.take(page, "renamed")
    page.watch.check()


def test_a_teacher_is_sent_to_their_class_page_to_import(page, stack, tmp_path):
    sign_in_home(page, stack, TEACHER)
    page.goto(stack.site_url + "#/import")
    expect(page.locator("h1")).to_have_text("Import people")
    expect(page.locator(".notice")).to_contain_text("Import from your class’s page")
    # A CSV without the needed columns says which are needed, before any photo.
    roster = tmp_path / "wrong.csv"
    roster.write_text("name,number\nAda,1\n", encoding="utf-8")
    page.get_by_label("CSV file").set_input_files(str(roster))
    expect(page.locator(".import-preview")).to_contain_text(
        "The first line must name the columns student_id and full_name")
    page.shots.take(page, "teacher-and-wrong-columns")
    page.watch.check()


def test_a_folder_of_photos_is_matched_in_the_preview(page, stack, faces_dir, tmp_path):
    folder = tmp_path / "ID photos"
    (folder / "term 1").mkdir(parents=True)
    (folder / "term 1" / "F-1.jpg").write_bytes((faces_dir / "people/joe_biden/1.jpg").read_bytes())
    (folder / "F-2.PNG").write_bytes(b"\x89PNG\r\n\x1a\n not read before importing")
    (folder / "list.txt").write_text("not a photo")
    roster = tmp_path / "people.csv"
    roster.write_text("student_id,full_name\nF-1,Joe\nF-2,\"Doe, Jane\"\nF-3,Nobody\nF-1,Again\n"
                      "bad id,Bad\n", encoding="utf-8")
    sign_in_home(page, stack, ADMIN)
    page.goto(stack.site_url + "#/import")
    page.get_by_label("CSV file").set_input_files(str(roster))
    page.get_by_label("A folder of photos").set_input_files(str(folder))
    expect(stat(page, "Ready to import")).to_have_text("1")
    expect(stat(page, "Rows without a photo")).to_have_text("1")
    expect(stat(page, "Duplicate IDs")).to_have_text("1")
    expect(stat(page, "Bad IDs")).to_have_text("1")
    expect(page.locator('[data-problems="duplicates"]')).to_contain_text("F-1 on lines 2, 5")
    expect(page.locator('[data-problems="no-photo"]')).to_contain_text("F-3")
    expect(page.locator('[data-problems="ignored"]')).to_contain_text("list.txt")
    page.locator('[data-problems="ready"] summary').click()
    expect(page.locator('[data-problems="ready"]')).to_contain_text("Doe, Jane")
    expect(page.get_by_role("button", name="Import 1 person")).to_be_enabled()
    page.shots.take(page, "folder-preview")
    # On a phone the preview fits the width (nothing scrolls sideways).
    page.set_viewport_size({"width": 390, "height": 844})
    expect(stat(page, "Ready to import")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.shots.take(page, "folder-preview-phone")
    page.watch.check()
