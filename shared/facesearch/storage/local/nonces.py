"""SQLite adapter of the replay-guard port (embedded mode, ``facesearch serve``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from facesearch.storage.local.sqlite import SqliteFile
from facesearch.storage.nonces import nonce_id


class SqliteNonceStore:
    """Nonces in a local SQLite file (shared safely by several processes on one machine)."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self._db = SqliteFile(
            path,
            schema="CREATE TABLE IF NOT EXISTS nonces"
            " (id TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
            purge_sql="DELETE FROM nonces WHERE expires_at < ?",
        )
        self.path = self._db.path
        self._clock = clock

    def claim(self, key_id: str, nonce: str, expires_at: float) -> bool:
        with self._db.write(self._clock()) as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO nonces (id, expires_at) VALUES (?, ?)",
                (nonce_id(key_id, nonce), expires_at),
            )
            return cursor.rowcount == 1

    def close(self) -> None:
        self._db.close()
