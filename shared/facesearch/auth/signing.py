"""HMAC-SHA256 request signatures: the canonical string, signing, header names.

Client and server build the same canonical string (PATH is the percent-decoded
path re-encoded one canonical way, so a server that sees decoded paths agrees)::

    METHOD \\n PATH \\n SORTED_QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA256(BODY))

``SORTED_QUERY`` is every query parameter percent-encoded (RFC 3986 unreserved
characters kept) and sorted by name, then value, so that proxies and client
libraries that reorder parameters do not break signatures. The body is
covered through its hash, so a tampered body fails the signature. The secret
is the UTF-8 bytes of the key string exactly as stored (Secret Manager JSON or
``FACESEARCH_SIGNING_KEYS``), so both sides need no decoding convention.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit

HEADER_KEY_ID = "X-Facesearch-Key-Id"
HEADER_TIMESTAMP = "X-Facesearch-Timestamp"
HEADER_NONCE = "X-Facesearch-Nonce"
HEADER_SIGNATURE = "X-Facesearch-Signature"
SIGNATURE_HEADERS = (HEADER_KEY_ID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

NONCE_BYTES = 18  # 24 url-safe characters: collisions are not a practical concern
MIN_SECRET_CHARS = 32  # 128+ bits when the secret is hex / base64 of random bytes


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _enc(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Sorted, percent-encoded ``name=value`` pairs joined by ``&`` (empty when none)."""
    encoded = sorted((_enc(name), _enc(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def query_pairs(query_string: str) -> list[tuple[str, str]]:
    """Decode a raw query string the way both sides must (blank values kept)."""
    return parse_qsl(query_string, keep_blank_values=True)


def canonical_path(path: str) -> str:
    """The *decoded* path, percent-encoded one canonical way (servers see paths decoded)."""
    return quote(path or "/", safe="/-_.~")


def canonical_string(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    *,
    timestamp: str,
    nonce: str,
    body_sha256: str,
) -> bytes:
    return "\n".join(
        (
            method.upper(),
            canonical_path(path),
            canonical_query(query),
            timestamp,
            nonce,
            body_sha256,
        )
    ).encode()


def compute_signature(secret: bytes, canonical: bytes) -> str:
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


@dataclass(frozen=True)
class SigningKey:
    """One HMAC key as a client holds it: the id sent in the header and the secret."""

    key_id: str
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"SigningKey(key_id={self.key_id!r}, secret=<hidden>)"


def sign_request(
    key: SigningKey,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers that authenticate ``method url body``; ``url`` may be a full URL or a path."""
    parts = urlsplit(url)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    canonical = canonical_string(
        method,
        unquote(parts.path or "/"),
        query_pairs(parts.query),
        timestamp=ts,
        nonce=nonce,
        body_sha256=body_digest(body),
    )
    return {
        HEADER_KEY_ID: key.key_id,
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: compute_signature(key.secret.encode(), canonical),
    }


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup for plain dicts (werkzeug's Headers already are)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None
