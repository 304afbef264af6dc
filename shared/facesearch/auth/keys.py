"""Key rings: which HMAC secrets the server accepts, by key id.

Several keys are active at once so that keys rotate without downtime: publish
a secret version with the old and the new id, move clients, then publish one
with only the new id. A key may be limited to some collections and scopes
(:class:`KeyGrant`): ``{"kiosk": {"secret": "...", "collections": ["event-1"],
"scopes": ["search"]}}``. In the cloud the ring is the JSON ``{key_id: secret}`` in
Secret Manager (``versions/latest``), re-read at most every ``refresh_s``
(contract: <= 5 min) and also, rate-limited, when a request names an id we do
not know yet (a client moved to a new key before our next scheduled refresh).
Locally the ring comes from ``FACESEARCH_SIGNING_KEYS``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from facesearch.auth.signing import MIN_SECRET_CHARS
from facesearch.errors import ConfigError, TransientError
from facesearch.logs import log_fields
from facesearch.storage.metadata import check_collection_id

logger = logging.getLogger(__name__)

SECRET_REFRESH_S = 300.0
UNKNOWN_KEY_REFRESH_S = 10.0  # at most one forced re-read per this many seconds
SECRET_MANAGER_URL = "https://secretmanager.googleapis.com/v1/{name}/versions/latest:access"


class Scope(StrEnum):
    """What a key may do. A kiosk or guest-page key gets ``search`` on one collection."""

    SEARCH = "search"  # search, match, read records, persons and stats
    INGEST = "ingest"  # add images
    MANAGE = "manage"  # create and change collections, persons and labels
    ERASE = "erase"  # forget images and persons, erase collections


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True)
class KeyGrant:
    """A key's secret and what it may touch: ``collections`` None means every one."""

    secret: bytes = field(repr=False)
    collections: frozenset[str] | None = None
    scopes: frozenset[Scope] = ALL_SCOPES

    def allows(self, scope: Scope, collection_id: str | None) -> bool:
        """May this key do ``scope`` on ``collection_id`` (None: deployment-wide)?"""
        if scope not in self.scopes:
            return False
        if self.collections is None:
            return True
        return collection_id is not None and collection_id in self.collections


class KeyRing(Protocol):
    def secret(self, key_id: str) -> bytes | None:
        """The secret for ``key_id``, or None when that id is not active."""
        ...

    def grant(self, key_id: str) -> KeyGrant | None:
        """The secret and scope of ``key_id``, or None when that id is not active."""
        ...

    def key_ids(self) -> list[str]: ...


def parse_keys(raw: Mapping[str, object], *, source: str) -> dict[str, KeyGrant]:
    """Validate ``{key_id: secret}`` or ``{key_id: {"secret", "collections", "scopes"}}``.

    A plain secret grants everything (the format from before scoped keys); an object
    limits the key to its ``collections`` (a list, or ``"*"``) and ``scopes``. Short
    or non-string secrets, unknown scopes and bad collection ids are refused.
    """
    keys: dict[str, KeyGrant] = {}
    for key_id, value in raw.items():
        if not isinstance(key_id, str) or not key_id or len(key_id) > 128:
            raise ConfigError(f"{source}: key ids must be 1..128 characters")
        spec = value if isinstance(value, Mapping) else {"secret": value}
        unknown = set(spec) - {"secret", "collections", "scopes"}
        if unknown:
            raise ConfigError(f"{source}: key {key_id!r} has unknown fields {sorted(unknown)}")
        secret = spec.get("secret")
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"{source}: the secret of key {key_id!r} must be a string of at least "
                f"{MIN_SECRET_CHARS} characters (e.g. openssl rand -hex 32)"
            )
        keys[key_id] = KeyGrant(
            secret.encode(),
            _collections(spec.get("collections", "*"), key_id, source),
            _scopes(spec.get("scopes", sorted(ALL_SCOPES)), key_id, source),
        )
    return keys


def _collections(value: object, key_id: str, source: str) -> frozenset[str] | None:
    if value == "*":
        return None
    if not isinstance(value, list) or not value:
        raise ConfigError(f'{source}: key {key_id!r}: collections must be "*" or a list')
    try:
        return frozenset(check_collection_id(v) for v in value)
    except ValueError as exc:
        raise ConfigError(f"{source}: key {key_id!r}: {exc}") from exc


def _scopes(value: object, key_id: str, source: str) -> frozenset[Scope]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{source}: key {key_id!r}: scopes must be a non-empty list")
    try:
        return frozenset(Scope(v) for v in names)
    except ValueError as exc:
        allowed = ", ".join(sorted(ALL_SCOPES))
        raise ConfigError(f"{source}: key {key_id!r}: scopes are {allowed}") from exc


class StaticKeyRing:
    """A fixed set of keys (local mode, tests)."""

    def __init__(self, keys: Mapping[str, object], *, source: str = "signing keys") -> None:
        self._keys = parse_keys(keys, source=source)

    def secret(self, key_id: str) -> bytes | None:
        grant = self._keys.get(key_id)
        return None if grant is None else grant.secret

    def grant(self, key_id: str) -> KeyGrant | None:
        return self._keys.get(key_id)

    def key_ids(self) -> list[str]:
        return sorted(self._keys)


class RefreshingKeyRing:
    """Keys re-read from a source (Secret Manager) on a timer and on unknown ids.

    A failed refresh keeps the last good keys (a Secret Manager hiccup must not
    lock every client out); only the very first load failing is an error.
    """

    def __init__(
        self,
        load: Callable[[], Mapping[str, object]],
        *,
        source: str,
        refresh_s: float = SECRET_REFRESH_S,
        unknown_refresh_s: float = UNKNOWN_KEY_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._source = source
        self._refresh_s = refresh_s
        self._unknown_refresh_s = unknown_refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, KeyGrant] | None = None
        self._loaded_at = float("-inf")

    def _reload(self) -> None:
        now = self._clock()
        try:
            keys = parse_keys(self._load(), source=self._source)
        except Exception as exc:
            self._loaded_at = now  # back off: do not hammer a failing source per request
            if self._keys is None:
                raise TransientError(f"cannot load signing keys from {self._source}") from exc
            logger.warning(
                "signing key refresh failed; keeping the previous keys",
                extra=log_fields(source=self._source, error=type(exc).__name__),
            )
            return
        self._keys, self._loaded_at = keys, now
        logger.info("signing keys loaded", extra=log_fields(source=self._source, keys=len(keys)))

    def _current(self) -> dict[str, KeyGrant]:
        with self._lock:
            if self._keys is None or self._clock() - self._loaded_at >= self._refresh_s:
                self._reload()
            assert self._keys is not None
            return self._keys

    def secret(self, key_id: str) -> bytes | None:
        grant = self.grant(key_id)
        return None if grant is None else grant.secret

    def grant(self, key_id: str) -> KeyGrant | None:
        found = self._current().get(key_id)
        if found is not None:
            return found
        with self._lock:
            if self._clock() - self._loaded_at >= self._unknown_refresh_s:
                self._reload()
            assert self._keys is not None
            return self._keys.get(key_id)

    def key_ids(self) -> list[str]:
        return sorted(self._current())


def secret_manager_loader(
    secret_name: str, *, timeout_s: float = 10.0
) -> Callable[[], Mapping[str, object]]:
    """Read ``<secret_name>/versions/latest`` over REST with the runtime's credentials.

    REST through google-auth (already a dependency) instead of the Secret Manager
    client library: one call, no extra package in the image.
    """

    def load() -> Mapping[str, object]:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        response = session.get(SECRET_MANAGER_URL.format(name=secret_name), timeout=timeout_s)
        response.raise_for_status()
        payload = base64.b64decode(response.json()["payload"]["data"])
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise ConfigError(f"{secret_name}: expected a JSON object {{key_id: secret}}")
        return data

    return load
