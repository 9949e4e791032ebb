"""CSV exports (one session, the students x sessions matrix) and the printable
report, with names that break naive CSV and HTML."""
import csv
import io
import json
import re

import pytest

from chalicelib.reports import safe_cell, to_csv, video_time
from tests.fakes.drivers import add_students, run_session
from tests.fakes.video_search import seen

pytestmark = pytest.mark.usefixtures("video_search")

AWKWARD = [
    ("s1", 'O\'Brien, "Pat"'),
    ("s2", "Line one\nline two"),
    ("s3", "=HYPERLINK(\"http://evil.example\",\"click\")"),
    ("s4", "Zoë Ångström 李小龍"),
    ("s5", "@SUM(A1:A9)"),
    ("s6", "<script>alert('x')</script>"),
]


def read_csv(response):
    """Check the bytes Excel would get, and answer the parsed rows."""
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = response.body if isinstance(response.body, bytes) else response.body.encode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf")  # the UTF-8 byte-order mark
    text = raw.decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text, newline="")))


def test_cells_that_look_like_formulas_are_made_text():
    assert [safe_cell(v) for v in ("=1+2", "+1", "-1", "@x", "\tx", "plain", None, 3.5)] == [
        "'=1+2", "'+1", "'-1", "'@x", "'\tx", "plain", "", 3.5]
    assert to_csv(["a"], [["x,y"]]) == '\ufeffa\r\n"x,y"\r\n'
    assert [video_time(v) for v in (None, 0, 61_500, 3_725_000)] == ["", "0:00", "1:01",
                                                                     "1:02:05"]


def test_session_csv_with_awkward_names_opens_as_written(api, admin_headers, services,
                                                         video_search):
    add_students(services, AWKWARD)
    persons = seen("s1", 0, [61_000, 62_000], similarity=91.5) + seen("s4", 1, [0, 1])
    detail = run_session(api, admin_headers, services, video_search, persons,
                         title="Maths, \"Group\" 1", date="2024-10-01")
    sid = detail["session"]["session_id"]
    api.http.patch(f"/sessions/{sid}/attendance/s2", headers=admin_headers,
                   body=json.dumps({"status": "PRESENT", "reason": "=cmd|' /C calc'!A0"}))
    response = api.http.get(f"/sessions/{sid}/export.csv", headers=admin_headers)
    rows = read_csv(response)
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="attendance-2024-10-01-Maths-Group-1.csv"')
    header, body = rows[0], rows[1:]
    assert header[:3] == ["Student ID", "Name", "Status"]
    by_id = {row[0]: dict(zip(header, row)) for row in body}
    assert len(body) == len(AWKWARD)
    assert by_id["s1"]["Name"] == 'O\'Brien, "Pat"'
    assert by_id["s1"]["Status"] == "PRESENT" and by_id["s1"]["Best similarity"] == "91.5"
    assert by_id["s1"]["First seen"] == "1:01" and by_id["s1"]["Sightings"] == "2"
    assert by_id["s2"]["Name"] == "Line one\nline two"
    assert by_id["s2"]["Source"] == "manual" and by_id["s2"]["Automatic result"] == "ABSENT"
    assert by_id["s2"]["Reason"] == "'=cmd|' /C calc'!A0"
    assert by_id["s2"]["Corrected by"] == "admin@example.org"
    assert by_id["s3"]["Name"] == "'=HYPERLINK(\"http://evil.example\",\"click\")"
    assert by_id["s4"]["Name"] == "Zoë Ångström 李小龍"
    assert by_id["s5"]["Name"] == "'@SUM(A1:A9)"


def test_matrix_over_a_date_range(api, admin_headers, services, video_search, no_table_scans):
    add_students(services, [("s1", "Ada, Countess"), ("s2", "Grace")])
    run_session(api, admin_headers, services, video_search, seen("s1", 0, [0, 1]),
                title="Before", date="2024-08-31")
    run_session(api, admin_headers, services, video_search, seen("s1", 0, [0, 1]),
                title="=First", date="2024-09-02")
    run_session(api, admin_headers, services, video_search,
                seen("s1", 0, [0, 1]) + seen("s2", 1, [0, 1]), title="Second", date="2024-09-09")
    run_session(api, admin_headers, services, video_search, [], title="After",
                date="2024-10-01")
    add_students(services, [("s3", "Newcomer")])  # registered after every session
    response = api.http.get("/attendance/export.csv?from=2024-09-01&to=2024-09-30",
                            headers=admin_headers)
    rows = read_csv(response)
    assert rows[0] == ["Student ID", "Name", "2024-09-02 =First",
                       "2024-09-09 Second", "Present", "Sessions", "Rate"]
    assert rows[1:] == [["s1", "Ada, Countess", "P", "P", "2", "2", "100.0%"],
                        ["s2", "Grace", "A", "P", "1", "2", "50.0%"],
                        ["s3", "Newcomer", "", "", "0", "0", ""]]
    everything = read_csv(api.http.get("/attendance/export.csv", headers=admin_headers))
    assert len(everything[0]) == 2 + 4 + 3


def test_matrix_with_a_bad_range_is_a_400(api, admin_headers):
    for query, field in [("from=2024-13-01", "from"), ("to=yesterday", "to"),
                         ("from=2024-09-30&to=2024-09-01", "from")]:
        response = api.http.get(f"/attendance/export.csv?{query}", headers=admin_headers)
        assert response.status_code == 400, query
        assert response.json_body["error"]["details"]["field"] == field, query


def test_printable_report_escapes_what_people_typed(api, admin_headers, services,
                                                    video_search):
    add_students(services, AWKWARD)
    detail = run_session(api, admin_headers, services, video_search,
                         seen("s6", 0, [0, 2500], similarity=88.0),
                         title="<b>Bold</b> & co", course="CS<1>")
    sid = detail["session"]["session_id"]
    api.http.patch(f"/sessions/{sid}/attendance/s1", headers=admin_headers,
                   body=json.dumps({"status": "PRESENT", "reason": "<img src=x onerror=alert(1)>"}))
    response = api.http.get(f"/sessions/{sid}/report", headers=admin_headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "<script" not in response.body.decode() and "onclick" not in response.body.decode()
    html = response.body.decode() if isinstance(response.body, bytes) else response.body
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>Bold" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in html and "CS&lt;1&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Zoë Ångström 李小龍" in html
    assert "88.0" in html and "0:02" in html
    assert "Present: <strong>2</strong>" in html
    # Plain words and times in the configured zone, not stored values.
    assert "Completed" in html and "status: completed" not in html
    assert re.search(r"on (Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}", html)
    assert "+00:00" not in html
