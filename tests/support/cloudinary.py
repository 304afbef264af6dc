"""Helpers for the Cloudinary tests: sample notifications, signing, a local TLS delivery host.

The samples in ``tests/data/cloudinary/`` follow the shape of Cloudinary's real
notification bodies. They are signed here the way Cloudinary signs them: the
hex digest of ``body + timestamp + api_secret`` (SHA-1 unless the account uses
SHA-256), computed independently of the code under test with hashlib.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from facesearch.net.fetch import FetchPolicy

DATA = Path(__file__).resolve().parents[1] / "data" / "cloudinary"
TEST_SECRET = "test-cloudinary-secret-a1B2c3"
CLOUD = "facesearch-demo"


def sample(name: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    body.update(changes)
    return body


def raw(body: dict[str, Any] | str) -> bytes:
    return (body if isinstance(body, str) else json.dumps(body)).encode()


def sign(
    body: bytes,
    *,
    secret: str = TEST_SECRET,
    timestamp: int | None = None,
    algorithm: str = "sha1",
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hashlib.new(algorithm, body + ts.encode() + secret.encode()).hexdigest()
    return {"X-Cld-Signature": digest, "X-Cld-Timestamp": ts, "Content-Type": "application/json"}


# --- a local TLS server standing in for the Cloudinary delivery host ---------------------


@dataclass
class DeliveryHost:
    """``https://<host>:<port>`` on 127.0.0.1 with a throwaway CA; ``files`` maps paths to bytes."""

    host: str
    port: int
    ca_pem: bytes
    files: dict[str, bytes]
    requests: list[str]

    def policy(self, max_bytes: int = 20 * 1024 * 1024) -> FetchPolicy:
        """The production rules plus exactly three test allowances: this port, this CA,
        and 127.0.0.1 exempt from the public-address rule (allow_http stays off)."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        return FetchPolicy(
            allowed_hosts=(self.host,),
            max_bytes=max_bytes,
            timeout_s=5.0,
            max_redirects=3,
            allowed_ports=(self.port,),
            allow_networks=("127.0.0.1/32",),
            resolver=lambda host, port: ["127.0.0.1"],
            ssl_context=context,
        )


def _certificate(host: str) -> tuple[bytes, bytes, bytes]:
    """(CA cert PEM, server cert PEM, server key PEM) for ``host``, valid for an hour."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("facesearch test CA"))
        .issuer_name(name("facesearch test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


@contextmanager
def delivery_host(tmp: Path, host: str = "img.cdn.test") -> Iterator[DeliveryHost]:
    """Serve ``files`` over TLS; ``/redirect?to=URL`` answers 302, unknown paths 404,
    ``/status/5xx`` that status."""
    ca_pem, cert_pem, key_pem = _certificate(host)
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    files: dict[str, bytes] = {}
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.path)
            path = self.path
            if "/redirect?to=" in path:
                self.send_response(302)
                self.send_header("Location", path.split("=", 1)[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if "/status/" in path:
                self._send(int(path.rsplit("/", 1)[1]), b"upstream says no")
                return
            body = files.get(path.split("?", 1)[0])
            if body is None:
                self._send(404, b"not found")
            else:
                self._send(200, body, "image/jpeg")

        def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield DeliveryHost(host, int(httpd.server_address[1]), ca_pem, files, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
