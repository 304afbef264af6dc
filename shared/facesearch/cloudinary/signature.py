"""Verify a Cloudinary notification's ``X-Cld-Signature`` / ``X-Cld-Timestamp``.

Cloudinary signs ``body + timestamp + api_secret`` with the account's signature
algorithm (SHA-1 by default, SHA-256 when the account is switched) and sends the
hex digest. We take the digest construction from the SDK
(``cloudinary.utils.compute_hex_hash``, the function its own
``verify_notification_signature`` uses) so the definition cannot drift, but we do
the checks around it ourselves, because the SDK's helper is too lax for a public
endpoint:

* it compares with ``==`` (timing side channel) - we use ``hmac.compare_digest``;
* it only rejects *old* timestamps - we also refuse timestamps from the future
  (beyond a small clock skew), malformed ones and missing headers;
* it reads the secret from the process-global ``cloudinary.config()`` - we pass
  the secret explicitly, so a rotation (two secrets valid for a while) needs no
  global state shared between concurrent requests.

``tests/unit/cloudinary/test_signature.py`` checks that we accept exactly what the
SDK's own verifier accepts on valid, tampered and stale notifications.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cloudinary.utils import compute_hex_hash

from facesearch.errors import SignatureError

HEADER_SIGNATURE = "X-Cld-Signature"
HEADER_TIMESTAMP = "X-Cld-Timestamp"
#: The SDK's default validity window (``verify_notification_signature(valid_for=7200)``).
DEFAULT_MAX_AGE_S = 7200
#: Timestamps this far ahead of our clock are accepted (clock skew), later ones are not.
MAX_FUTURE_SKEW_S = 300
_HEX_LENGTHS = {"sha1": 40, "sha256": 64}
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class VerifiedNotification:
    """A body whose signature checked out, and the timestamp Cloudinary signed."""

    body: str
    timestamp: int


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value.strip()
    return ""


def expected_signature(body: str, timestamp: str, secret: str, algorithm: str) -> str:
    """The signature Cloudinary sends for ``body`` at ``timestamp`` (SDK construction)."""
    return str(compute_hex_hash(f"{body}{timestamp}{secret}", algorithm))


class NotificationVerifier:
    """Checks one notification against the account's current API secret(s)."""

    def __init__(
        self,
        secrets: Callable[[], Sequence[str]],
        *,
        algorithm: str = "sha1",
        max_age_s: int = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm not in _HEX_LENGTHS:
            raise ValueError(f"unsupported signature algorithm {algorithm!r}")
        self._secrets = secrets
        self.algorithm = algorithm
        self.max_age_s = max_age_s
        self._clock = clock

    def precheck(self, headers: Mapping[str, str]) -> tuple[str, str]:
        """Headers present, well-formed and fresh — all before a byte of the body is read."""
        signature = _header(headers, HEADER_SIGNATURE).lower()
        timestamp = _header(headers, HEADER_TIMESTAMP)
        if not signature or not timestamp:
            raise SignatureError("missing X-Cld-Signature or X-Cld-Timestamp")
        if not _TIMESTAMP.match(timestamp):
            raise SignatureError("malformed X-Cld-Timestamp")
        if len(signature) != _HEX_LENGTHS[self.algorithm] or not all(
            c in "0123456789abcdef" for c in signature
        ):
            raise SignatureError(f"malformed X-Cld-Signature (expected {self.algorithm} hex)")
        signed_at = int(timestamp)
        now = self._clock()
        if signed_at < now - self.max_age_s:
            raise SignatureError(f"stale notification: signed {int(now - signed_at)} s ago")
        if signed_at > now + MAX_FUTURE_SKEW_S:
            raise SignatureError("notification timestamp is in the future")
        return signature, timestamp

    def verify(self, raw_body: bytes, headers: Mapping[str, str]) -> VerifiedNotification:
        """Return the verified body; raise :class:`SignatureError` (HTTP 401) otherwise.

        The message of the error says which check failed; it is logged, never
        sent back (the caller only learns "unauthorized").
        """
        signature, timestamp = self.precheck(headers)
        signed_at = int(timestamp)
        try:
            body = raw_body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SignatureError("notification body is not UTF-8") from exc
        for secret in self._secrets():
            expected = expected_signature(body, timestamp, secret, self.algorithm)
            if hmac.compare_digest(expected, signature):
                return VerifiedNotification(body, signed_at)
        raise SignatureError("signature mismatch")
