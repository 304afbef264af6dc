"""Replay guard storage: each (key id, nonce) may be claimed once.

A claim is an atomic create-if-absent, so two concurrent replays of the same
request cannot both succeed: SQLite's primary key locally, Firestore's
``create`` (fails with AlreadyExists) in the cloud. Records only need to live
as long as a timestamp is acceptable (the skew window on both sides); after
that the timestamp check alone rejects a replay, so expired records are
purged (SQLite) or left to Firestore's TTL policy on ``expires_at``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from facesearch.errors import TransientError

PURGE_EVERY_CLAIMS = 1000
FIRESTORE_COLLECTION = "nonces"


class NonceStore(Protocol):
    def claim(self, key_id: str, nonce: str, expires_at: float) -> bool:
        """Record the nonce; True when it was new, False when it was seen before."""
        ...


def nonce_id(key_id: str, nonce: str) -> str:
    """A fixed-length document id (nonces are client-chosen text)."""
    return hashlib.sha256(f"{key_id}\n{nonce}".encode()).hexdigest()


class SqliteNonceStore:
    """Nonces in a local SQLite file (shared safely by several processes on one machine)."""

    def __init__(self, path: Path | str, *, clock: Any = time.time) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        with self._lock, self._conn:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                # No fsync per claim: a replay cache only has to outlive a process crash
                # (WAL + NORMAL does), not a power cut; the fsync cost ~ms on every request.
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS nonces (id TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
            )
        self._claims = 0

    def claim(self, key_id: str, nonce: str, expires_at: float) -> bool:
        ident = nonce_id(key_id, nonce)
        try:
            with self._lock, self._conn:
                self._claims += 1
                if self._claims % PURGE_EVERY_CLAIMS == 0:
                    self._conn.execute("DELETE FROM nonces WHERE expires_at < ?", (self._clock(),))
                cursor = self._conn.execute(
                    "INSERT OR IGNORE INTO nonces (id, expires_at) VALUES (?, ?)",
                    (ident, expires_at),
                )
                return cursor.rowcount == 1
        except sqlite3.OperationalError as exc:  # locked beyond the timeout, disk full
            raise TransientError(f"nonce store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class FirestoreNonceStore:
    """Nonces as Firestore documents ``nonces/{sha256(key_id, nonce)}`` with ``expires_at``.

    Terraform puts a TTL policy on ``nonces.expires_at``; the document also
    records the key id for audits (never the nonce's owner secret).
    """

    def __init__(self, client: Any, *, collection: str = FIRESTORE_COLLECTION) -> None:
        self._collection = client.collection(collection)

    def claim(self, key_id: str, nonce: str, expires_at: float) -> bool:
        from google.api_core import exceptions as gexc

        doc = self._collection.document(nonce_id(key_id, nonce))
        try:
            doc.create({"key_id": key_id, "expires_at": datetime.fromtimestamp(expires_at, UTC)})
        except (gexc.AlreadyExists, gexc.Conflict):
            return False
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as exc:
            raise TransientError(f"nonce store unavailable: {exc}") from exc
        return True
