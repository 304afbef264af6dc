"""Login links, session cookies, CSRF tokens and share links: what the console signs.

A browser cannot hold an API signing key, so the console gives it HMAC-signed, expiring
tokens instead, all under one console key (:func:`console_key`):

* a **login link** (``/console/login?token=``) is random and kept only as its hash in
  memory (:class:`LoginLinks`); redeeming it deletes it, so it works once;
* a **session** cookie value is ``<payload>.<mac>`` (:class:`Sessions`): subject, issue
  and expiry times; nothing is stored server-side, the expiry is inside the MAC;
* a **CSRF token** is a MAC of the session subject (:meth:`Sessions.csrf_token`): a page
  reads it from ``/console/api/session`` and sends it in ``X-CSRF-Token`` on every write;
  another site can make the browser send the cookie, but cannot read the token;
* a **share link** token (:class:`ShareLinks`) names a collection, an optional source
  prefix, whether person names may be shown, and its expiry.

Tokens are URL-safe base64 of a compact JSON payload plus a truncated SHA-256 HMAC;
each kind has its own MAC domain, so a share token is never a valid session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facesearch.config import Settings
from facesearch.errors import ConfigError

KEY_FILE = "console.key"
_MAC_BYTES = 20


def console_key(settings: Settings) -> bytes:
    """The configured console secret, else a random key kept in ``data_dir`` (created once)."""
    if settings.console.secret is not None:
        value = settings.console.secret.get_secret_value()
        if len(value) < 32:
            raise ConfigError("FACESEARCH_CONSOLE_SECRET must be at least 32 characters")
        return value.encode()
    path = Path(settings.data_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("xb") as handle:  # first process to get here writes it
            handle.write(secrets.token_bytes(32))
        path.chmod(0o600)
    except FileExistsError:
        pass
    return path.read_bytes()


def derived_key(secrets_: Iterable[bytes]) -> bytes:
    """A console key derived from the API signing secrets (cloud, no console secret set):
    the same on every instance, and rotating the signing keys rotates it (which also
    revokes every share link and session)."""
    material = sorted(secrets_)
    if not material:
        raise ConfigError("the console needs FACESEARCH_CONSOLE_SECRET or signing keys")
    return hmac.new(b"facesearch-console-v1", b"\x00".join(material), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Macer:
    """HMAC-SHA256 in named domains, with constant-time checks."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError("console key too short")
        self._key = key

    def mac(self, domain: str, data: bytes) -> str:
        digest = hmac.new(self._key, domain.encode() + b"\x00" + data, hashlib.sha256).digest()
        return _b64(digest[:_MAC_BYTES])

    def seal(self, domain: str, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self.mac(domain, body.encode())}"

    def open(self, domain: str, token: str, *, max_chars: int = 1024) -> dict[str, Any] | None:
        """The payload of a token this key sealed in ``domain``, or None (any defect)."""
        if not token or len(token) > max_chars or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        if not token.isascii():  # compare_digest refuses non-ASCII str; no token has any
            return None
        if not hmac.compare_digest(mac, self.mac(domain, body.encode())):
            return None
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        return payload if isinstance(payload, dict) else None


class LoginLinks:
    """One-time login tokens: only their hashes are kept, and each redeems once."""

    def __init__(self, ttl_s: int, *, clock: Any = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            self._pending = {h: t for h, t in self._pending.items() if t > now}
            self._pending[_hash(token)] = now + self.ttl_s
        return token

    def redeem(self, token: str) -> bool:
        """True once for an issued, unexpired token; False ever after (or for junk)."""
        if not token or len(token) > 128:
            return False
        with self._lock:
            expires = self._pending.pop(_hash(token), None)
        return expires is not None and expires > self._clock()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    subject: str
    issued_at: float
    expires_at: float


class Sessions:
    """Stateless session cookies and the CSRF tokens bound to them."""

    COOKIE = "fs_console"

    def __init__(self, macer: Macer, ttl_s: int, *, clock: Any = time.time) -> None:
        self._macer = macer
        self.ttl_s = ttl_s
        self._clock = clock

    def new(self, subject: str | None = None) -> tuple[Session, str]:
        now = float(int(self._clock()))
        session = Session(subject or "local-" + secrets.token_hex(8), now, now + self.ttl_s)
        value = self._macer.seal(
            "session", {"s": session.subject, "i": session.issued_at, "e": session.expires_at}
        )
        return session, value

    def read(self, value: str | None) -> Session | None:
        """The session of a cookie value, or None when forged, malformed or expired."""
        payload = self._macer.open("session", value or "")
        if payload is None:
            return None
        try:
            session = Session(str(payload["s"]), float(payload["i"]), float(payload["e"]))
        except (KeyError, TypeError, ValueError):
            return None
        return session if session.expires_at > self._clock() else None

    def csrf_token(self, subject: str) -> str:
        return self._macer.mac("csrf", subject.encode())

    def check_csrf(self, subject: str, token: str | None) -> bool:
        return (
            bool(token)
            and str(token).isascii()
            and hmac.compare_digest(str(token), self.csrf_token(subject))
        )


@dataclass(frozen=True)
class ShareGrant:
    """What one share link allows: selfie search in one collection (or a prefix of it)."""

    link_id: str
    collection_id: str
    prefix: str
    show_names: bool
    expires_at: float
    title: str = ""


class ShareLinks:
    """Unlisted, expiring share tokens (stateless; rotating the console key revokes all)."""

    def __init__(self, macer: Macer, max_ttl_s: int, *, clock: Any = time.time) -> None:
        self._macer = macer
        self.max_ttl_s = max_ttl_s
        self._clock = clock

    def issue(
        self,
        collection_id: str,
        *,
        ttl_s: int,
        prefix: str = "",
        show_names: bool = False,
        title: str = "",
    ) -> tuple[ShareGrant, str]:
        if not 1 <= ttl_s <= self.max_ttl_s:
            raise ValueError(f"ttl_s must be within 1..{self.max_ttl_s}")
        grant = ShareGrant(
            secrets.token_hex(6),
            collection_id,
            prefix,
            show_names,
            float(int(self._clock()) + ttl_s),
            title,
        )
        token = self._macer.seal(
            "share",
            {
                "l": grant.link_id,
                "c": grant.collection_id,
                "p": grant.prefix,
                "n": grant.show_names,
                "e": grant.expires_at,
                "t": grant.title,
            },
        )
        return grant, token

    def read(self, token: str) -> ShareGrant | None:
        payload = self._macer.open("share", token, max_chars=2048)
        if payload is None:
            return None
        try:
            grant = ShareGrant(
                str(payload["l"]),
                str(payload["c"]),
                str(payload["p"]),
                bool(payload["n"]),
                float(payload["e"]),
                str(payload.get("t", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return grant if grant.expires_at > self._clock() else None

    def photo_sig(self, link_id: str, image_id: str, expires: int) -> str:
        return self._macer.mac("photo", f"{link_id}\x00{image_id}\x00{expires}".encode())

    def check_photo(self, link_id: str, image_id: str, expires: str, sig: str) -> bool:
        if not (expires.isascii() and expires.isdigit()) or int(expires) < self._clock():
            return False
        if not sig.isascii():
            return False
        return hmac.compare_digest(sig, self.photo_sig(link_id, image_id, int(expires)))
