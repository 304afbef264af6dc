"""Request authentication: HMAC signatures, key rings with rotation, the replay guard.

Clients call :func:`sign_request`; the query service builds one
:class:`Verifier` per instance with :func:`verifier_from_settings`.
"""

from __future__ import annotations

from typing import Any

from facesearch.auth.keys import KeyRing, RefreshingKeyRing, StaticKeyRing, secret_manager_loader
from facesearch.auth.nonces import FirestoreNonceStore, NonceStore, SqliteNonceStore
from facesearch.auth.signing import SIGNATURE_HEADERS, SigningKey, sign_request
from facesearch.auth.verify import Verified, Verifier
from facesearch.config import Settings
from facesearch.errors import ConfigError

__all__ = [
    "SIGNATURE_HEADERS",
    "FirestoreNonceStore",
    "KeyRing",
    "NonceStore",
    "RefreshingKeyRing",
    "SigningKey",
    "SqliteNonceStore",
    "StaticKeyRing",
    "Verified",
    "Verifier",
    "client_key_from_settings",
    "keyring_from_settings",
    "nonce_store_from_settings",
    "sign_request",
    "verifier_from_settings",
]


def keyring_from_settings(settings: Settings) -> KeyRing:
    """Secret Manager when ``signing_keys_secret`` is set, else ``FACESEARCH_SIGNING_KEYS``."""
    if settings.signing_keys_secret:
        return RefreshingKeyRing(
            secret_manager_loader(settings.signing_keys_secret),
            source=settings.signing_keys_secret,
        )
    return StaticKeyRing(
        {key_id: secret.get_secret_value() for key_id, secret in settings.signing_keys.items()},
        source="FACESEARCH_SIGNING_KEYS",
    )


def nonce_store_from_settings(settings: Settings, *, firestore_client: Any = None) -> NonceStore:
    """Firestore on the ``gcp`` backend, a SQLite file under ``data_dir`` otherwise."""
    if getattr(settings, "backend", "local") == "gcp" or firestore_client is not None:
        client = firestore_client
        if client is None:
            # importlib: a static `from google.cloud import firestore` makes mypy resolve
            # google.cloud as a typed package and then lose google.cloud.storage.
            import importlib

            firestore = importlib.import_module("google.cloud.firestore")
            client = firestore.Client(
                project=getattr(settings, "project", None),
                database=getattr(settings, "firestore_database", None) or "(default)",
            )
        return FirestoreNonceStore(client)
    return SqliteNonceStore(settings.nonce_db or settings.data_dir / "nonces.sqlite3")


def verifier_from_settings(settings: Settings) -> Verifier:
    return Verifier(
        keyring_from_settings(settings),
        nonce_store_from_settings(settings),
        max_skew_s=settings.signature_max_skew_s,
    )


def client_key_from_settings(settings: Settings) -> SigningKey:
    """The key a local client signs with: explicit id+secret, or the only configured key."""
    if settings.client_key_id and settings.client_secret is not None:
        return SigningKey(settings.client_key_id, settings.client_secret.get_secret_value())
    keys = settings.signing_keys
    if settings.client_key_id and settings.client_key_id in keys:
        return SigningKey(settings.client_key_id, keys[settings.client_key_id].get_secret_value())
    if len(keys) == 1 and not settings.client_key_id:
        ((key_id, secret),) = keys.items()
        return SigningKey(key_id, secret.get_secret_value())
    raise ConfigError(
        "no signing key: set FACESEARCH_CLIENT_KEY_ID and FACESEARCH_CLIENT_SECRET "
        "(or exactly one key in FACESEARCH_SIGNING_KEYS)"
    )
