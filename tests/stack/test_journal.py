"""The stack's moto journal: a record is written whole or not at all."""
import errno

import pytest

from local.stack.snapshot import Journal

pytestmark = pytest.mark.stack


class _FullOnce:
    """The journal's file, whose next write stores a few bytes, then the disk is full."""

    def __init__(self, inner):
        self.inner, self.failed = inner, False

    def write(self, data):
        if not self.failed:
            self.failed = True
            self.inner.write(data[:7])
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.inner.write(data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_record_that_failed_to_be_written_leaves_nothing_behind(tmp_path):
    """A full disk mid-record: that request is refused, and neither its bytes
    nor its body file name reach the journal, so the next record (and a
    restart's replay) reads clean."""
    journal = Journal(tmp_path)
    journal.open(1)
    journal.append({"REQUEST_METHOD": "PUT", "PATH_INFO": "/a"}, b"first")
    body_file = journal.new_body_file()
    body_file.write_bytes(b"spooled")
    journal._file = _FullOnce(journal._file)
    with pytest.raises(OSError):
        journal.append({"REQUEST_METHOD": "PUT", "PATH_INFO": "/lost"}, b"", body_file)
    body_file.unlink()              # what the server does with a body no record names
    ticket = journal.append({"REQUEST_METHOD": "PUT", "PATH_INFO": "/b"}, b"second")
    journal.sync(ticket)
    journal.close()
    records = [(meta["PATH_INFO"], body) for meta, body in journal.read(1)]
    assert records == [("/a", b"first"), ("/b", b"second")]
