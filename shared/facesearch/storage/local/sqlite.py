"""One small SQLite file shared safely by threads and processes on one machine.

The embedded claim tables (replay guard, Cloudinary ledger) need the same
things: WAL mode, a process-wide lock around the connection, busy errors
surfacing as :class:`TransientError`, and expired rows purged now and then.
Files are created ``0600``: they can hold biometric data (the metadata store)
or security state (nonces).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from facesearch.errors import TransientError

PURGE_EVERY_WRITES = 1000


def private_file(path: str) -> None:
    """Create ``path`` (and its folder) readable by this user only, if it is a file path."""
    if path == ":memory:":
        return
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    file.touch(mode=0o600, exist_ok=True)


class SqliteFile:
    """A locked connection; :meth:`write` is a transaction with a purge every N writes."""

    def __init__(self, path: Path | str, *, schema: str, purge_sql: str | None = None) -> None:
        self.path = str(path)
        private_file(self.path)
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        self._purge_sql = purge_sql
        self._writes = 0
        with self.lock, self.conn:
            if self.path != ":memory:":
                self.conn.execute("PRAGMA journal_mode=WAL")
                # No fsync per write: these tables only have to outlive a process crash
                # (WAL + NORMAL does), not a power cut; an fsync costs ~ms per request.
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(schema)

    @contextmanager
    def write(self, now: float) -> Iterator[sqlite3.Connection]:
        """A write transaction; expired rows (``purge_sql`` with ``now``) go every N writes."""
        try:
            with self.lock, self.conn:
                self._writes += 1
                if self._purge_sql and self._writes % PURGE_EVERY_WRITES == 0:
                    self.conn.execute(self._purge_sql, (now,))
                yield self.conn
        except sqlite3.OperationalError as exc:  # locked beyond the timeout, disk full
            raise TransientError(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class SqliteTable:
    """An adapter backed by one table of one file: its schema and how expired rows go."""

    SCHEMA: ClassVar[str]
    PURGE: ClassVar[str | None] = None

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self._db = SqliteFile(path, schema=self.SCHEMA, purge_sql=self.PURGE)
        self.path = self._db.path
        self._clock = clock

    def close(self) -> None:
        self._db.close()
