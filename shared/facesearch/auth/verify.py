"""Server-side signature check: one call that authenticates a request or raises.

The caller learns only 401 (no usable credentials: a signature header is
missing or malformed) or 403 (credentials present but rejected: unknown key,
wrong signature, stale timestamp, replayed nonce). The precise reason goes to
the log with the request id, never into the response, so a prober cannot tell
a wrong key id from a wrong body hash.

Order matters: the HMAC is checked before the nonce is claimed, so unsigned
junk cannot burn other clients' nonces, and the unknown-key path still
computes an HMAC so that it takes the same time as a wrong signature.

:meth:`Verifier.precheck` runs what needs no body — header syntax, a known key
id, the timestamp window, a nonce this instance has already accepted — so the
HTTP layer can refuse a forged request before it reads (and waits for) a byte of
its body. The HMAC and the durable nonce claim need the body and come after.
"""

from __future__ import annotations

import heapq
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from facesearch.api.settings import ApiSettings
from facesearch.auth.keys import KeyGrant, KeyRing, Scope
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
from facesearch.errors import Forbidden, ScopeForbidden, SignatureError
from facesearch.logs import log_fields
from facesearch.storage.nonces import NonceStore

logger = logging.getLogger(__name__)

#: the settings' default (one source); the query service passes its configured value
MAX_SKEW_S: int = ApiSettings.model_fields["signature_max_skew_s"].default
_NONCE_RE = re.compile(r"^[A-Za-z0-9_\-]{16,128}$")
_SIG_RE = re.compile(r"^[0-9a-f]{64}$")
_TS_RE = re.compile(r"^[0-9]{1,12}$")
_DUMMY_SECRET = b"\x00" * 32


class RecentNonces:
    """Nonces this instance accepted lately: a replay is refused before its body is read.

    In memory, bounded, per instance; the durable, cross-instance guard stays the
    nonce store's atomic claim.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._expiry: dict[tuple[str, str], float] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def add(self, key_id: str, nonce: str, expires_at: float, now: float) -> None:
        with self._lock:
            if len(self._expiry) >= self._max:
                self._prune(now)
            self._expiry[(key_id, nonce)] = expires_at

    def _prune(self, now: float) -> None:
        """Drop expired nonces, then (if still over 90% full) the soonest-expiring ones
        down to 90%: one O(n log n) pass per tenth of the capacity, not one O(n) pass
        per request once full (22 ms a request at 100k entries)."""
        live = {k: t for k, t in self._expiry.items() if t >= now}
        room = self._max * 9 // 10
        if len(live) > room:
            live = dict(heapq.nlargest(room, live.items(), key=lambda item: item[1]))
        self._expiry = live

    def seen(self, key_id: str, nonce: str, now: float) -> bool:
        # no lock: one dict lookup is atomic, and ``add`` replaces the dict whole when
        # it evicts, so this sees the old or the new one (every request calls this)
        expires = self._expiry.get((key_id, nonce))
        return expires is not None and expires >= now


@dataclass(frozen=True)
class Verified:
    key_id: str
    timestamp: int
    nonce: str
    grant: KeyGrant = field(default_factory=lambda: KeyGrant(b""), repr=False)

    def check(self, scope: Scope, collection_id: str | None) -> None:
        """Raise :class:`ScopeForbidden` (403) unless this key may do ``scope`` there."""
        if not self.grant.allows(scope, collection_id):
            where = f"collection {collection_id!r}" if collection_id else "this deployment"
            raise ScopeForbidden(f"key {self.key_id!r} may not {scope} in {where}")


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
        self._recent = RecentNonces()

    def precheck(self, headers: Mapping[str, str], *, request_id: str = "") -> None:
        """Everything that needs no body; raises like :meth:`verify` (401 or 403)."""
        key_id, timestamp, nonce, _ = self._headers(headers, request_id)
        if self.keys.secret(key_id) is None:
            self._log("unknown key id", request_id, key_id)
            raise Forbidden("request rejected")
        self._check_time(int(timestamp), request_id, key_id)
        if self._recent.seen(key_id, nonce, self._clock()):
            self._log("replayed nonce", request_id, key_id)
            raise Forbidden("request rejected")

    def _headers(self, headers: Mapping[str, str], request_id: str) -> tuple[str, str, str, str]:
        """The four signature headers, well-formed, or SignatureError (401)."""
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
        return key_id, timestamp, nonce, signature

    def _check_time(self, ts: int, request_id: str, key_id: str) -> None:
        now = self._clock()
        if abs(now - ts) > self.max_skew_s:
            self._log("timestamp outside the allowed skew", request_id, key_id, skew_s=now - ts)
            raise Forbidden("request rejected")

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
        key_id, timestamp, nonce, signature = self._headers(headers, request_id)
        grant = self.keys.grant(key_id)
        secret = None if grant is None else grant.secret
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
        self._check_time(ts, request_id, key_id)
        # Keep the record until no timestamp that could carry this nonce is acceptable.
        expires_at = float(ts + self.max_skew_s + 1)
        if not self.nonces.claim(key_id, nonce, expires_at):
            self._log("replayed nonce", request_id, key_id)
            raise Forbidden("request rejected")
        self._recent.add(key_id, nonce, expires_at, self._clock())
        assert grant is not None  # a missing key was refused above
        return Verified(key_id=key_id, timestamp=ts, nonce=nonce, grant=grant)

    @staticmethod
    def _log(reason: str, request_id: str, key_id: str | None, **extra: object) -> None:
        logger.warning(
            "signature rejected: %s",
            reason,
            extra=log_fields(request_id=request_id, key_id=key_id, reason=reason, **extra),
        )
