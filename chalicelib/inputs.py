"""Reading requests: every route's body, path and query fields, checked here.

Each ``read_*`` takes the Chalice request (or its parsed body) and answers
plain values for the domain, or raises :class:`~chalicelib.errors.InvalidInput`
(:class:`~chalicelib.errors.TooLarge`) naming the field, with a sentence a
person can act on, never a 500. The domain modules hold the rules' constants
(patterns, choices); this module holds how a request carries them.
"""
import datetime
import json
import re
import unicodedata

from chalicelib.classes import DEFAULT_LATE_MINUTES, MAX_LATE_MINUTES, MAX_TEACHERS
from chalicelib.errors import InvalidInput, NotFound, TooLarge
from chalicelib.paging import MAX_PAGE_SIZE
from chalicelib.multipart import MAX_PART_BYTES, MAX_PARTS, MAX_URLS_PER_REQUEST
from chalicelib.statuses import AttendanceStatus
from chalicelib.users import EMAIL_PATTERN, ROLES, normalise_email
from chalicelib.students import (MAX_EMAIL_LENGTH, MAX_NAME_LENGTH, STUDENT_ID_PATTERN,
                                 UPLOAD_KEY_PATTERN)
from chalicelib.uploads import PHOTO_TYPES, VIDEO_TYPES

#: A list's page size when ``?limit=`` is not given.
DEFAULT_PAGE_SIZE = 50
#: A pasted or uploaded roster (IDs, or a CSV of them) may be larger than other bodies.
MAX_IMPORT_BODY_BYTES = 256 * 1024
#: JSON bodies are small (names, ids, keys); files never pass through the API.
MAX_JSON_BODY_BYTES = 64 * 1024


def json_body(request, max_bytes=MAX_JSON_BODY_BYTES):
    """The request's JSON object, or a 400/413 saying what is wrong with it."""
    raw = request.raw_body or b""
    if len(raw) > max_bytes:
        raise TooLarge(f"The request body is larger than {max_bytes} bytes.")
    if not raw.strip():
        raise InvalidInput("The request needs a JSON body.", code="invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The request body is not valid JSON.", code="invalid_json")
    except RecursionError:  # thousands of nested [ or { fit in the size limit
        raise InvalidInput("The request body is nested too deeply.", code="invalid_json")
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.", code="invalid_json")
    return body


def require_string(body, name, *, min_length=1, max_length=256, pattern=None,
                   strip=True, hint=None):
    """``body[name]`` as a string within bounds, or a 400 naming the field."""
    if name not in body or body[name] is None:
        raise InvalidInput(f"'{name}' is required.", code="missing_field",
                         details={"field": name})
    return _check_string(body[name], name, min_length, max_length, pattern, strip, hint)


def optional_string(body, name, default=None, *, min_length=0, max_length=256,
                    pattern=None, strip=True, hint=None):
    """Like :func:`require_string`, but ``default`` when absent or null."""
    if body.get(name) is None:
        return default
    return _check_string(body[name], name, min_length, max_length, pattern, strip, hint)


def _check_string(value, name, min_length, max_length, pattern, strip, hint):
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string.", code="invalid_field",
                         details={"field": name})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800): valid JSON, not text
        raise InvalidInput(f"'{name}' holds a broken character. Type it again.",
                         code="invalid_field", details={"field": name})
    if strip:
        value = value.strip()
    if len(value) < min_length:
        message = (f"'{name}' must not be empty." if min_length == 1 else
                   f"'{name}' must be at least {min_length} characters.")
        raise InvalidInput(message, code="invalid_field", details={"field": name})
    if len(value) > max_length:
        raise InvalidInput(f"'{name}' must be at most {max_length} characters.",
                         code="invalid_field", details={"field": name})
    if pattern is not None and not re.fullmatch(pattern, value):
        raise InvalidInput(hint or f"'{name}' has characters that are not allowed.",
                         code="invalid_field", details={"field": name})
    return value


def require_choice(body, name, choices):
    """``body[name]`` if it is one of ``choices``, else a 400 listing them."""
    value = body.get(name)
    # Only strings are looked up: a list or object in the body is unhashable,
    # and `[] in some_dict` raises TypeError (a 500) instead of answering False.
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"'{name}' must be one of: {', '.join(sorted(choices))}.",
                         code="invalid_field", details={"field": name})
    return value


def parse_date(value, field):
    """A YYYY-MM-DD string that is a real date, or a 400 naming ``field``."""
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"'{field}' must be a date written YYYY-MM-DD, like 2024-09-30.",
                           code="invalid_field", details={"field": field})
    return value


# -- auth ---------------------------------------------------------------------------
def read_login(request):
    """``POST /auth/login``: email and password (the password is never trimmed)."""
    body = json_body(request)
    return {"email": require_string(body, "email", max_length=320),
            "password": require_string(body, "password", max_length=256, strip=False)}


# -- people -------------------------------------------------------------------------
def read_student_id(body):
    return require_string(body, "student_id", max_length=64, pattern=STUDENT_ID_PATTERN,
                          hint="'student_id' may hold only letters A-Z and a-z, digits "
                               "and _ . - : (1 to 64 characters, not only dots).")


def read_full_name(body):
    """1 to 200 characters of any Unicode, trimmed; control characters refused."""
    name = require_string(body, "full_name", max_length=MAX_NAME_LENGTH)
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidInput("'full_name' must not contain line breaks, tabs or other "
                           "control characters.", code="invalid_field",
                           details={"field": "full_name"})
    return name


def read_photo_key(body):
    return require_string(body, "photo_key", max_length=128, pattern=UPLOAD_KEY_PATTERN,
                          hint="'photo_key' must be the photo_key answered by "
                               "POST /uploads/photo. Upload the photo first.")


def read_photo_upload(request):
    """``POST /uploads/photo``: the photo's content type."""
    return {"content_type": require_choice(json_body(request), "content_type", PHOTO_TYPES)}


def read_new_student(request):
    """``POST /students``: ID, name and the uploaded photo's key; ``class_id``
    (optional) is the class to enrol the newcomer in."""
    body = json_body(request)
    return {"student_id": read_student_id(body), "full_name": read_full_name(body),
            "photo_key": read_photo_key(body),
            "class_id": optional_string(body, "class_id", max_length=32) or None}


def read_added_photo(request):
    """``POST /students/{id}/photos``: the uploaded photo's key."""
    return {"photo_key": read_photo_key(json_body(request))}


def read_main_photo(request):
    """``PUT /students/{id}/main-photo``: a new upload (``photo_key``) or one of the
    person's photos (``photo_id``), not both."""
    body = json_body(request)
    if body.get("photo_id") is not None:
        if body.get("photo_key") is not None:
            raise InvalidInput("Send 'photo_key' (a new photo) or 'photo_id' (one of theirs), "
                               "not both.", code="invalid_field", details={"field": "photo_id"})
        return {"photo_id": require_string(body, "photo_id", max_length=64)}
    return {"photo_key": read_photo_key(body)}


def read_student_changes(request):
    """``PATCH /students/{id}``: a new ``full_name`` and/or ``email`` ("" removes it)."""
    body = json_body(request)
    changes = {}
    if body.get("full_name") is not None:
        changes["full_name"] = read_full_name(body)
    if body.get("email") is not None:
        email = require_string(body, "email", min_length=0, max_length=MAX_EMAIL_LENGTH)
        if email and not re.fullmatch(EMAIL_PATTERN, email):
            raise InvalidInput("'email' must be an address like name@example.org.",
                               code="invalid_field", details={"field": "email"})
        changes["email"] = email
    if not changes:
        raise InvalidInput("Send 'full_name' or 'email' to change.", code="missing_field",
                           details={"field": "full_name"})
    return changes


# -- sessions -----------------------------------------------------------------------
#: The most a session's start may be into its video (the longest video is hours).
MAX_START_OFFSET_SECONDS = 6 * 3600


def _read_class_id(body):
    value = body.get("class_id")
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{32}", value):
        # Not a class id anybody could have: as unknown as a missing class.
        raise NotFound("There is no such class (it may have been deleted).",
                       code="class_not_found", details={"field": "class_id"})
    return value


def _read_start_offset(body):
    value = body.get("start_offset_seconds")
    if value is None:
        return None
    if not (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= MAX_START_OFFSET_SECONDS):
        raise InvalidInput("'start_offset_seconds' must be a whole number of seconds from 0 to "
                         f"{MAX_START_OFFSET_SECONDS}: when the class starts in the video.",
                         code="invalid_field", details={"field": "start_offset_seconds"})
    return value


def read_new_session(request):
    """``POST /sessions``: title, optional date, course, class and start offset, the
    video's type."""
    body = json_body(request)
    date = body.get("date")
    return {
        "title": require_string(body, "title", max_length=200),
        "date": None if date in (None, "") else parse_date(date, "date"),
        "course": optional_string(body, "course", max_length=100) or None,
        "content_type": require_choice(body, "content_type", VIDEO_TYPES),
        "class_id": _read_class_id(body),
        "start_offset_seconds": _read_start_offset(body),
    }


def read_session_changes(request):
    """``PATCH /sessions/{id}``: any of title, date, course, class_id, start_offset_seconds
    (at least one)."""
    body = json_body(request)
    known = ("title", "date", "course", "class_id", "start_offset_seconds")
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise InvalidInput(f"'{unknown[0]}' cannot be changed here; send only "
                           f"{', '.join(known)}.", code="invalid_field",
                           details={"field": unknown[0]})
    changes = {}
    if "title" in body:
        changes["title"] = require_string(body, "title", max_length=200)
    if "date" in body:
        changes["date"] = parse_date(body["date"], "date")
    if "course" in body:
        changes["course"] = optional_string(body, "course", max_length=100) or None
    if "class_id" in body:
        changes["class_id"] = _read_class_id(body)
    if "start_offset_seconds" in body:
        changes["start_offset_seconds"] = _read_start_offset(body)
    if not changes:
        raise InvalidInput("Nothing to change: send at least one field.", code="missing_field")
    return changes


def read_new_upload(request):
    """``POST /sessions/{id}/upload``: the video's content type."""
    return {"content_type": require_choice(json_body(request), "content_type", VIDEO_TYPES)}


def read_correction(request):
    """``PATCH .../attendance/{student_id}``: a status and why."""
    body = json_body(request)
    return {
        "status": AttendanceStatus(require_choice(body, "status", set(AttendanceStatus))),
        "reason": require_string(body, "reason", max_length=500),
    }


def read_date_range(request):
    """``?from=&to=`` (both optional, YYYY-MM-DD, from <= to) as ``(start, end)``."""
    query = request.query_params or {}
    start = parse_date(query["from"], "from") if query.get("from") else None
    end = parse_date(query["to"], "to") if query.get("to") else None
    if start and end and start > end:
        raise InvalidInput("'from' must not be after 'to'.", code="invalid_field",
                           details={"field": "from"})
    return start, end


# -- resumable video uploads --------------------------------------------------------
def _require_int(body, name, low, high):
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"'{name}' must be a whole number from {low} to {high}.",
                         code="invalid_field", details={"field": name})
    return value


def _require_upload_id(body):
    value = body.get("upload_id")
    if not isinstance(value, str) or not 1 <= len(value) <= 1024:
        raise InvalidInput("'upload_id' is required.", code="missing_field",
                         details={"field": "upload_id"})
    return value


def read_multipart_start(request):
    """``POST .../multipart``: the file's size in bytes."""
    body = json_body(request)
    return {"size": _require_int(body, "size", 1, MAX_PARTS * MAX_PART_BYTES)}


def read_part_request(request):
    """``POST .../multipart/parts``: the upload and the part numbers to sign."""
    body = json_body(request)
    numbers = body.get("part_numbers")
    if (not isinstance(numbers, list) or not 1 <= len(numbers) <= MAX_URLS_PER_REQUEST
            or len(set(map(repr, numbers))) != len(numbers)):
        raise InvalidInput(f"'part_numbers' must list 1 to {MAX_URLS_PER_REQUEST} different "
                         "part numbers.", code="invalid_field",
                         details={"field": "part_numbers"})
    checked = [_require_int({"part_numbers": n}, "part_numbers", 1, MAX_PARTS) for n in numbers]
    return {"upload_id": _require_upload_id(body), "part_numbers": checked}


def read_multipart_completion(request):
    """``POST .../multipart/complete``: the upload, and the ETag of each part seen."""
    body = json_body(request)
    parts = body.get("parts", [])
    if not isinstance(parts, list) or len(parts) > MAX_PARTS:
        raise InvalidInput("'parts' must be a list of {part_number, etag}.", code="invalid_field",
                         details={"field": "parts"})
    etags = {}
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("etag"), str):
            raise InvalidInput("'parts' must be a list of {part_number, etag}.",
                             code="invalid_field", details={"field": "parts"})
        etags[_require_int(part, "part_number", 1, MAX_PARTS)] = part["etag"][:200]
    return {"upload_id": _require_upload_id(body), "etags": etags}


# -- lists ------------------------------------------------------------------------
def read_page(request):
    """``?limit=`` (1..200, default 50) and the opaque ``?cursor=`` of a paged list."""
    query = request.query_params or {}
    raw = query.get("limit")
    limit = DEFAULT_PAGE_SIZE
    if raw not in (None, ""):
        if not (raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE):
            raise InvalidInput(f"'limit' must be a whole number from 1 to {MAX_PAGE_SIZE}.",
                               code="invalid_field", details={"field": "limit"})
        limit = int(raw)
    return {"limit": limit, "cursor": query.get("cursor") or None}


def read_people_query(request):
    """``GET /students``: ``q`` (an ID or name prefix) and ``class_id``, both optional."""
    query = request.query_params or {}
    text = (query.get("q") or "").strip() or None
    if text is not None and len(text) > 100:
        raise InvalidInput("'q' may have at most 100 characters.", code="invalid_field",
                           details={"field": "q"})
    return {"text": text, "class_id": query.get("class_id") or None}


# -- accounts ---------------------------------------------------------------------
def read_new_user(request):
    """``POST /users``: the new account's email and role."""
    body = json_body(request)
    return {"email": require_string(body, "email", max_length=320),
            "role": require_choice(body, "role", ROLES)}


def read_user_change(request):
    """``PATCH /users/{email}``: ``disabled`` true or false."""
    body = json_body(request)
    if not isinstance(body.get("disabled"), bool):
        raise InvalidInput("'disabled' must be true or false.", code="invalid_field",
                           details={"field": "disabled"})
    return {"disabled": body["disabled"]}


def read_password_change(request):
    """``POST /auth/password``: the current password and the new one (never trimmed)."""
    body = json_body(request)
    return {"current": require_string(body, "current_password", max_length=256, strip=False),
            "new": require_string(body, "new_password", max_length=256, strip=False)}


# -- classes ----------------------------------------------------------------------
def _read_teachers(body):
    teachers = body.get("teachers")
    if not isinstance(teachers, list) or len(teachers) > MAX_TEACHERS:
        raise InvalidInput(f"'teachers' must be a list of at most {MAX_TEACHERS} emails.",
                         code="invalid_field", details={"field": "teachers"})
    emails = []
    for value in teachers:
        if not isinstance(value, str) or not re.fullmatch(EMAIL_PATTERN,
                                                          normalise_email(value)):
            raise InvalidInput("'teachers' must hold email addresses.", code="invalid_field",
                             details={"field": "teachers"})
        if normalise_email(value) not in emails:
            emails.append(normalise_email(value))
    return emails


def _read_schedule(body):
    schedule = body.get("schedule")
    if schedule is None:
        return None
    bad = InvalidInput("'schedule' must be {\"start_time\": \"HH:MM\", \"length_minutes\": "
                     "1 to 720}, or null.", code="invalid_field", details={"field": "schedule"})
    if not isinstance(schedule, dict) or set(schedule) - {"start_time", "length_minutes"}:
        raise bad
    start, length = schedule.get("start_time"), schedule.get("length_minutes")
    if start is not None and not (isinstance(start, str)
                                  and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", start)):
        raise bad
    if length is not None and not (isinstance(length, int) and not isinstance(length, bool)
                                   and 1 <= length <= 720):
        raise bad
    return {"start_time": start, "length_minutes": length}


def _read_late(body):
    value = body.get("late_threshold_minutes")
    if not (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= MAX_LATE_MINUTES):
        raise InvalidInput(f"'late_threshold_minutes' must be a whole number from 0 to "
                         f"{MAX_LATE_MINUTES}.", code="invalid_field",
                         details={"field": "late_threshold_minutes"})
    return value


def read_new_class(request):
    """``POST /classes``: name, term, teachers, schedule hints, late threshold."""
    body = json_body(request)
    fields = {"name": require_string(body, "name", max_length=120),
              "term": optional_string(body, "term", max_length=60) or None,
              "teachers": _read_teachers(body) if "teachers" in body else [],
              "schedule": _read_schedule(body),
              "late_threshold_minutes": (_read_late(body) if "late_threshold_minutes" in body
                                         else DEFAULT_LATE_MINUTES)}
    return fields


def read_class_changes(request):
    """``PATCH /classes/{id}``: only the fields present are changed."""
    body = json_body(request)
    known = {"name", "term", "teachers", "schedule", "late_threshold_minutes", "archived"}
    unknown = set(body) - known
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"'{field}' cannot be changed here.", code="invalid_field",
                         details={"field": field})
    changes = {}
    if "name" in body:
        changes["name"] = require_string(body, "name", max_length=120)
    if "term" in body:
        changes["term"] = optional_string(body, "term", max_length=60) or None
    if "teachers" in body:
        changes["teachers"] = _read_teachers(body)
    if "schedule" in body:
        changes["schedule"] = _read_schedule(body)
    if "late_threshold_minutes" in body:
        changes["late_threshold_minutes"] = _read_late(body)
    if "archived" in body:
        if not isinstance(body["archived"], bool):
            raise InvalidInput("'archived' must be true or false.", code="invalid_field",
                             details={"field": "archived"})
        changes["archived"] = body["archived"]
    if not changes:
        raise InvalidInput("Nothing to change: send at least one field.", code="missing_field")
    return changes


def read_enrolment(request):
    """``POST /classes/{id}/students``: the ID of the person to enrol."""
    return read_student_id(json_body(request))


def read_import(request):
    """``POST /classes/{id}/roster/import``: the pasted or uploaded text, and which
    CSV column holds the IDs (a header name or a 1-based number; optional)."""
    body = json_body(request, max_bytes=MAX_IMPORT_BODY_BYTES)
    text = require_string(body, "text", max_length=MAX_IMPORT_BODY_BYTES, strip=False)
    column = body.get("column")
    if column is not None and not (
            (isinstance(column, str) and 0 < len(column) <= 100)
            or (isinstance(column, int) and not isinstance(column, bool) and 1 <= column <= 100)):
        raise InvalidInput("'column' must be a header name or a column number from 1.",
                         code="invalid_field", details={"field": "column"})
    return {"text": text, "column": column}
def read_position(text):
    """A 1-based position in a path (``/unrecognised/{number}``): 1 to 9999."""
    if not re.fullmatch(r"[1-9][0-9]{0,3}", text or ""):
        raise InvalidInput("The unrecognised person's number must be a whole number from 1.",
                           code="invalid_field", details={"field": "number"})
    return int(text)


def read_stranger_registration(request):
    """``POST .../unrecognised/{n}/register``: ID, name and, optionally, an uploaded photo
    (without one the crop cut from the video is the photo)."""
    body = json_body(request)
    fields = {"student_id": read_student_id(body), "full_name": read_full_name(body)}
    if body.get("photo_key") not in (None, ""):
        fields["photo_key"] = read_photo_key(body)
    return fields
