"""In-process adapter of the bus port: Pub/Sub's delivery semantics in one process.

Messages queue per topic; :meth:`InProcessBus.drain` hands them to the subscribed
handler in batches (a handler that raises gets them again, up to ``max_attempts``,
then they become dead letters), so the same handlers as in the cloud run unchanged
and nothing is lost silently.

**Durable** when given a file (embedded mode: ``<data_dir>/bus.sqlite3``): a message to
a subscribed topic is committed to SQLite before :meth:`publish` returns, exactly the
promise Pub/Sub makes, so the ingest may mark an image ``done`` after publishing its
embeddings and a process killed before its indexer ran leaves the messages behind for
the next process on the same data dir to deliver (issue 18's crash hole). A batch being
delivered is *leased* by its process; the lease of a process that no longer runs, or
that ran out, is void. Dead letters are rows too: ``facesearch dlq`` lists and replays
them. Without a file the same tables live in memory (unit tests).

Messages to a topic nobody subscribed to in this process (``face-events`` in embedded
mode) are kept in memory only: like a Pub/Sub topic without a subscription, nothing
durable waits for a consumer that does not exist.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from facesearch.errors import NotFound, TransientError
from facesearch.logs import log_fields
from facesearch.storage.bus import MAX_DELIVERY_ATTEMPTS, DeadLetterInfo, Handler, Message
from facesearch.storage.local.sqlite import private_file
from facesearch.telemetry import inject

logger = logging.getLogger(__name__)

#: a batch handed to a handler is leased this long (a crashed process's lease also ends
#: at once: leases name their process id)
LEASE_S = 300.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    data BLOB NOT NULL,
    attributes TEXT NOT NULL,
    published_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner INTEGER,
    lease_until REAL NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    error TEXT
)
"""


@dataclass(frozen=True)
class DeadLetter:
    """A message that exhausted its delivery attempts (``facesearch dlq``)."""

    topic: str
    message: Message
    error: str
    published_at: float

    # (topic, message, error) unpacking, as the list of tuples this used to be
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.topic, self.message, self.error))


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class InProcessBus:
    """At-least-once bus for the embedded mode (durable with ``path``) and unit tests."""

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        max_attempts: int = MAX_DELIVERY_ATTEMPTS,
        batch_size: int = 64,
    ) -> None:
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.path = str(path) if path is not None else ":memory:"
        private_file(self.path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            # a message must outlive the process that published it (WAL + NORMAL does),
            # not a power cut: an fsync per publish would cost milliseconds per image
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(SCHEMA)
        self._handlers: dict[str, Handler] = {}
        self._unsubscribed: dict[str, deque[Message]] = {}
        #: everything this process published, per topic (tests and the CLI summary read it)
        self.published: dict[str, list[Message]] = {}

    @property
    def durable(self) -> bool:
        return self.path != ":memory:"

    def subscribe(self, topic: str, handler: Handler) -> None:
        with self._lock:
            self._handlers[topic] = handler
            for message in self._unsubscribed.pop(topic, deque()):
                self._insert(topic, [message])

    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        """Stored (committed, when durable) before this returns; the messages' ids."""
        messages = [replace(m, attributes=inject(m.attributes)) for m in messages]
        with self._lock:
            if topic in self._handlers:
                ids = self._insert(topic, messages)
                stamped = [replace(m, message_id=i) for m, i in zip(messages, ids, strict=True)]
            else:
                queue = self._unsubscribed.setdefault(topic, deque())
                stamped = [
                    replace(m, message_id=f"m{id(m):x}-{len(queue) + n}", delivery_attempt=1)
                    for n, m in enumerate(messages)
                ]
                queue.extend(stamped)
                ids = [m.message_id for m in stamped]
            self.published.setdefault(topic, []).extend(stamped)
            return ids

    def _insert(self, topic: str, messages: Sequence[Message]) -> list[str]:
        now = time.time()
        try:
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                ids = []
                for m in messages:
                    cursor = self._conn.execute(
                        "INSERT INTO bus_messages (topic, data, attributes, published_at)"
                        " VALUES (?, ?, ?, ?)",
                        (topic, bytes(m.data), json.dumps(dict(m.attributes)), now),
                    )
                    ids.append(str(cursor.lastrowid))
                return ids
        except sqlite3.OperationalError as exc:
            raise TransientError(f"bus {self.path}: {exc}") from exc

    def pending(self, topic: str | None = None) -> int:
        """Messages waiting for delivery (not dead), to ``topic`` or to any subscribed topic."""
        with self._lock:
            if topic is not None:
                (count,) = self._conn.execute(
                    "SELECT COUNT(*) FROM bus_messages WHERE topic = ? AND dead = 0", (topic,)
                ).fetchone()
                return int(count) + len(self._unsubscribed.get(topic, ()))
            topics = list(self._handlers)
            if not topics:
                return 0
            marks = ",".join("?" * len(topics))
            (count,) = self._conn.execute(
                f"SELECT COUNT(*) FROM bus_messages WHERE dead = 0 AND topic IN ({marks})",
                topics,
            ).fetchone()
            return int(count)

    # --- delivery --------------------------------------------------------------------------

    def _lease(self) -> tuple[str, list[tuple[int, Message]]] | None:
        """The next batch of one subscribed topic, leased to this process."""
        topics = list(self._handlers)
        if not topics:
            return None
        now = time.time()
        marks = ",".join("?" * len(topics))
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            rows = self._conn.execute(
                "SELECT id, topic, data, attributes, attempts, lease_owner, lease_until"
                f" FROM bus_messages WHERE dead = 0 AND topic IN ({marks}) ORDER BY id",
                topics,
            ).fetchall()
            free = [r for r in rows if r[6] <= now or not _alive(r[5])]
            if not free:
                return None
            topic = free[0][1]
            batch = [r for r in free if r[1] == topic][: self.batch_size]
            self._conn.executemany(
                "UPDATE bus_messages SET attempts = attempts + 1, lease_owner = ?,"
                " lease_until = ? WHERE id = ?",
                [(os.getpid(), now + LEASE_S, r[0]) for r in batch],
            )
        return topic, [
            (
                r[0],
                Message(bytes(r[2]), json.loads(r[3]), str(r[0]), delivery_attempt=r[4] + 1),
            )
            for r in batch
        ]

    def drain(self) -> int:
        """Deliver until every subscribed topic is empty; returns messages acknowledged.

        Also delivers what earlier processes on the same file published and never got to
        deliver (a durable bus). Messages to topics nobody subscribed to stay queued.
        """
        acked = 0
        while True:
            leased = self._lease()
            if leased is None:
                return acked
            topic, rows = leased
            handler = self._handlers[topic]
            batch = [m for _, m in rows]
            try:
                handler(batch)
                self._ack([i for i, _ in rows])
                acked += len(batch)
            except Exception as exc:
                if len(batch) == 1:
                    self._nack(topic, rows, exc)
                    continue
                # Pub/Sub pushes each message on its own: one poison message must not
                # drag its batch-mates to the dead-letter queue, so retry them singly.
                for row in rows:
                    try:
                        handler([row[1]])
                        self._ack([row[0]])
                        acked += 1
                    except Exception as single_exc:
                        self._nack(topic, [row], single_exc)

    def _ack(self, ids: list[int]) -> None:
        with self._lock, self._conn:
            self._conn.executemany("DELETE FROM bus_messages WHERE id = ?", [(i,) for i in ids])

    def _nack(self, topic: str, rows: list[tuple[int, Message]], exc: Exception) -> None:
        with self._lock, self._conn:
            for row_id, message in rows:
                dead = message.delivery_attempt >= self.max_attempts
                self._conn.execute(
                    "UPDATE bus_messages SET lease_owner = NULL, lease_until = 0, dead = ?,"
                    " error = ? WHERE id = ?",
                    (int(dead), repr(exc), row_id),
                )
                if dead:
                    logger.error(
                        "message dead-lettered",
                        extra=log_fields(
                            topic=topic,
                            message_id=message.message_id,
                            attempts=message.delivery_attempt,
                            error=repr(exc),
                        ),
                    )
        logger.warning(
            "delivery failed, will redeliver",
            extra=log_fields(topic=topic, messages=len(rows), error=repr(exc)),
        )

    # --- dead letters ------------------------------------------------------------------------

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """Messages that exhausted their attempts, oldest first (this file's, any process)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, topic, data, attributes, attempts, error, published_at"
                " FROM bus_messages WHERE dead = 1 ORDER BY id"
            ).fetchall()
        return [
            DeadLetter(
                r[1],
                Message(bytes(r[2]), json.loads(r[3]), str(r[0]), delivery_attempt=r[4]),
                r[5] or "",
                r[6],
            )
            for r in rows
        ]

    def replay_dead_letter(self, message_id: str) -> bool:
        """Put a dead letter back in its queue with fresh attempts; False if no such one.

        Idempotent: the row moves (it is not copied), so replaying twice cannot deliver it
        twice, and the consumers are idempotent anyway.
        """
        with self._lock, self._conn:
            cursor = self._conn.execute(
                "UPDATE bus_messages SET dead = 0, attempts = 0, error = NULL,"
                " lease_owner = NULL, lease_until = 0 WHERE id = ? AND dead = 1",
                (int(message_id) if message_id.isdigit() else -1,),
            )
            return cursor.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class LocalDeadLetters:
    """``facesearch dlq`` on the embedded bus: its dead rows (replay = back in the queue)."""

    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus

    def letters(self, limit: int = 100) -> list[DeadLetterInfo]:
        return [
            DeadLetterInfo(
                d.topic, d.message.message_id, d.message.attributes, d.message.data,
                d.published_at, d.error,
            )
            for d in self.bus.dead_letters[:limit]
        ]  # fmt: skip

    def show(self, message_id: str) -> DeadLetterInfo:
        for letter in self.letters(limit=1_000_000):
            if letter.message_id == message_id:
                return letter
        raise NotFound(f"no dead letter {message_id}")

    def replay(self, message_ids: Sequence[str] | None = None) -> list[str]:
        ids = [d.message_id for d in self.letters(limit=1_000_000)]
        chosen = ids if message_ids is None else [i for i in ids if i in message_ids]
        return [i for i in chosen if self.bus.replay_dead_letter(i)]


__all__ = ["LEASE_S", "DeadLetter", "InProcessBus", "LocalDeadLetters"]
