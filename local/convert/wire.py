"""MediaConvert's REST-JSON wire format <-> botocore member names, by its model.

MediaConvert's JSON uses lowerCamelCase ``locationName``s (``fileInput``)
where boto3 speaks ``FileInput``. Walking botocore's own shapes converts both
ways and checks required members and types, so the endpoint accepts exactly
what boto3 sends and answers what boto3 parses.
"""
import functools

import botocore.session


class MediaConvertError(Exception):
    """Answered as HTTP ``status`` with ``x-amzn-ErrorType: code``."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def bad_request(message):
    return MediaConvertError("BadRequestException", message, 400)


@functools.lru_cache(maxsize=1)
def service_model():
    return botocore.session.get_session().get_service_model("mediaconvert")


def from_wire(shape, value, path=""):
    """A wire value as boto3 member names, checked against ``shape``."""
    label = path or shape.name
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise bad_request(f"{label} must be an object")
        by_wire = {member.serialization.get("name", name): name
                   for name, member in shape.members.items()}
        unknown = sorted(set(value) - set(by_wire))
        if unknown:
            raise bad_request(f"Unknown member {unknown[0]!r} in {label}")
        out = {by_wire[key]: from_wire(shape.members[by_wire[key]], item,
                                       f"{label}.{by_wire[key]}")
               for key, item in value.items() if item is not None}
        for name in shape.required_members:
            if name not in out:
                raise bad_request(f"Missing required member {label}.{name}")
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise bad_request(f"{label} must be a list")
        return [from_wire(shape.member, item, f"{label}[{i}]") for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise bad_request(f"{label} must be an object")
        return {k: from_wire(shape.value, v, f"{label}.{k}") for k, v in value.items()}
    if kind == "string":
        if not isinstance(value, str):
            raise bad_request(f"{label} must be a string")
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            raise bad_request(f"{label} must be one of {', '.join(enum)}; got {value!r}")
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(f"{label} must be an integer")
        if "min" in shape.metadata and value < shape.metadata["min"]:
            raise bad_request(f"{label} must be at least {shape.metadata['min']}")
        if "max" in shape.metadata and value > shape.metadata["max"]:
            raise bad_request(f"{label} must be at most {shape.metadata['max']}")
        return value
    if kind == "boolean" and not isinstance(value, bool):
        raise bad_request(f"{label} must be true or false")
    return value


def to_wire(shape, value):
    """boto3 member names -> the wire's locationNames (inverse of :func:`from_wire`)."""
    kind = shape.type_name
    if kind == "structure":
        return {shape.members[name].serialization.get("name", name):
                to_wire(shape.members[name], item)
                for name, item in value.items() if item is not None and name in shape.members}
    if kind == "list":
        return [to_wire(shape.member, item) for item in value]
    if kind == "map":
        return {k: to_wire(shape.value, v) for k, v in value.items()}
    return value
