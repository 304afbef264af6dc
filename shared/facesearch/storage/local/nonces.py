"""SQLite adapter of the replay-guard port (embedded mode, ``facesearch serve``)."""

from __future__ import annotations

from facesearch.storage.local.sqlite import SqliteTable
from facesearch.storage.nonces import nonce_id


class SqliteNonceStore(SqliteTable):
    """Nonces in a local SQLite file (shared safely by several processes on one machine)."""

    SCHEMA = "CREATE TABLE IF NOT EXISTS nonces (id TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
    PURGE = "DELETE FROM nonces WHERE expires_at < ?"

    def claim(self, key_id: str, nonce: str, expires_at: float) -> bool:
        with self._db.write(self._clock()) as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO nonces (id, expires_at) VALUES (?, ?)",
                (nonce_id(key_id, nonce), expires_at),
            )
            return cursor.rowcount == 1
