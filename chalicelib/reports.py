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
import concurrent.futures
import csv
import datetime
import io
import pathlib
import re

import jinja2

from chalicelib.attendance import ABSENT, EXCUSED, LATE, PRESENT
from chalicelib.errors import InvalidInput
from chalicelib.sessions import COMPLETED, public_session
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
STATUS_WORDS = {"AWAITING_UPLOAD": "Waiting for upload", "CONVERTING": "Converting",
                "PROCESSING": "Processing",
                "COMPLETED": "Completed", "FAILED": "Failed", "PRESENT": "Present",
                "LATE": "Late", "ABSENT": "Absent", "EXCUSED": "Excused"}


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


#: Attendance queries an export runs at once, and the most sessions it reads: one
#: query per session, so 500 at 8 at a time is ~63 rounds of one query each (a
#: few seconds at tens of ms a query), inside API Gateway's 29 s.
EXPORT_WORKERS = 8
MAX_EXPORT_SESSIONS = 500

#: The grid's letter for each status; a corrected cell gets a ``*`` in CSV.
LETTERS = {PRESENT: "P", LATE: "L", ABSENT: "A", EXCUSED: "E"}


class Reports:
    def __init__(self, sessions, attendance_store, students, settings, now=None, access=None,
                 classes=None):
        self._sessions = sessions  # SessionWorkflow
        self._attendance = attendance_store
        self._students = students
        self._settings = settings
        self._access = access
        self._classes = classes
        self._now = now or (lambda: datetime.datetime.now(settings.tz))

    def session_csv(self, session_id, user=None):
        """One row per student of the session, with the evidence and any correction."""
        detail = self._sessions.detail(session_id, user)
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

    def _rows_by_session(self, sessions):
        """Every row of each session, by session id: the queries run
        :data:`EXPORT_WORKERS` at a time, and at most :data:`MAX_EXPORT_SESSIONS`
        sessions are read, so an export stays well inside API Gateway's 29 s."""
        if len(sessions) > MAX_EXPORT_SESSIONS:
            raise InvalidInput(
                f"The range holds more than {MAX_EXPORT_SESSIONS} sessions, the most an "
                "export takes. Choose a shorter range (from/to).",
                code="range_too_large", details={"field": "from"})
        ids = [s["session_id"] for s in sessions]
        if len(ids) <= 1:
            return {i: self._attendance.rows(i) for i in ids}
        with concurrent.futures.ThreadPoolExecutor(max_workers=EXPORT_WORKERS) as pool:
            return dict(zip(ids, pool.map(self._attendance.rows, ids)))

    def matrix_csv(self, start=None, end=None, class_id=None, user=None):
        """People (rows) x completed sessions between ``from`` and ``to`` (columns).

        With ``class_id``: that class's sessions and roster (a teacher's own
        classes only). Without: an admin's export of every completed session
        in the range (the day index, at most :data:`MAX_EXPORT_SESSIONS`) and
        every person (the name index, page by page): queries, never a scan."""
        if class_id:
            if user is not None:
                self._access.class_for(user, class_id)
            else:
                self._classes.require(class_id)
            grid = self.class_grid(class_id, start, end)
            sessions, names = grid["sessions"], {p["student_id"]: p["full_name"]
                                                 for p in grid["people"]}
            cells = {(p["student_id"], c): LETTERS.get(cell["status"], "")
                     for p in grid["people"] for c, cell in enumerate(p["cells"]) if cell}
        else:
            if user is not None and user["role"] != "admin":
                raise InvalidInput("Choose a class to export.", code="missing_field",
                                 details={"field": "class_id"})
            sessions = [public_session(s) for s in self._sessions.store.completed_between(
                start, end, most=MAX_EXPORT_SESSIONS)]
            sessions.sort(key=lambda s: (s["date"], s["created_at"]))  # oldest column first
            names, cells = {}, {}
            for page in self._students.pages():
                names.update((s["student_id"], s["full_name"]) for s in page)
            by_session = self._rows_by_session(sessions)
            for column, session in enumerate(sessions):
                for row in by_session[session["session_id"]]:
                    # A deleted student keeps the name the row was taken under.
                    names.setdefault(row["student_id"], row["full_name"])
                    cells[(row["student_id"], column)] = LETTERS.get(row["status"], "")
        header = (["Student ID", "Name"]
                  + [f"{s['date']} {s['title']}" for s in sessions]
                  + ["Present", "Sessions", "Rate"])
        lines = []
        order = sorted(({"student_id": k, "full_name": v} for k, v in names.items()),
                       key=name_sort_key)
        for student_id, name in ((s["student_id"], s["full_name"]) for s in order):
            marks = [cells.get((student_id, c), "") for c in range(len(sessions))]
            totals = _totals(marks)
            rate = f"{100 * totals['rate']:.1f}%" if totals["rate"] is not None else ""
            lines.append([student_id, name, *marks, totals["attended"], totals["taken"], rate])
        span = f"{start or 'start'}-to-{end or 'now'}"
        return _download(to_csv(header, lines), "text/csv; charset=utf-8",
                         f"attendance-{span}.csv")

    def class_grid(self, class_id, start=None, end=None):
        """A class's register: people x completed sessions between two dates.

        People are the class's roster now, and anyone else with a row in one of
        those sessions (enrolled then, since removed). Each cell is
        ``{status, source, auto_status}`` or None (no row). Totals per person:
        attended (present or late), late, absent, excused, rate (attended over
        sessions not excused); per session: the same counts.
        """
        sessions = [public_session(s) for s in self._sessions.store.of_class(class_id, start, end)
                    if s.get("status") == COMPLETED]
        sessions.sort(key=lambda s: (s["date"], s["created_at"]))
        people = {e["student_id"]: e.get("full_name") or e["student_id"]
                  for e in self._classes.members.roster(class_id)}
        cells = {}
        by_session = self._rows_by_session(sessions)
        for column, session in enumerate(sessions):
            for row in by_session[session["session_id"]]:
                people.setdefault(row["student_id"], row["full_name"])
                cells[(row["student_id"], column)] = {
                    "status": row["status"], "source": row["source"],
                    "auto_status": row["auto_status"]}
        order = sorted(({"student_id": k, "full_name": v} for k, v in people.items()),
                       key=name_sort_key)
        rows = []
        for person in order:
            marks = [cells.get((person["student_id"], c)) for c in range(len(sessions))]
            letters = [LETTERS.get(m["status"], "") if m else "" for m in marks]
            rows.append(dict(person, cells=marks, totals=_totals(letters)))
        columns = []
        for column, session in enumerate(sessions):
            letters = [LETTERS.get(r["cells"][column]["status"], "")
                       for r in rows if r["cells"][column]]
            columns.append({"session_id": session["session_id"], "title": session["title"],
                            "date": session["date"], "created_at": session["created_at"],
                            "totals": _totals(letters)})
        return {"class_id": class_id, "from": start, "to": end, "sessions": columns,
                "people": rows}

    def class_grid_csv(self, class_item, start=None, end=None):
        """The grid as CSV; a corrected cell is marked ``*`` (``P*``)."""
        grid = self.class_grid(class_item["class_id"], start, end)
        header = (["Student ID", "Name"] + [f"{s['date']} {s['title']}" for s in grid["sessions"]]
                  + ["Attended", "Late", "Absent", "Excused", "Rate"])
        lines = []
        for person in grid["people"]:
            marks = [(LETTERS.get(c["status"], "") + ("*" if c["source"] == "manual" else ""))
                     if c else "" for c in person["cells"]]
            t = person["totals"]
            lines.append([person["student_id"], person["full_name"], *marks, t["attended"],
                          t["late"], t["absent"], t["excused"],
                          f"{100 * t['rate']:.1f}%" if t["rate"] is not None else ""])
        span = f"{start or 'start'}-to-{end or 'now'}"
        return _download(to_csv(header, lines), "text/csv; charset=utf-8",
                         f"register-{_slug(class_item['name'], 30)}-{span}.csv")

    def session_html(self, session_id, user=None):
        """The printable page of one session (jinja2, autoescaped)."""
        detail = self._sessions.detail(session_id, user)
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


def _totals(letters):
    """Counts of grid letters (``P L A E``, empty = no row) and the rate."""
    letters = [m for m in letters if m]
    attended = letters.count("P") + letters.count("L")
    excused = letters.count("E")
    counted = len(letters) - excused
    return {"attended": attended, "late": letters.count("L"), "absent": letters.count("A"),
            "excused": excused, "taken": len(letters),
            "rate": round(attended / counted, 4) if counted else None}
