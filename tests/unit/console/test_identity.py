"""Console identity in the cloud modes: only a verified Google-signed JWT is anyone.

The JWTs here are real: ES256 (IAP's algorithm) and RS256 (Google ID tokens) signed with
keys made for the test, checked by the same google-auth code path as in production, with
the test's public keys in place of Google's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.auth import crypt, jwt
from werkzeug.test import Client

from facesearch.backends import services
from facesearch.backends.local import LocalBackend
from facesearch.config import load_settings
from facesearch.console.app import ConsoleApp
from facesearch.console.identity import IAP_HEADER, GoogleIdentity
from facesearch.console.tokens import Sessions

AUDIENCE = "/projects/123/locations/europe-west1/services/facesearch-query"


def _keys(kind: str) -> tuple[Any, dict[str, str]]:
    private: Any
    if kind == "ec":
        private = ec.generate_private_key(ec.SECP256R1())
        signer_cls: Any = crypt.ES256Signer
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signer_cls = crypt.RSASigner
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return signer_cls.from_string(pem, key_id="k1"), {"k1": public.decode()}


def _token(signer: Any, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iat": now, "exp": now + 600, "aud": AUDIENCE, **claims}
    return jwt.encode(signer, payload).decode()


@pytest.fixture(scope="module")
def iap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Client, Any]:
    signer, certs = _keys("ec")
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("iap"),
        console_mode="iap",
        console_iap_audience=AUDIENCE,
        public_url="https://console.example.test",
    )
    backend = LocalBackend(settings)
    app = services.console_app(backend)
    app.google = GoogleIdentity("iap", AUDIENCE, certs=lambda: certs)
    return Client(app), signer


def test_iap_mode_trusts_only_a_valid_signed_assertion(iap: tuple[Client, Any]) -> None:
    client, signer = iap
    good = _token(signer, iss="https://cloud.google.com/iap", email="ann@example.com")
    response = client.get("/console/api/session", headers={IAP_HEADER: good})
    assert response.status_code == 200 and response.json["subject"] == "ann@example.com"
    other_signer, _ = _keys("ec")
    refused = {
        "plain email header": {"X-Goog-Authenticated-User-Email": "accounts.google.com:a@b.c"},
        "forged signature": {IAP_HEADER: _token(other_signer, iss=IAP_ISS, email="x@y.z")},
        "wrong audience": {IAP_HEADER: _token(signer, iss=IAP_ISS, email="x@y.z", aud="/other")},
        "expired": {
            IAP_HEADER: _token(signer, iss=IAP_ISS, email="x@y.z", exp=int(time.time()) - 600)
        },
        "wrong issuer": {IAP_HEADER: _token(signer, iss="https://evil", email="x@y.z")},
        "no email": {IAP_HEADER: _token(signer, iss=IAP_ISS)},
        "a console cookie": {"Cookie": f"{Sessions.COOKIE}=anything"},
    }
    for why, headers in refused.items():
        assert client.get("/console/api/session", headers=headers).status_code == 401, why
    assert client.get("/console/login?token=x").status_code == 404  # no login links here


IAP_ISS = "https://cloud.google.com/iap"


def test_iap_mode_still_needs_csrf_on_writes(iap: tuple[Client, Any]) -> None:
    client, signer = iap
    headers = {IAP_HEADER: _token(signer, iss=IAP_ISS, email="ann@example.com")}
    csrf = client.get("/console/api/session", headers=headers).json["csrf"]
    url = "/console/api/v1/collections/default/persons"
    body = {"name": "Ann"}
    assert client.post(url, json=body, headers=headers).status_code == 403
    ok = client.post(url, json=body, headers={**headers, "X-CSRF-Token": csrf})
    assert ok.status_code == 201


def test_iam_mode_verifies_the_bearer_id_token(tmp_path: Path) -> None:
    signer, certs = _keys("rsa")
    settings = load_settings(data_dir=tmp_path, console_mode="iam", console_iap_audience=AUDIENCE)
    app = ConsoleApp(
        services.query_app(LocalBackend(settings)),
        b"k" * 32,
        google=GoogleIdentity("iam", AUDIENCE, certs=lambda: certs),
    )
    client = Client(app)
    good = _token(signer, iss="https://accounts.google.com", email="ops@example.com")
    response = client.get("/console/api/session", headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 200 and response.json["subject"] == "ops@example.com"
    bad = _token(signer, iss="https://cloud.google.com/iap", email="ops@example.com")
    assert (
        client.get("/console/api/session", headers={"Authorization": f"Bearer {bad}"}).status_code
        == 401
    )
    assert client.get("/console/api/session").status_code == 401


def test_cloud_modes_need_an_audience() -> None:
    from facesearch.errors import ConfigError

    with pytest.raises(ConfigError):
        GoogleIdentity("iap", None, certs=dict)


def test_local_login_on_https_sets_a_secure_strict_httponly_cookie(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, console_mode="local", public_url="https://faces.example.test"
    )
    app = services.console_app(LocalBackend(settings))
    client = Client(app)
    link = app.login_url()
    assert link.startswith("https://faces.example.test/console/login?token=")
    response = client.get(link.removeprefix("https://faces.example.test"))
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    for part in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/console", "Max-Age=3600"):
        assert part in cookie
    assert client.get(link.removeprefix("https://faces.example.test")).status_code == 403
