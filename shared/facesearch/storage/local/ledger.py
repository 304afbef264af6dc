"""SQLite adapter of the Cloudinary event-ledger port (embedded mode, unit tests)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from facesearch.storage.local.sqlite import SqliteFile


class SqliteEventLedger:
    """Claims in a local SQLite file; an expired claim counts as absent."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self._db = SqliteFile(
            path,
            schema="CREATE TABLE IF NOT EXISTS cloudinary_events"
            " (id TEXT PRIMARY KEY, info TEXT NOT NULL, expires_at REAL NOT NULL)",
            purge_sql="DELETE FROM cloudinary_events WHERE expires_at < ?",
        )
        self.path = self._db.path
        self._clock = clock

    def claim(self, key: str, info: Mapping[str, str], expires_at: float) -> bool:
        now = self._clock()
        with self._db.write(now) as conn:
            conn.execute(
                "DELETE FROM cloudinary_events WHERE id = ? AND expires_at < ?", (key, now)
            )
            cursor = conn.execute(
                "INSERT OR IGNORE INTO cloudinary_events VALUES (?, ?, ?)",
                (key, json.dumps(dict(info)), expires_at),
            )
            return cursor.rowcount == 1

    def release(self, key: str) -> None:
        with self._db.write(self._clock()) as conn:
            conn.execute("DELETE FROM cloudinary_events WHERE id = ?", (key,))

    def get(self, key: str) -> dict[str, str] | None:
        with self._db.lock:
            row = self._db.conn.execute(
                "SELECT info FROM cloudinary_events WHERE id = ? AND expires_at >= ?",
                (key, self._clock()),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, key: str, info: Mapping[str, str], expires_at: float) -> None:
        with self._db.write(self._clock()) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO cloudinary_events VALUES (?, ?, ?)",
                (key, json.dumps(dict(info)), expires_at),
            )
