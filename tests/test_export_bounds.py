"""The date-range CSV reads its sessions' rows a few at a time, and has a ceiling.

One query per session in sequence could pass API Gateway's 29 s on a long
range; the queries run EXPORT_WORKERS at once and at most MAX_EXPORT_SESSIONS
sessions are read (more: 400, choose a shorter range).
"""
import csv
import io
import threading
import time

from chalicelib import reports
from tests.fakes.drivers import add_students, run_session
from tests.fakes.video_search import seen


def _csv(response):
    assert response.status_code == 200, response.body
    return list(csv.reader(io.StringIO(response.body.decode("utf-8-sig"))))


def test_the_rows_of_many_sessions_are_read_concurrently_and_bounded(
        api, admin_headers, services, video_search, monkeypatch):
    add_students(services, [("s1", "Ada"), ("s2", "Grace")])
    for day in range(1, 13):
        run_session(api, admin_headers, services, video_search,
                    seen("s1", 0, [0, 1]) + (seen("s2", 1, [0, 1]) if day % 2 else []),
                    title=f"Day {day}", date=f"2024-09-{day:02d}")
    expected = _csv(api.http.get("/attendance/export.csv", headers=admin_headers))
    monkeypatch.setattr(reports, "EXPORT_WORKERS", 4)
    real_rows = services.reports._attendance.rows
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_rows(session_id):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.1)  # a slow query: in sequence 12 take 1.2 s
        try:
            return real_rows(session_id)
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr(services.reports._attendance, "rows", slow_rows)
    rows = _csv(api.http.get("/attendance/export.csv", headers=admin_headers))
    assert rows == expected  # same file, columns in date order
    assert rows[1] == ["s1", "Ada"] + ["P"] * 12 + ["12", "12", "100.0%"]
    assert 1 < most[0] <= 4


def test_a_range_with_too_many_sessions_is_refused(api, admin_headers, services, video_search,
                                                   monkeypatch):
    add_students(services, [("s1", "Ada")])
    for day in range(1, 4):
        run_session(api, admin_headers, services, video_search, seen("s1", 0, [0, 1]),
                    title=f"Day {day}", date=f"2024-09-{day:02d}")
    monkeypatch.setattr(reports, "MAX_EXPORT_SESSIONS", 2)
    refused = api.http.get("/attendance/export.csv", headers=admin_headers)
    assert refused.status_code == 400
    assert refused.json_body["error"]["code"] == "range_too_large"
    shorter = api.http.get("/attendance/export.csv?from=2024-09-02", headers=admin_headers)
    assert shorter.status_code == 200
