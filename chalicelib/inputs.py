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

from chalicelib.errors import InvalidInput, TooLarge
from chalicelib.statuses import AttendanceStatus
from chalicelib.students import MAX_NAME_LENGTH, STUDENT_ID_PATTERN, UPLOAD_KEY_PATTERN
from chalicelib.uploads import PHOTO_TYPES, VIDEO_TYPES

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
    """``POST /students``: ID, name and the uploaded photo's key."""
    body = json_body(request)
    return {"student_id": read_student_id(body), "full_name": read_full_name(body),
            "photo_key": read_photo_key(body)}


def read_added_photo(request):
    """``POST /students/{id}/photos``: the uploaded photo's key."""
    return {"photo_key": read_photo_key(json_body(request))}


# -- sessions -----------------------------------------------------------------------
def read_new_session(request):
    """``POST /sessions``: title, optional date and course, the video's type."""
    body = json_body(request)
    date = body.get("date")
    return {
        "title": require_string(body, "title", max_length=200),
        "date": None if date in (None, "") else parse_date(date, "date"),
        "course": optional_string(body, "course", max_length=100) or None,
        "content_type": require_choice(body, "content_type", VIDEO_TYPES),
    }


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
