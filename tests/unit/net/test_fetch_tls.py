"""The fetcher over TLS: connects to the vetted address but verifies the certificate by name."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from facesearch.errors import FetchFailed
from facesearch.net.fetch import FetchPolicy, fetch_image

BODY = b"\x89PNG\r\n\x1a\n" + b"t" * 100


def _cert(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = _cert(tmp, "img.test")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1]), cert
    httpd.shutdown()


def _policy(port: int, ca: Path, hosts: dict[str, list[str]]) -> FetchPolicy:
    return FetchPolicy(
        allowed_hosts=tuple(hosts),
        max_bytes=10_000,
        timeout_s=3.0,
        allowed_ports=(port,),
        allow_networks=("127.0.0.1/32",),  # TEST ONLY: the server is on loopback
        resolver=lambda host, _port: hosts[host],
        ssl_context=ssl.create_default_context(cafile=str(ca)),
    )


def test_https_fetch_verifies_the_certificate_against_the_host_name(
    tls_server: tuple[int, Path],
) -> None:
    port, ca = tls_server
    got = fetch_image(
        f"https://img.test:{port}/a.png", _policy(port, ca, {"img.test": ["127.0.0.1"]})
    )
    assert got.data == BODY


def test_https_to_a_host_whose_certificate_does_not_match_fails(
    tls_server: tuple[int, Path],
) -> None:
    port, ca = tls_server
    policy = _policy(port, ca, {"other.test": ["127.0.0.1"]})
    with pytest.raises(FetchFailed, match="TLS"):
        fetch_image(f"https://other.test:{port}/a.png", policy)
