"""HTTP header blocks read without the email package, for the stack's servers.

``http.client.parse_headers`` (what ``http.server`` uses for every request
and ``http.client``, under urllib3 and botocore, for every answer) joins the
header lines and runs them through ``email``'s feed parser: about a tenth of
the CPU an API request and a moto call cost on the one-machine stack.
:func:`parse_headers` builds the same ``HTTPMessage`` directly when every
line is a plain ``Name: value`` line, and hands anything else (folded lines,
a line that is not a header) to the original, so the result is always what
the standard library would have made.
"""
import http.client
import io
import re

_original = http.client.parse_headers
#: What the email package's feed parser accepts as a header name (its headerRE).
_NAME = re.compile(r"[\041-\071\073-\176]+\Z")


def parse_headers(fp, _class=http.client.HTTPMessage):
    lines = http.client._read_headers(fp)
    message = _class()
    for raw in lines:
        if raw in (b"\r\n", b"\n"):
            break
        content = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        name, colon, value = content.decode("iso-8859-1").partition(":")
        # email splits lines at a lone CR too, and reads a line that is not a
        # header as the start of a body: leave those to it.
        if not raw.endswith(b"\n") or b"\r" in content or not colon or not _NAME.match(name):
            return _reparse(lines, _class)
        # email's compat32 policy: the value without its leading blanks.
        message.set_raw(name, value.lstrip(" \t"))
    message.set_payload("")
    return message


def _reparse(lines, _class):
    return _original(io.BytesIO(b"".join(lines)), _class)


def install():
    """Use :func:`parse_headers` in this process (servers and clients alike)."""
    http.client.parse_headers = parse_headers
