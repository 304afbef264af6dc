"""Crop URLs: local HMAC URLs expire and bind the face id; GCS URLs are V4-signed."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from facesearch.api.crops import GcsCropUrls, LocalCropUrls
from facesearch.errors import Forbidden


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def test_local_urls_expire_and_are_bound_to_the_face(tmp_path: Path) -> None:
    clock = Clock()
    crops = LocalCropUrls(b"k" * 32, 900, base_url="http://api.test", clock=clock)
    url = crops.url("img-0", "file:///x/0.jpg")
    assert url is not None
    parts = urlsplit(url)
    assert parts.path == "/v1/crops/img-0"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    crops.check("img-0", query["expires"], query["sig"])
    with pytest.raises(Forbidden):
        crops.check("img-1", query["expires"], query["sig"])
    with pytest.raises(Forbidden):
        crops.check("img-0", str(int(query["expires"]) + 1), query["sig"])
    clock.t += 901
    with pytest.raises(Forbidden):
        crops.check("img-0", query["expires"], query["sig"])
    assert crops.url("img-0", None) is None


def test_local_key_persists_across_restarts(tmp_path: Path) -> None:
    a = LocalCropUrls.from_data_dir(tmp_path, 60, base_url="http://x")
    b = LocalCropUrls.from_data_dir(tmp_path, 60, base_url="http://x")
    url = a.url("f-0", "/c.jpg")
    assert url is not None
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    b.check("f-0", query["expires"], query["sig"])
    assert (tmp_path / "crop-url.key").stat().st_mode & 0o077 == 0


def test_gcs_urls_are_v4_signed(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.cloud import storage
    from google.oauth2 import service_account

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    creds = service_account.Credentials.from_service_account_info(
        {
            "type": "service_account",
            "client_email": "query@p.iam.gserviceaccount.com",
            "private_key": pem,
            "token_uri": "https://oauth2.googleapis.com/token",
            "project_id": "p",
        }
    )
    client = storage.Client(project="p", credentials=creds)
    crops = GcsCropUrls(900, service_account=None, client=lambda: client)
    url = crops.url("img-0", "gs://crops-bucket/img/0.jpg")
    assert url is not None
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/crops-bucket/img/0.jpg"
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Expires"] == "900"
    assert query["X-Goog-Credential"].startswith("query@p.iam.gserviceaccount.com/")
    assert len(query["X-Goog-Signature"]) == 512  # hex RSA-2048
    assert crops.url("img-0", "file:///local.jpg") is None
