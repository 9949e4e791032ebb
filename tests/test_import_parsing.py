"""The site's bulk-import planning, run in node exactly as the page runs it:
CSV dialects (js/csv.js), the roster and matching photos to rows by file name
(js/importplan.js), photos inside a ZIP (js/zip.js over the vendored fflate),
and the row-by-row runner with its outcome file (js/importrun.js).
"""
import base64
import csv
import io
import json
import subprocess
import zipfile

import pytest

from ops import publish
from tests.support.node import require_node

JS_DIR = publish.SOURCE_DIR / "js"

# Calls one export of a site module with JSON arguments and prints the JSON
# answer. {"$bytes": base64} arguments become Uint8Arrays; File objects in
# the answer become {file: name, size, type, text (first bytes, latin1)}.
_CALL_SCRIPT = r"""
const [moduleUrl, name, argsJson] = process.argv.slice(2);
const mod = await import(moduleUrl);
const revive = (value) => {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === "object") {
    if ("$bytes" in value) return new Uint8Array(Buffer.from(value.$bytes, "base64"));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revive(v)]));
  }
  return value;
};
const plain = async (value) => {
  if (value instanceof File) {
    const bytes = new Uint8Array(await value.arrayBuffer());
    return { file: value.name, size: value.size, type: value.type,
             text: Buffer.from(bytes.slice(0, 40)).toString("latin1") };
  }
  if (Array.isArray(value)) return Promise.all(value.map(plain));
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = await plain(v);
    return out;
  }
  return value;
};
const answer = await mod[name](...revive(JSON.parse(argsJson)));
console.log(JSON.stringify(await plain(answer === undefined ? null : answer)));
"""


@pytest.fixture(scope="module")
def js(tmp_path_factory):
    node = require_node()
    script = tmp_path_factory.mktemp("js") / "call.mjs"
    script.write_text(_CALL_SCRIPT)

    def call(module, name, *args):
        done = subprocess.run([node, str(script), (JS_DIR / module).as_uri(), name,
                               json.dumps(args)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return call


def as_bytes(data):
    return {"$bytes": base64.b64encode(data).decode()}


def records(js, data):
    """The CSV's records as the page reads them: decode the bytes, then parse."""
    decoded = js("csv.js", "decodeText", as_bytes(data))
    return [r["fields"] for r in js("csv.js", "parseCsv", decoded["text"])]


# -- CSV dialects ----------------------------------------------------------------------
def test_utf8_with_and_without_bom_and_accents(js):
    text = "student_id,full_name\r\nS1,Zoë Ångström\r\nS2,李小龍\r\n"
    for data in (text.encode("utf-8"), b"\xef\xbb\xbf" + text.encode("utf-8")):
        assert records(js, data) == [["student_id", "full_name"], ["S1", "Zoë Ångström"],
                                     ["S2", "李小龍"]]


def test_bytes_that_are_not_utf8_are_read_as_windows_1252(js):
    answer = js("csv.js", "decodeText", as_bytes("id;name\nS1;Désirée\n".encode("cp1252")))
    assert answer == {"text": "id;name\nS1;Désirée\n", "encoding": "windows-1252"}


def test_semicolons_as_excel_writes_them_in_many_locales(js):
    data = "Student_ID;Full_Name;Email\nS1;Müller, Hans;hans@example.org\n".encode()
    assert records(js, data) == [["Student_ID", "Full_Name", "Email"],
                                 ["S1", "Müller, Hans", "hans@example.org"]]
    # Excel's "sep=" first line wins over counting.
    assert records(js, b"sep=;\nid;name,with comma\nS1;Ada, Countess\n") == [
        ["id", "name,with comma"], ["S1", "Ada, Countess"]]


def test_quoted_names_with_commas_quotes_and_line_breaks(js):
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # Python's csv module writes as Excel does
    rows = [["student_id", "full_name"], ["S1", "Lovelace, Ada"], ["S2", 'Ada "Countess" L.'],
            ["S3", "two\nlines"], ["S4", " spaced "]]
    writer.writerows(rows)
    # Spaces around an unquoted value are dropped (a name is trimmed anyway).
    assert records(js, buffer.getvalue().encode()) == rows[:-1] + [["S4", "spaced"]]


def test_blank_lines_and_trailing_spaces_are_skipped(js):
    data = b"\n\nstudent_id , full_name\n\nS1 ,  Ada  \n , \n\r\nS2,Bob\n\n"
    assert records(js, data) == [["student_id", "full_name"], ["S1", "Ada"], ["S2", "Bob"]]


def test_line_numbers_count_the_file_lines(js):
    found = js("csv.js", "parseCsv", 'id,name\n\nS1,"a\nb"\nS2,c\n')
    assert [r["line"] for r in found] == [1, 3, 5]


# -- the roster ------------------------------------------------------------------------
def roster(js, text):
    return js("importplan.js", "readRoster", text)


def test_headers_match_whatever_the_case_and_extra_columns_are_ignored(js):
    answer = roster(js, "Class;FULL_NAME;Notes;Student_Id;E-mail\n"
                        "7B;Ada Lovelace;likes maths;S-1;ada@example.org\n7B;Bob;;S-2;\n")
    assert answer["error"] is None
    assert [(r["line"], r["student_id"], r["full_name"], r["email"], r["problem"])
            for r in answer["rows"]] == [(2, "S-1", "Ada Lovelace", "ada@example.org", None),
                                         (3, "S-2", "Bob", "", None)]


def test_missing_columns_say_which_are_needed(js):
    answer = roster(js, "name,number\nAda,1\n")
    assert answer["rows"] == []
    assert "student_id and full_name" in answer["error"] and "“number”" in answer["error"]
    assert roster(js, "")["error"] == "The CSV file is empty."


def test_bad_ids_and_bad_rows_are_named(js):
    rows = roster(js, "student_id,full_name,email\nS 1,Ada,\nélève,Bob,\n,Carol,\nS4,,\n"
                      "S5,Eve,not-an-email\nS6,Fay,\n")["rows"]
    kinds = {r["line"]: (r["problem"] or {}).get("kind") for r in rows}
    assert kinds == {2: "bad_id", 3: "bad_id", 4: "bad_id", 5: "bad_row", 6: "bad_row", 7: None}


def test_a_value_our_outcome_file_protected_reads_back_as_written(js):
    [row] = roster(js, "student_id,full_name\n'-S1,'=Ada\n")["rows"]
    assert (row["student_id"], row["full_name"]) == ("-S1", "=Ada")


# -- matching photos -----------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("S-1.jpg", "S-1"), ("S-1.JPG", "S-1"), ("S-1.jpeg", "S-1"), ("S-1.Jpeg", "S-1"),
    ("S-1.png", "S-1"), ("S-1.PNG", "S-1"), ("class 7B/2024/S-1.jpg", "S-1"),
    ("a\\b\\S:2.jpg", "S:2"), ("S.1.2.jpg", "S.1.2"),
    ("S-1.gif", None), ("S-1.heic", None), ("S-1", None), ("notes.txt", None),
    (".jpg", None), ("._S-1.jpg", None), ("__MACOSX/x/S-1.jpg", None), ("folder/", None)])
def test_a_photo_stands_for_the_id_in_its_file_name(js, name, expected):
    assert js("importplan.js", "photoIdOf", name) == expected


def plan(js, text, names):
    rows = roster(js, text)["rows"]
    return js("importplan.js", "planImport", rows, [{"name": n} for n in names])


def test_the_plan_shows_matched_rows_and_every_problem(js):
    text = ("student_id,full_name\nS1,Ada\nS2,Bob\nS3,Carol\nS3,Carol again\nbad id,Dan\n"
            "S5,Eve\nS6,Fay\n")
    answer = plan(js, text, ["S1.jpg", "photos/S2.PNG", "S3.jpg", "S9.jpg", "S5.jpg",
                             "S5.png", "readme.txt", "S6.JPEG"])
    assert [(r["student_id"], r["photo"]["name"]) for r in answer["ready"]] == [
        ("S1", "S1.jpg"), ("S2", "photos/S2.PNG"), ("S6", "S6.JPEG")]
    assert answer["duplicateIds"] == [{"student_id": "S3", "lines": [4, 5]}]
    assert [r["student_id"] for r in answer["badIds"]] == ["bad id"]
    assert answer["unmatchedPhotos"] == ["S9.jpg"]
    assert answer["ignoredFiles"] == ["readme.txt"]
    assert [(r["student_id"], r["problem"]["kind"]) for r in answer["badRows"]] == [
        ("S5", "two_photos")]
    assert answer["noPhoto"] == []
    # Every row is in the plan, in the file's order, each with its problem or none.
    assert [r["line"] for r in answer["rows"]] == [2, 3, 4, 5, 6, 7, 8]


def test_a_row_without_a_photo_says_which_names_were_looked_for(js):
    answer = plan(js, "student_id,full_name\nS1,Ada\nS2,Bob\n", ["S1.png"])
    [missing] = answer["noPhoto"]
    assert missing["student_id"] == "S2"
    assert missing["problem"]["reason"] == "no photo named S2.jpg, .jpeg or .png"


def test_case_differences_match_only_when_one_row_is_meant(js):
    answer = plan(js, "student_id,full_name\ns-1,Ada\nS-2,Bob\ns-2,Bo\n", ["S-1.jpg", "S-2.jpg"])
    assert [(r["student_id"], r["photo"]["name"]) for r in answer["ready"]] == [
        ("s-1", "S-1.jpg"), ("S-2", "S-2.jpg")]
    assert [r["student_id"] for r in answer["noPhoto"]] == ["s-2"]


# -- ZIP -------------------------------------------------------------------------------
def test_a_zip_with_folders_and_other_files_gives_its_photos(js):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("class/", b"")
        archive.writestr("class/S-1.jpg", b"\xff\xd8\xff jpeg one", zipfile.ZIP_DEFLATED)
        archive.writestr("class/more/S-2.PNG", b"\x89PNG\r\n\x1a\n png two", zipfile.ZIP_STORED)
        archive.writestr("class/roster.xlsx", b"PK not a photo", zipfile.ZIP_DEFLATED)
        archive.writestr("__MACOSX/class/._S-1.jpg", b"resource fork", zipfile.ZIP_DEFLATED)
        archive.writestr("class/.DS_Store", b"finder", zipfile.ZIP_DEFLATED)
        archive.writestr("Zoë/S-3.jpeg", b"\xff\xd8\xff accent folder", zipfile.ZIP_DEFLATED)
    answer = js("zip.js", "photosInZip", as_bytes(buffer.getvalue()))
    photos = sorted(answer["photos"], key=lambda p: p["name"])
    assert [(p["name"], p["file"]["file"], p["file"]["type"], p["file"]["text"]) for p in photos] == [
        ("Zoë/S-3.jpeg", "S-3.jpeg", "image/jpeg", "\xff\xd8\xff accent folder"),
        ("class/S-1.jpg", "S-1.jpg", "image/jpeg", "\xff\xd8\xff jpeg one"),
        ("class/more/S-2.PNG", "S-2.PNG", "image/png", "\x89PNG\r\n\x1a\n png two")]
    assert sorted(answer["ignored"]) == ["__MACOSX/class/._S-1.jpg", "class/.DS_Store",
                                         "class/roster.xlsx"]


def test_a_damaged_zip_is_a_sentence_not_a_crash(js, tmp_path):
    script = tmp_path / "bad.mjs"
    script.write_text(
        f'import {{ photosInZip, ZipProblem }} from "{(JS_DIR / "zip.js").as_uri()}";\n'
        'try { photosInZip(new Uint8Array([80, 75, 3, 4, 1, 2, 3])); console.log("read"); }\n'
        'catch (e) { console.log(e instanceof ZipProblem ? e.message : "other " + e); }\n')
    done = subprocess.run([require_node(), str(script)], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.startswith("The ZIP file could not be read")


# -- running the import ------------------------------------------------------------------
# Runs importRow over rows with fake steps: a registry of who exists, photos
# that fail in given ways, and a count of how many run at once.
_RUN_SCRIPT = r"""
const run = await import(process.argv[2]);
const { rows, registered, failures, classId, hidden } = JSON.parse(process.argv[3]);
const people = new Map(Object.entries(registered));
const unseen = new Set(hidden);  // registered, but not visible to this user
const calls = [];
let running = 0, most = 0;
const wait = () => new Promise((r) => setTimeout(r, 5));
const apiError = (code, message, details) => Object.assign(new Error(message), { code, details });
const steps = {
  async find(id) { calls.push(`find ${id}`); await wait(); return people.has(id) && !unseen.has(id) ? { student_id: id, full_name: people.get(id) } : null; },
  async upload(file) { calls.push(`upload ${file}`); await wait(); return `key-${file}`; },
  async register(body) {
    running += 1; most = Math.max(most, running);
    await wait(); await wait();
    running -= 1;
    calls.push(`register ${body.student_id}`);
    const f = failures[body.student_id];
    if (f) throw apiError(f.code, f.message, f.details);
    people.set(body.student_id, body.full_name);
    return { student_id: body.student_id, full_name: body.full_name };
  },
  async setEmail(id, email) { calls.push(`email ${id} ${email}`); },
  enrol: classId ? async (id) => { calls.push(`enrol ${id}`); return people.has(id) ? { added: true, full_name: people.get(id) } : null; } : null,
  unenrol: async (id) => { calls.push(`unenrol ${id}`); },
};
const results = await run.runPool(rows, (row) => run.importRow(row, steps), { concurrency: 4 });
rows.forEach((row, i) => { row.result = results[i]; });
console.log(JSON.stringify({ results, most, calls, csv: run.outcomeCsv(rows) }));
"""


@pytest.fixture
def run_import(tmp_path):
    script = tmp_path / "run.mjs"
    script.write_text(_RUN_SCRIPT)

    def run(rows, registered=None, failures=None, class_id=None, hidden=()):
        done = subprocess.run(
            [require_node(), str(script), (JS_DIR / "importrun.js").as_uri(),
             json.dumps({"rows": rows, "registered": registered or {},
                         "failures": failures or {}, "classId": class_id,
                         "hidden": list(hidden)})],
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return run


def rows_of(*people):
    return [{"line": n + 2, "student_id": sid, "full_name": name, "email": email,
             "photo": {"name": f"{sid}.jpg", "file": f"{sid}.jpg"}, "problem": None}
            for n, (sid, name, email) in enumerate(people)]


def test_at_most_four_at_once_and_a_failing_row_does_not_stop_the_others(run_import):
    people = [(f"S{n}", f"Person {n}", "") for n in range(12)]
    answer = run_import(rows_of(*people), failures={
        "S3": {"code": "no_face", "message": "No face was found in the photo."},
        "S7": {"code": "several_faces", "message": "The photo shows 2 faces. Use a photo..."},
        "S8": {"code": "face_already_registered", "message": "This face is already...",
               "details": {"student_id": "S0", "full_name": "Person 0"}}})
    assert answer["most"] == 4
    outcomes = [(r["outcome"], r["reason"]) for r in answer["results"]]
    assert outcomes[3] == ("failed", "no face found")
    assert outcomes[7] == ("failed", "2 faces")
    assert outcomes[8] == ("failed", "face already registered as Person 0 (ID S0)")
    assert [o for o, _ in outcomes].count("registered") == 9
    assert sum(c.startswith("register ") for c in answer["calls"]) == 12


def test_running_again_skips_people_already_registered_with_the_same_name(run_import):
    rows = rows_of(("S1", "Zoë  Martin", "zoe@example.org"), ("S2", "Bob", ""),
                   ("S3", "Carol", ""))
    answer = run_import(rows, registered={"S1": "zoë martin", "S2": "Robert"}, class_id="c1")
    results = answer["results"]
    assert (results[0]["outcome"], results[0]["reason"]) == ("already registered", "")
    assert (results[1]["outcome"], results[1]["reason"]) == ("failed", "ID already used by Robert")
    assert results[2]["outcome"] == "registered"
    # Nothing was uploaded for the people already there; the one already registered
    # joins the class (a newcomer is enrolled by its registration request itself,
    # after the class said there is nobody with its ID).
    assert "upload S1.jpg" not in answer["calls"] and "upload S2.jpg" not in answer["calls"]
    assert sorted(c for c in answer["calls"] if c.startswith("enrol")) == ["enrol S1",
                                                                            "enrol S3"]


def test_into_a_class_someone_this_teacher_cannot_see_joins_if_the_name_matches(run_import):
    rows = rows_of(("S1", "Ada Lovelace", ""), ("S2", "Bob", ""))
    answer = run_import(rows, registered={"S1": "ada lovelace", "S2": "Robert"},
                        hidden={"S1", "S2"}, class_id="c1")
    results = answer["results"]
    assert results[0]["outcome"] == "already registered"
    assert (results[1]["outcome"], results[1]["reason"]) == ("failed", "ID already used by Robert")
    # Robert was put in the class by the look-up, and taken out again; no photo was sent.
    assert "unenrol S2" in answer["calls"] and "unenrol S1" not in answer["calls"]
    assert not any(c.startswith(("upload", "register")) for c in answer["calls"])


def test_an_id_registered_meanwhile_is_decided_by_a_second_look(run_import):
    answer = run_import(rows_of(("S1", "Ada", "")), failures={
        "S1": {"code": "duplicate_student_id", "message": "A student with ID S1 is..."}})
    # The fake registry has no S1, so the second look finds nobody: the API's refusal stands.
    assert answer["results"][0] == {"outcome": "failed",
                                    "reason": "ID already used by another person",
                                    "detail": "A student with ID S1 is..."}


def test_the_email_is_saved_after_registering(run_import):
    answer = run_import(rows_of(("S1", "Ada", "ada@example.org")))
    assert answer["calls"][-1] == "email S1 ada@example.org"


def test_the_outcome_file_lists_every_row_with_its_reason(js, run_import):
    rows = rows_of(("S1", "Ada", ""), ("S2", "=cmd", ""))
    answer = run_import(rows, failures={"S2": {"code": "no_face", "message": "No face."}})
    for row, result in zip(rows, answer["results"]):
        row["result"] = result
    rows.append({"line": 9, "student_id": "bad id", "full_name": "Dan, Jr", "email": "",
                 "photo": None, "problem": {"kind": "bad_id", "reason": "bad ID: use ..."}})
    rows.append({**rows_of(("S4", "Eve", ""))[0], "line": 10})  # the import was stopped
    text = js("importrun.js", "outcomeCsv", rows)
    assert text.startswith("\ufeff") and "\r\n" in text
    table = list(csv.reader(io.StringIO(text[1:])))
    assert table == [
        ["student_id", "full_name", "email", "photo", "outcome", "reason", "details"],
        ["S1", "Ada", "", "S1.jpg", "registered", "", ""],
        ["S2", "'=cmd", "", "S2.jpg", "failed", "no face found", "No face."],
        ["bad id", "Dan, Jr", "", "", "not sent", "bad ID: use ...", ""],
        ["S4", "Eve", "", "S4.jpg", "not sent", "the import stopped before this line", ""]]
    # The outcome file is itself a roster: fixed, it can be imported again.
    again = js("importplan.js", "readRoster", text)
    assert [r["student_id"] for r in again["rows"]] == ["S1", "S2", "bad id", "S4"]
    assert again["rows"][1]["full_name"] == "=cmd"


_STOP_SCRIPT = r"""
const run = await import(process.argv[2]);
const started = [];
let settled = 0;
const items = Array.from({ length: 20 }, (_, i) => i);
const results = await run.runPool(items, async (i) => {
  started.push(i);
  await new Promise((r) => setTimeout(r, 5 + (i % 3)));
  return i * 10;
}, { concurrency: 4, onSettled: () => { settled += 1; }, shouldStop: () => settled >= 6 });
console.log(JSON.stringify({ started, settled, results }));
"""


def test_stopping_lets_the_rows_in_flight_finish_and_starts_no_more(tmp_path):
    script = tmp_path / "stop.mjs"
    script.write_text(_STOP_SCRIPT)
    done = subprocess.run([require_node(), str(script), (JS_DIR / "importrun.js").as_uri()],
                          capture_output=True, text=True, timeout=60, check=True)
    answer = json.loads(done.stdout)
    started = answer["started"]
    # Nothing starts once 6 have settled; the (at most 4) in flight then finish.
    assert 6 <= len(started) <= 9 and answer["settled"] == len(started)
    assert started == list(range(len(started)))
    assert [r for r in answer["results"] if r is not None] == [i * 10 for i in started]


@pytest.mark.parametrize("numbers, expected", [
    ({"total": 40, "done": 0, "failed": 0, "startedAt": 0, "now": 5000},
     {"total": 40, "done": 0, "failed": 0, "left": 40, "secondsLeft": None}),
    ({"total": 40, "done": 8, "failed": 2, "startedAt": 0, "now": 30_000},
     {"total": 40, "done": 8, "failed": 2, "left": 30, "secondsLeft": 90}),
    ({"total": 3, "done": 2, "failed": 1, "startedAt": 0, "now": 9000},
     {"total": 3, "done": 2, "failed": 1, "left": 0, "secondsLeft": 0}),
])
def test_progress_counts_and_time_left_at_the_pace_so_far(js, numbers, expected):
    assert js("importrun.js", "progress", numbers) == expected


@pytest.mark.parametrize("seconds, text", [(None, ""), (0, ""), (12, "about 10 s left"),
                                           (3, "about 5 s left"), (90, "about 2 min left"),
                                           (600, "about 10 min left")])
def test_time_left_reads_as_a_person_says_it(js, seconds, text):
    assert js("importrun.js", "formatTimeLeft", seconds) == text


@pytest.mark.parametrize("student_id", [".", "..", "...", "." * 64])
def test_an_id_of_only_dots_is_a_bad_id_as_the_api_says(js, student_id):
    [row] = roster(js, f"student_id,full_name\n{student_id},Ada\n")["rows"]
    assert row["problem"]["kind"] == "bad_id"
    assert "not only dots" in row["problem"]["reason"]


def test_the_site_checks_student_ids_by_the_api_rule(js):
    from chalicelib.students import is_student_id
    samples = [".", "..", "...", ".a", "a.", "a..b", "S-1", "s_1:2", "x" * 64, "x" * 65, "",
               "S 1", "élève", "a/b", "-", ":", "_", "1.5"]
    in_the_site = [js("studentid.js", "isStudentId", value) for value in samples]
    assert in_the_site == [is_student_id(value) for value in samples]
