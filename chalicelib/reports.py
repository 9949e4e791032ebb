"""Exports: a session as CSV, a students x sessions matrix, a printable page.

CSV is written for Excel: UTF-8 with a byte-order mark (without it Excel
reads UTF-8 as the local code page and breaks non-ASCII names), CRLF line
ends, and every field quoted by the csv module when it holds a comma, quote
or newline. Text that begins with ``= + - @`` (or a tab / carriage return) is
prefixed with ``'`` so that a name such as ``=HYPERLINK(...)`` is shown as text
and never run as a formula (CSV formula injection).

The HTML report is rendered by jinja2 with autoescaping on, so names and
titles are always shown as text.
"""
import csv
import datetime
import io
import pathlib
import re

import jinja2

from chalicelib.attendance import PRESENT
from chalicelib.sessions import COMPLETED
from chalicelib.students import name_sort_key

TEMPLATES_DIR = pathlib.Path(__file__).resolve().parent / "templates"
BOM = "\ufeff"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                          autoescape=True, undefined=jinja2.StrictUndefined)


def safe_cell(value):
    """A CSV cell: None as empty, formula-looking text made inert with ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def to_csv(header, rows):
    """UTF-8-with-BOM CSV text (CRLF, minimal quoting) of ``header`` + ``rows``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([safe_cell(v) for v in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return BOM + out.getvalue()


def video_time(ms):
    """``ms`` into the video as ``m:ss`` (or ``h:mm:ss``); empty for None."""
    if ms is None:
        return ""
    seconds = int(ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: How statuses read on paper (the site says the same).
STATUS_WORDS = {"AWAITING_UPLOAD": "Waiting for upload", "PROCESSING": "Processing",
                "COMPLETED": "Completed", "FAILED": "Failed", "PRESENT": "Present",
                "ABSENT": "Absent"}


def plain_date(value):
    """``2026-03-02`` (or a date) as ``Mon 2 Mar 2026``, as the site writes it."""
    if not value:
        return ""
    day = value if isinstance(value, datetime.date) else datetime.date.fromisoformat(value)
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def plain_time(value, tz):
    """An ISO instant as ``Sun 29 Nov 2026, 20:45`` in ``tz`` (the configured zone)."""
    if not value:
        return ""
    when = datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    when = when.astimezone(tz)
    return f"{plain_date(when.date())}, {when:%H:%M}"


def _slug(text, limit=40):
    """An ASCII-only piece of a file name (headers cannot carry any Unicode)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text or "").strip("-")[:limit].strip("-") or "session"


#: The report holds no script and loads nothing: a browser is told to run or fetch none.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _download(body, content_type, filename=None, **extra_headers):
    headers = {"Content-Type": content_type, "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff", **extra_headers}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return {"body": body, "headers": headers, "status_code": 200}


class Reports:
    def __init__(self, sessions, attendance_store, students, settings, now=None):
        self._sessions = sessions  # SessionWorkflow
        self._attendance = attendance_store
        self._students = students
        self._settings = settings
        self._now = now or (lambda: datetime.datetime.now(settings.tz))

    def session_csv(self, session_id):
        """One row per student of the session, with the evidence and any correction."""
        detail = self._sessions.detail(session_id)
        session = detail["session"]
        header = ["Student ID", "Name", "Status", "Source", "Automatic result",
                  "Best similarity", "First seen", "Last seen", "Sightings",
                  "Corrected by", "Corrected at", "Reason"]
        rows = [[r["student_id"], r["full_name"], r["status"], r["source"], r["auto_status"],
                 r["similarity"], video_time(r["first_seen_ms"]),
                 video_time(r["last_seen_ms"]), r["sightings"], r["corrected_by"],
                 r["corrected_at"], r["reason"]] for r in detail["attendance"]]
        name = f"attendance-{session['date']}-{_slug(session['title'])}.csv"
        return _download(to_csv(header, rows), "text/csv; charset=utf-8", name)

    def matrix_csv(self, start=None, end=None):
        """Students (rows) x completed sessions from ``start`` to ``end`` (columns)."""
        sessions = [s for s in self._sessions.list()
                    if s["status"] == COMPLETED and (not start or s["date"] >= start)
                    and (not end or s["date"] <= end)]
        sessions.sort(key=lambda s: (s["date"], s["created_at"]))  # oldest column first
        names, cells = {}, {}
        for student in self._students.list_all():
            names[student["student_id"]] = student["full_name"]
        for column, session in enumerate(sessions):
            for row in self._attendance.rows(session["session_id"]):
                # A deleted student keeps the name the row was taken under.
                names.setdefault(row["student_id"], row["full_name"])
                cells[(row["student_id"], column)] = "P" if row["status"] == PRESENT else "A"
        header = (["Student ID", "Name"]
                  + [f"{s['date']} {s['title']}" for s in sessions]
                  + ["Present", "Sessions", "Rate"])
        lines = []
        order = sorted(({"student_id": k, "full_name": v} for k, v in names.items()),
                       key=name_sort_key)
        for student_id, name in ((s["student_id"], s["full_name"]) for s in order):
            marks = [cells.get((student_id, c), "") for c in range(len(sessions))]
            taken = sum(1 for m in marks if m)
            present = marks.count("P")
            rate = f"{100 * present / taken:.1f}%" if taken else ""
            lines.append([student_id, name, *marks, present, taken, rate])
        span = f"{start or 'start'}-to-{end or 'now'}"
        return _download(to_csv(header, lines), "text/csv; charset=utf-8",
                         f"attendance-{span}.csv")

    def session_html(self, session_id):
        """The printable page of one session (jinja2, autoescaped)."""
        detail = self._sessions.detail(session_id)
        html = _env.get_template("report.html").render(
            session=detail["session"], rows=detail["attendance"], video_time=video_time,
            plain_date=plain_date, words=lambda status: STATUS_WORDS.get(status, status or ""),
            plain_time=lambda value: plain_time(value, self._settings.tz),
            threshold=self._settings.match_threshold,
            min_sightings=self._settings.min_sightings,
            generated_at=f"{plain_time(self._now(), self._settings.tz)} "
                         f"({self._settings.time_zone})")
        return _download(html, "text/html; charset=utf-8",
                         **{"Content-Security-Policy": REPORT_CSP})
