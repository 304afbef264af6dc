"""SQLite adapter of the Cloudinary event-ledger port (embedded mode, unit tests)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from facesearch.storage.local.sqlite import SqliteTable


class SqliteEventLedger(SqliteTable):
    """Claims in a local SQLite file; an expired claim counts as absent."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS cloudinary_events"
        " (id TEXT PRIMARY KEY, info TEXT NOT NULL, expires_at REAL NOT NULL)"
    )
    PURGE = "DELETE FROM cloudinary_events WHERE expires_at < ?"

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

    def purge_collection(self, collection_id: str, *, limit: int = 500) -> int:
        with self._db.write(self._clock()) as conn:
            cursor = conn.execute(
                "DELETE FROM cloudinary_events WHERE id IN (SELECT id FROM cloudinary_events"
                " WHERE json_extract(info, '$.collection') = ? LIMIT ?)",
                (collection_id, max(limit, 0)),
            )
            return cursor.rowcount

    def count_collection(self, collection_id: str) -> int:
        with self._db.lock:
            row = self._db.conn.execute(
                "SELECT COUNT(*) FROM cloudinary_events"
                " WHERE json_extract(info, '$.collection') = ?",
                (collection_id,),
            ).fetchone()
        return int(row[0])

    def put(self, key: str, info: Mapping[str, str], expires_at: float) -> None:
        with self._db.write(self._clock()) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO cloudinary_events VALUES (?, ?, ?)",
                (key, json.dumps(dict(info)), expires_at),
            )
