"""The smoke check's logic against a local HTTPS server on 127.0.0.1 playing the
site and the API, healthy and then broken one way at a time."""
import datetime
import http.server
import io
import ipaddress
import json
import ssl
import threading

import pytest

from ops.smoke import FOREIGN_ORIGIN, Smoke


def _certificate(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Stage:
    """What the fake deployment does; tests break one thing at a time."""

    def __init__(self):
        self.site_origin = None  # set once the port is known
        self.api_base = None
        self.cors_origin = None
        self.health_status = 200
        self.login_status = 401
        self.redirect = True


def _handler(stage):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body=b"", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _cors(self):
            allowed = stage.cors_origin or stage.site_origin
            return [("Access-Control-Allow-Origin", allowed)]

        def do_GET(self):
            if self.path == "/":
                self._send(200, b'<!doctype html><script src="config.js"></script>',
                           [("Content-Type", "text/html; charset=utf-8")])
            elif self.path == "/config.js":
                body = "window.ROLLCALL_CONFIG = Object.freeze({\n  apiBaseUrl: %s\n});" \
                    % json.dumps(stage.api_base)
                self._send(200, body.encode(), [("Content-Type", "text/javascript")])
            elif self.path == "/api/health":
                self._send(stage.health_status, b'{"status": "ok"}', self._cors())
            else:
                self._send(404)

        def do_OPTIONS(self):
            self._send(200, b"", self._cors())

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            assert body["email"].endswith(".invalid")
            answer = b'{"error": "unauthorized"}' if stage.login_status == 401 \
                else b'{"token": "x"}'
            self._send(stage.login_status, answer, self._cors())
    return Handler


def _redirector(stage, target):
    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if stage.redirect:
                self.send_response(301)
                self.send_header("Location", target)
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
    return Redirect


@pytest.fixture
def deployed(tmp_path):
    cert, key = _certificate(tmp_path)
    stage = Stage()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(stage))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    stage.site_origin = f"https://127.0.0.1:{port}"
    stage.api_base = f"https://127.0.0.1:{port}/api"
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            _redirector(stage, stage.site_origin + "/"))
    for s in (server, plain):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    client_tls = ssl.create_default_context(cafile=str(cert))
    api_url, site_url = stage.api_base, stage.site_origin + "/"
    smoke = lambda: Smoke(site_url, api_url, context=client_tls,  # noqa: E731
                          http_site_url=f"http://127.0.0.1:{plain.server_address[1]}/",
                          timeout=5)
    yield stage, smoke
    for s in (server, plain):
        s.shutdown()
        s.server_close()


def _failed(smoke):
    out = io.StringIO()
    count = smoke.run(out=out)
    failed = [name for name, passed, _ in smoke.results if not passed]
    assert count == len(failed)
    return failed, out.getvalue()


def test_a_healthy_stage_passes_every_check(deployed):
    stage, smoke = deployed
    failed, out = _failed(smoke())
    assert failed == [], out
    assert out.count("  ok  ") == 7 and "FAIL" not in out and "all checks passed" in out


@pytest.mark.parametrize("breakage, check", [
    (lambda s: setattr(s, "api_base", "https://127.0.0.1:1/old-api"),
     "config.js points at the API"),
    (lambda s: setattr(s, "health_status", 502), "the API's /health answers"),
    (lambda s: setattr(s, "cors_origin", "http://127.0.0.1:8000"),
     "CORS allows the site's origin"),
    (lambda s: setattr(s, "cors_origin", "*"), "CORS refuses another origin"),
    (lambda s: setattr(s, "cors_origin", FOREIGN_ORIGIN), "CORS refuses another origin"),
    (lambda s: setattr(s, "login_status", 200), "a wrong sign-in is refused"),
    (lambda s: setattr(s, "redirect", False), "plain HTTP is redirected to HTTPS"),
])
def test_each_fault_fails_its_check(deployed, breakage, check):
    stage, smoke = deployed
    breakage(stage)
    failed, out = _failed(smoke())
    assert check in failed, out
    assert "FAIL" in out and "check(s) failed" in out


def test_a_site_not_over_https_fails(deployed):
    stage, smoke = deployed
    checker = smoke()
    checker.site_url = checker.http_site_url
    failed, _ = _failed(checker)
    assert "the site answers over HTTPS" in failed


def test_an_untrusted_certificate_fails(deployed):
    stage, _ = deployed
    checker = Smoke(stage.site_origin + "/", stage.api_base, timeout=5)  # system CAs only
    failed, out = _failed(checker)
    assert "the site answers over HTTPS" in failed and "CERTIFICATE" in out.upper()
