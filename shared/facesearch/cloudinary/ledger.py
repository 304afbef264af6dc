"""Which Cloudinary uploads we have already queued: atomic create-if-absent per event key.

The key is public_id + version (hashed, see ``delivery.event_key``), so
Cloudinary's retries, a duplicate notification and the ``eager`` notification
of the same upload all find the first claim and are acknowledged without a
second ingest request. Firestore ``create`` (fails with AlreadyExists) in the
cloud, SQLite's primary key locally; two concurrent duplicates cannot both win.

A claim is released again when publishing the ingest request fails, so
Cloudinary's retry of that notification queues it. (A crash between claim and
publish would still lose the event; the window is one Pub/Sub publish call.)
Records expire after :data:`LEDGER_TTL_S` (Firestore TTL policy on
``cloudinary_events.expires_at``; purged here locally); a duplicate later than
that is queued again and ingest acknowledges it as already done.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from facesearch.config import Settings
from facesearch.errors import TransientError

FIRESTORE_COLLECTION = "cloudinary_events"
LEDGER_TTL_S = 30 * 24 * 3600
PURGE_EVERY_CLAIMS = 1000


class EventLedger(Protocol):
    def claim(self, key: str, info: Mapping[str, str], expires_at: float) -> bool:
        """Record the event; True when it is new, False when it was claimed before."""
        ...

    def release(self, key: str) -> None:
        """Forget a claim whose follow-up failed (missing is fine)."""
        ...

    def get(self, key: str) -> dict[str, str] | None:
        """The claim's info (unexpired), or None."""
        ...

    def put(self, key: str, info: Mapping[str, str], expires_at: float) -> None:
        """Create or overwrite a claim (e.g. mark it deleted)."""
        ...


class SqliteEventLedger:
    """Claims in a local SQLite file (embedded mode, unit tests)."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._claims = 0
        self._conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        with self._lock, self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS cloudinary_events"
                " (id TEXT PRIMARY KEY, info TEXT NOT NULL, expires_at REAL NOT NULL)"
            )

    def claim(self, key: str, info: Mapping[str, str], expires_at: float) -> bool:
        try:
            with self._lock, self._conn:
                self._claims += 1
                now = self._clock()
                if self._claims % PURGE_EVERY_CLAIMS == 0:
                    self._conn.execute("DELETE FROM cloudinary_events WHERE expires_at < ?", (now,))
                self._conn.execute(
                    "DELETE FROM cloudinary_events WHERE id = ? AND expires_at < ?", (key, now)
                )
                cursor = self._conn.execute(
                    "INSERT OR IGNORE INTO cloudinary_events VALUES (?, ?, ?)",
                    (key, json.dumps(dict(info)), expires_at),
                )
                return cursor.rowcount == 1
        except sqlite3.OperationalError as exc:
            raise TransientError(f"event ledger {self.path}: {exc}") from exc

    def release(self, key: str) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM cloudinary_events WHERE id = ?", (key,))

    def get(self, key: str) -> dict[str, str] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT info FROM cloudinary_events WHERE id = ? AND expires_at >= ?",
                (key, self._clock()),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, key: str, info: Mapping[str, str], expires_at: float) -> None:
        try:
            with self._lock, self._conn:
                self._conn.execute(
                    "INSERT OR REPLACE INTO cloudinary_events VALUES (?, ?, ?)",
                    (key, json.dumps(dict(info)), expires_at),
                )
        except sqlite3.OperationalError as exc:
            raise TransientError(f"event ledger {self.path}: {exc}") from exc


class FirestoreEventLedger:
    """Claims as documents ``cloudinary_events/{key}`` with ``expires_at`` (TTL policy)."""

    def __init__(self, client: Any, *, collection: str = FIRESTORE_COLLECTION) -> None:
        self._collection = client.collection(collection)

    def claim(self, key: str, info: Mapping[str, str], expires_at: float) -> bool:
        from google.api_core import exceptions as gexc

        document = {**info, "expires_at": datetime.fromtimestamp(expires_at, UTC)}
        try:
            self._collection.document(key).create(document)
        except (gexc.AlreadyExists, gexc.Conflict):
            return False
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as exc:
            raise TransientError(f"event ledger unavailable: {exc}") from exc
        return True

    def release(self, key: str) -> None:
        self._collection.document(key).delete()

    def get(self, key: str) -> dict[str, str] | None:
        from google.api_core import exceptions as gexc

        try:
            snapshot = self._collection.document(key).get()
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as exc:
            raise TransientError(f"event ledger unavailable: {exc}") from exc
        if not snapshot.exists:
            return None
        data = dict(snapshot.to_dict() or {})
        expires = data.pop("expires_at", None)
        if isinstance(expires, datetime) and expires.timestamp() < time.time():
            return None  # expired, the TTL policy has not removed it yet
        return {str(k): str(v) for k, v in data.items()}

    def put(self, key: str, info: Mapping[str, str], expires_at: float) -> None:
        from google.api_core import exceptions as gexc

        document = {**info, "expires_at": datetime.fromtimestamp(expires_at, UTC)}
        try:
            self._collection.document(key).set(document)
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as exc:
            raise TransientError(f"event ledger unavailable: {exc}") from exc


def ledger_from_settings(settings: Settings, *, firestore_client: Any = None) -> EventLedger:
    """Firestore on the ``gcp`` backend, ``<data_dir>/cloudinary-events.sqlite3`` otherwise."""
    if settings.backend == "gcp" or firestore_client is not None:
        client = firestore_client
        if client is None:
            import importlib

            firestore = importlib.import_module("google.cloud.firestore")
            client = firestore.Client(
                project=settings.project, database=settings.firestore_database
            )
        return FirestoreEventLedger(client)
    return SqliteEventLedger(settings.data_dir / "cloudinary-events.sqlite3")
