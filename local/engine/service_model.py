"""Check requests against botocore's own Rekognition model, the API's contract.

The endpoint must refuse what Amazon Rekognition refuses, with the same error
names, so the app meets the same errors on one machine as on AWS. Rather than
restate field rules by hand, requests are walked against the shapes in
``botocore/data/rekognition/2016-06-27/service-2.json`` (required members,
types, min/max, patterns, enums). Blobs arrive base64-encoded in the JSON
protocol and come out of :func:`validate` decoded.
"""
import base64
import binascii
import functools
import re

import botocore.session


class RekognitionError(Exception):
    """An error answered as HTTP ``status`` with ``{"__type": code, "message": ...}``."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def invalid(message):
    return RekognitionError("InvalidParameterException", message)


@functools.lru_cache(maxsize=1)
def service_model():
    return botocore.session.get_session().get_service_model("rekognition")


def operation_model(name):
    try:
        return service_model().operation_model(name)
    except Exception as exc:  # botocore raises OperationNotFoundError
        raise RekognitionError("UnknownOperationException",
                               f"Unknown operation {name!r}") from exc


@functools.lru_cache(maxsize=None)
def _pattern(text):
    try:
        return re.compile(text)
    except re.error:
        return None                       # a Java-only construct: not checked


def validate(shape, value, path=""):
    """``value`` checked against ``shape``; answers it with blobs decoded.

    Raises InvalidParameterException naming the member and the rule broken;
    an image over the Bytes limit raises ImageTooLargeException, as in AWS.
    """
    label = path or shape.name
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise invalid(f"{label} must be an object")
        unknown = sorted(set(value) - set(shape.members))
        if unknown:
            raise invalid(f"Unknown parameter {unknown[0]!r} in {label}")
        for name in shape.required_members:
            if value.get(name) is None:
                raise invalid(f"Missing required parameter {_join(path, name)}")
        return {name: validate(shape.members[name], item, _join(path, name))
                for name, item in value.items() if item is not None}
    meta = shape.metadata
    if kind == "string":
        if not isinstance(value, str):
            raise invalid(f"{label} must be a string")
        _check_length(label, len(value), meta)
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            raise invalid(f"{label} must be one of {', '.join(enum)}; got {value!r}")
        pattern = meta.get("pattern")
        if pattern and _pattern(pattern) and not _pattern(pattern).fullmatch(value):
            raise invalid(f"{label} {value!r} does not match the pattern {pattern}")
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"{label} must be an integer")
        _check_range(label, value, meta)
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid(f"{label} must be a number")
        _check_range(label, value, meta)
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise invalid(f"{label} must be true or false")
        return value
    if kind == "blob":
        if not isinstance(value, str):
            raise invalid(f"{label} must be base64 text")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise invalid(f"{label} is not valid base64") from exc
        if "max" in meta and len(data) > meta["max"]:
            raise RekognitionError("ImageTooLargeException",
                                   f"{label} is {len(data)} bytes; the limit is {meta['max']}")
        _check_length(label, len(data), meta)
        return data
    if kind == "list":
        if not isinstance(value, list):
            raise invalid(f"{label} must be a list")
        _check_length(label, len(value), meta)
        return [validate(shape.member, item, f"{label}[{i}]") for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise invalid(f"{label} must be an object")
        _check_length(label, len(value), meta)
        return {validate(shape.key, k, f"{label} key"): validate(shape.value, v, f"{label}.{k}")
                for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise invalid(f"{label} must be a timestamp")
        return value
    return value


def _join(path, name):
    return f"{path}.{name}" if path else name


def _check_length(label, length, meta):
    if "min" in meta and length < meta["min"]:
        raise invalid(f"{label} must have at least {meta['min']} characters/items")
    if "max" in meta and length > meta["max"]:
        raise invalid(f"{label} must have at most {meta['max']} characters/items")


def _check_range(label, value, meta):
    if "min" in meta and value < meta["min"]:
        raise invalid(f"{label} must be at least {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise invalid(f"{label} must be at most {meta['max']}")
