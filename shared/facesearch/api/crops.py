"""Time-limited URLs for face crops, and deleting crops when a face is forgotten.

Ingest stores each aligned crop and records where (``FaceRecord.crop_url``:
``gs://bucket/object`` in the cloud, a local path or ``file://`` URL in embedded
mode). Search results never expose that location; they carry a URL that
expires after ``FACESEARCH_SIGNED_URL_TTL_S``:

* cloud: a GCS V4 signed URL, signed through IAM ``signBlob`` as the query
  service account (no key file in the container);
* local: ``<public URL>/v1/crops/<face_id>?expires=..&sig=..``, an HMAC over
  the face id and expiry with a per-installation key kept in ``data_dir``; the
  API serves the bytes after checking it (no request signature: browsers fetch
  it). The base is the configured public URL of the API, never the request's
  ``Host`` header, so a caller cannot make us hand out links to another host.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from facesearch.errors import Forbidden, NotFound
from facesearch.logs import log_fields
from facesearch.storage.metadata import DEFAULT_COLLECTION

logger = logging.getLogger(__name__)

CROP_KEY_FILE = "crop-url.key"


class CropUrls(Protocol):
    """Turns a stored crop location into a link a client may fetch for a while."""

    def url(
        self, face_id: str, crop_location: str | None, collection_id: str = DEFAULT_COLLECTION
    ) -> str | None:
        """A time-limited URL for the crop, or None when the face has no stored crop."""
        ...

    def delete(self, crop_location: str) -> None:
        """Remove a stored crop (missing is fine)."""
        ...


def _local_path(location: str) -> Path:
    if location.startswith("file://"):
        return Path(unquote(urlsplit(location).path))
    return Path(location)


class LocalCropUrls:
    """HMAC-signed URLs served by the API itself (embedded mode)."""

    def __init__(
        self,
        key: bytes,
        ttl_s: int,
        *,
        base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self.base_url = base_url.rstrip("/")
        self._clock = clock

    @classmethod
    def from_data_dir(cls, data_dir: Path, ttl_s: int, *, base_url: str) -> LocalCropUrls:
        """Key persisted in ``data_dir`` so URLs survive a restart of ``facesearch serve``."""
        path = data_dir / CROP_KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(secrets.token_bytes(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return cls(path.read_bytes(), ttl_s, base_url=base_url)

    def _sig(self, face_id: str, expires: int, collection_id: str) -> str:
        scoped = "" if collection_id == DEFAULT_COLLECTION else f"{collection_id}\n"
        message = f"{scoped}{face_id}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def url(
        self, face_id: str, crop_location: str | None, collection_id: str = DEFAULT_COLLECTION
    ) -> str | None:
        if not crop_location:
            return None
        expires = int(self._clock()) + self.ttl_s
        where = "" if collection_id == DEFAULT_COLLECTION else f"&collection={collection_id}"
        return (
            f"{self.base_url}/v1/crops/{quote(face_id, safe='')}"
            f"?expires={expires}{where}&sig={self._sig(face_id, expires, collection_id)}"
        )

    def check(
        self,
        face_id: str,
        expires: str | None,
        sig: str | None,
        collection_id: str = DEFAULT_COLLECTION,
    ) -> None:
        """Raise Forbidden for a forged, altered or expired crop URL (or another collection)."""
        if not expires or not sig or not expires.isdigit() or len(expires) > 12:
            raise Forbidden("invalid crop URL")
        if not hmac.compare_digest(self._sig(face_id, int(expires), collection_id), sig):
            raise Forbidden("invalid crop URL")
        if int(expires) < self._clock():
            raise Forbidden("crop URL expired")

    def read(self, crop_location: str) -> bytes:
        if crop_location.startswith("gs://"):
            raise NotFound("crop is not stored locally")
        try:
            return _local_path(crop_location).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound("crop not found") from exc

    def delete(self, crop_location: str) -> None:
        if crop_location.startswith("gs://"):
            raise NotFound("crop is not stored locally")
        _local_path(crop_location).unlink(missing_ok=True)


class GcsCropUrls:
    """V4 signed URLs for ``gs://`` crops, signed by IAM signBlob as ``service_account``."""

    def __init__(
        self,
        ttl_s: int,
        *,
        service_account: str | None,
        client: Callable[[], Any],
        credentials: Any = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.service_account = service_account
        self._client = client
        self._credentials = credentials
        self._lock = threading.Lock()

    def _storage(self) -> Any:
        return self._client()

    def _token(self) -> str | None:
        """A fresh access token for signBlob (None when the credentials sign locally)."""
        if self.service_account is None:
            return None
        with self._lock:
            if self._credentials is None:
                import google.auth

                self._credentials, _ = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/cloud-platform"]
                )
            creds = self._credentials
            if not creds.valid:
                from google.auth.transport.requests import Request

                creds.refresh(Request())
            token: str | None = creds.token
            return token

    def url(
        self, face_id: str, crop_location: str | None, collection_id: str = DEFAULT_COLLECTION
    ) -> str | None:
        if not crop_location or not crop_location.startswith("gs://"):
            return None
        parts = urlsplit(crop_location)
        blob = self._storage().bucket(parts.netloc).blob(parts.path.lstrip("/"))
        kwargs: dict[str, Any] = {
            "version": "v4",
            "expiration": timedelta(seconds=self.ttl_s),
            "method": "GET",
        }
        if self.service_account is not None:
            kwargs["service_account_email"] = self.service_account
            kwargs["access_token"] = self._token()
        url: str = blob.generate_signed_url(**kwargs)
        return url

    def delete(self, crop_location: str) -> None:
        if not crop_location.startswith("gs://"):
            return
        parts = urlsplit(crop_location)
        blob = self._storage().bucket(parts.netloc).blob(parts.path.lstrip("/"))
        try:
            blob.delete()
        except Exception as exc:
            if type(exc).__name__ == "NotFound":
                return
            logger.error(
                "crop delete failed",
                extra=log_fields(crop=crop_location, error_type=type(exc).__name__),
            )
            raise
