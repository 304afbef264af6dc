"""Server-side signature check: one call that authenticates a request or raises.

The caller learns only 401 (no usable credentials: a signature header is
missing or malformed) or 403 (credentials present but rejected: unknown key,
wrong signature, stale timestamp, replayed nonce). The precise reason goes to
the log with the request id, never into the response, so a prober cannot tell
a wrong key id from a wrong body hash.

Order matters: the HMAC is checked before the nonce is claimed, so unsigned
junk cannot burn other clients' nonces, and the unknown-key path still
computes an HMAC so that it takes the same time as a wrong signature.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from facesearch.api.settings import ApiSettings
from facesearch.auth.keys import KeyRing
from facesearch.auth.signing import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    body_digest,
    canonical_string,
    compute_signature,
    header,
)
from facesearch.errors import Forbidden, SignatureError
from facesearch.logs import log_fields
from facesearch.storage.nonces import NonceStore

logger = logging.getLogger(__name__)

#: the settings' default (one source); the query service passes its configured value
MAX_SKEW_S: int = ApiSettings.model_fields["signature_max_skew_s"].default
_NONCE_RE = re.compile(r"^[A-Za-z0-9_\-]{16,128}$")
_SIG_RE = re.compile(r"^[0-9a-f]{64}$")
_TS_RE = re.compile(r"^[0-9]{1,12}$")
_DUMMY_SECRET = b"\x00" * 32


@dataclass(frozen=True)
class Verified:
    key_id: str
    timestamp: int
    nonce: str


class Verifier:
    def __init__(
        self,
        keys: KeyRing,
        nonces: NonceStore,
        *,
        max_skew_s: int = MAX_SKEW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.nonces = nonces
        self.max_skew_s = max_skew_s
        self._clock = clock

    def verify(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        *,
        request_id: str = "",
    ) -> Verified:
        key_id = header(headers, HEADER_KEY_ID)
        timestamp = header(headers, HEADER_TIMESTAMP)
        nonce = header(headers, HEADER_NONCE)
        signature = header(headers, HEADER_SIGNATURE)
        if key_id is None or timestamp is None or nonce is None or signature is None:
            self._log("missing signature headers", request_id, key_id)
            raise SignatureError("authentication required")
        signature = signature.strip().lower()
        if (
            not key_id
            or len(key_id) > 128
            or not _TS_RE.match(timestamp)
            or not _NONCE_RE.match(nonce)
            or not _SIG_RE.match(signature)
        ):
            self._log("malformed signature headers", request_id, key_id)
            raise SignatureError("authentication required")

        secret = self.keys.secret(key_id)
        canonical = canonical_string(
            method, path, query, timestamp=timestamp, nonce=nonce, body_sha256=body_digest(body)
        )
        expected = compute_signature(secret or _DUMMY_SECRET, canonical)
        good = hmac.compare_digest(expected, signature)
        if secret is None:
            self._log("unknown key id", request_id, key_id)
            raise Forbidden("request rejected")
        if not good:
            self._log("signature mismatch", request_id, key_id)
            raise Forbidden("request rejected")
        ts = int(timestamp)
        now = self._clock()
        if abs(now - ts) > self.max_skew_s:
            self._log("timestamp outside the allowed skew", request_id, key_id, skew_s=now - ts)
            raise Forbidden("request rejected")
        # Keep the record until no timestamp that could carry this nonce is acceptable.
        if not self.nonces.claim(key_id, nonce, float(ts + self.max_skew_s + 1)):
            self._log("replayed nonce", request_id, key_id)
            raise Forbidden("request rejected")
        return Verified(key_id=key_id, timestamp=ts, nonce=nonce)

    @staticmethod
    def _log(reason: str, request_id: str, key_id: str | None, **extra: object) -> None:
        logger.warning(
            "signature rejected: %s",
            reason,
            extra=log_fields(request_id=request_id, key_id=key_id, reason=reason, **extra),
        )
