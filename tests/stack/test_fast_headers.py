"""The stack's header reader makes exactly the HTTPMessage the standard library makes."""
import io
import random

import pytest

from local.stack import fast_headers

BLOCKS = [
    b"Host: a\r\nX-Y:  v  \r\nX-Y: w\r\n\r\n",
    b"A: 1\r\n  folded\r\nB: 2\r\n\r\n",          # obsolete line folding
    b"Bad line\r\nA: 1\r\n\r\n",                   # not a header: the rest is body
    b"\r\n",
    b"A:\r\nb\xe9: c\xe9\r\n\r\n",                 # a name outside ASCII
    b"A: 1\nB: 2\n\n",                             # bare newlines
    b"Content-Type: text/plain; charset=utf-8\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
    b"From x\r\nA: 1\r\n\r\n",                     # a Unix "From " line
    b"X-Amz-Target: DynamoDB_20120810.Query\r\nContent-Length: 12\r\nValue: caf\xe9\r\n\r\n",
    b"Name With Space: v\r\n\r\n",
    b"A:no-space\r\nB:\t tabbed\t\r\n\r\n",
]


def _same(block):
    want = fast_headers._original(io.BytesIO(block))
    got = fast_headers.parse_headers(io.BytesIO(block))
    assert type(got) is type(want)
    assert got.items() == want.items()
    assert got.get_payload() == want.get_payload()
    assert [type(d) for d in got.defects] == [type(d) for d in want.defects]
    assert got.get_content_type() == want.get_content_type()
    assert got.get_all("x-y") == want.get_all("x-y")


@pytest.mark.parametrize("block", BLOCKS)
def test_same_message_as_the_standard_library(block):
    _same(block)


def test_same_message_for_random_header_blocks():
    rng = random.Random(7)
    alphabet = b"aZ-_:; \t\r\n\xe9=,0"
    for _ in range(2000):
        lines = []
        for _ in range(rng.randint(0, 6)):
            if rng.random() < 0.8:
                name = bytes(rng.choice(b"abcXYZ-_") for _ in range(rng.randint(1, 8)))
                value = bytes(rng.choice(alphabet[:-4] + b"x") for _ in range(rng.randint(0, 12)))
                lines.append(name + b":" + value + b"\r\n")
            else:
                lines.append(bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
                             .replace(b"\n", b"") + b"\r\n")
        _same(b"".join(lines) + b"\r\n")
