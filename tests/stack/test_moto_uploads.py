"""Uploads to the stack's moto that never finish leave nothing behind."""
import socket
import threading
import time

import pytest
from botocore.exceptions import ClientError

from local.stack.moto_state import PersistentMoto
from local.stack.snapshot import INLINE_BODY_MAX, StateStore
from local.stack.wsgi_server import ThreadedWSGIServer
from tests.support.stack import boto_client, free_port

pytestmark = pytest.mark.stack


@pytest.fixture
def moto(tmp_path):
    store = StateStore(tmp_path / "moto")
    store.warm_up()
    store.load()
    app = PersistentMoto(store)
    app.journal.open(1)
    server = ThreadedWSGIServer(app, "127.0.0.1", free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()


def test_a_cancelled_upload_leaves_no_spooled_body(moto):
    """A browser cancelling a large upload mid-body: the part already spooled
    (to the journal's body files: larger than what the journal holds inline)
    is removed, nothing is stored, and moto goes on answering."""
    app, url = moto
    s3 = boto_client("s3", url)
    s3.create_bucket(Bucket="videos")
    size = 3 * INLINE_BODY_MAX
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(f"PUT /videos/cut.mp4 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: AWS4-HMAC-SHA256 Credential=local/20261130/us-east-1/s3/"
                     f"aws4_request, SignedHeaders=host, Signature=0\r\n"
                     f"Content-Length: {size}\r\n\r\n".encode())
        sock.sendall(b"\0" * (2 * INLINE_BODY_MAX))
        deadline = time.monotonic() + 10
        while not any(app.journal.bodies.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(app.journal.bodies.iterdir()), "the body was never spooled to a file"
    deadline = time.monotonic() + 10
    while any(app.journal.bodies.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(app.journal.bodies.iterdir()) == []
    with pytest.raises(ClientError):
        s3.head_object(Bucket="videos", Key="cut.mp4")
    s3.put_object(Bucket="videos", Key="whole.mp4", Body=b"x" * 10)
    assert s3.get_object(Bucket="videos", Key="whole.mp4")["Body"].read() == b"x" * 10


def test_a_large_body_the_journal_could_not_take_leaves_no_file(moto, monkeypatch):
    """The journal failing to record a change (a full disk) answers an error;
    the spooled body no record names is removed all the same."""
    app, url = moto
    s3 = boto_client("s3", url)
    s3.create_bucket(Bucket="videos")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(app.journal, "append", full_disk)
    with pytest.raises(ClientError):
        s3.put_object(Bucket="videos", Key="big.mp4", Body=b"x" * (3 * INLINE_BODY_MAX))
    assert list(app.journal.bodies.iterdir()) == []
