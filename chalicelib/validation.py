"""Parsing and checking request bodies and fields.

Every bad input ends in a 400 (or 413) with a message a person can act on,
never in a 500: views call :func:`json_body` and the ``require_*`` helpers.
"""
import json
import re

from chalicelib.errors import BadRequest, PayloadTooLarge

#: JSON bodies are small (names, ids, keys); files never pass through the API.
MAX_JSON_BODY_BYTES = 64 * 1024


def json_body(request, max_bytes=MAX_JSON_BODY_BYTES):
    """The request's JSON object, or a 400/413 saying what is wrong with it."""
    raw = request.raw_body or b""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    if not raw.strip():
        raise BadRequest("The request needs a JSON body.", code="invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.", code="invalid_json")
    except RecursionError:  # thousands of nested [ or { fit in the size limit
        raise BadRequest("The request body is nested too deeply.", code="invalid_json")
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def require_string(body, name, *, min_length=1, max_length=256, pattern=None,
                   strip=True, hint=None):
    """``body[name]`` as a string within bounds, or a 400 naming the field."""
    if name not in body or body[name] is None:
        raise BadRequest(f"'{name}' is required.", code="missing_field",
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
        raise BadRequest(f"'{name}' must be a string.", code="invalid_field",
                         details={"field": name})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800): valid JSON, not text
        raise BadRequest(f"'{name}' holds a broken character. Type it again.",
                         code="invalid_field", details={"field": name})
    if strip:
        value = value.strip()
    if len(value) < min_length:
        message = (f"'{name}' must not be empty." if min_length == 1 else
                   f"'{name}' must be at least {min_length} characters.")
        raise BadRequest(message, code="invalid_field", details={"field": name})
    if len(value) > max_length:
        raise BadRequest(f"'{name}' must be at most {max_length} characters.",
                         code="invalid_field", details={"field": name})
    if pattern is not None and not re.fullmatch(pattern, value):
        raise BadRequest(hint or f"'{name}' has characters that are not allowed.",
                         code="invalid_field", details={"field": name})
    return value


def require_choice(body, name, choices):
    """``body[name]`` if it is one of ``choices``, else a 400 listing them."""
    value = body.get(name)
    # Only strings are looked up: a list or object in the body is unhashable,
    # and `[] in some_dict` raises TypeError (a 500) instead of answering False.
    if not isinstance(value, str) or value not in choices:
        raise BadRequest(f"'{name}' must be one of: {', '.join(sorted(choices))}.",
                         code="invalid_field", details={"field": name})
    return value
