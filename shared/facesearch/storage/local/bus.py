"""In-process adapter of the bus port: Pub/Sub's delivery semantics in one process.

Messages queue per topic; :meth:`InProcessBus.drain` hands them to the
subscribed handler in batches (a handler that raises gets them again, up to
``max_attempts``, then they land in :attr:`InProcessBus.dead_letters`), so the
same handlers as in the cloud run unchanged and nothing is lost silently.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from facesearch.logs import log_fields
from facesearch.storage.bus import MAX_DELIVERY_ATTEMPTS, Handler, Message

logger = logging.getLogger(__name__)


class InProcessBus:
    """At-least-once, in-memory bus for the embedded mode and unit tests."""

    def __init__(self, *, max_attempts: int = MAX_DELIVERY_ATTEMPTS, batch_size: int = 64) -> None:
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self._queues: dict[str, deque[Message]] = {}
        self._handlers: dict[str, Handler] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        #: (topic, message, last error) of messages that exhausted their attempts
        self.dead_letters: list[tuple[str, Message, str]] = []
        #: everything ever published, per topic (tests and the CLI summary read it)
        self.published: dict[str, list[Message]] = {}

    def subscribe(self, topic: str, handler: Handler) -> None:
        with self._lock:
            self._handlers[topic] = handler
            self._queues.setdefault(topic, deque())

    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        ids = []
        with self._lock:
            queue = self._queues.setdefault(topic, deque())
            for message in messages:
                stamped = replace(message, message_id=str(next(self._ids)), delivery_attempt=1)
                queue.append(stamped)
                self.published.setdefault(topic, []).append(stamped)
                ids.append(stamped.message_id)
        return ids

    def pending(self, topic: str | None = None) -> int:
        with self._lock:
            if topic is not None:
                return len(self._queues.get(topic, ()))
            return sum(len(q) for t, q in self._queues.items() if t in self._handlers)

    def drain(self) -> int:
        """Deliver until every subscribed topic is empty; returns messages acknowledged.

        Messages to topics nobody subscribed to stay queued (like a topic without a
        subscription, they are simply not consumed here).
        """
        acked = 0
        while True:
            batch: list[Message] = []
            with self._lock:
                for topic, queue in self._queues.items():
                    if queue and topic in self._handlers:
                        while queue and len(batch) < self.batch_size:
                            batch.append(queue.popleft())
                        handler = self._handlers[topic]
                        break
                else:
                    return acked
            try:
                handler(batch)
                acked += len(batch)
            except Exception as exc:
                if len(batch) == 1:
                    self._redeliver(topic, batch, exc)
                    continue
                # Pub/Sub pushes each message on its own: one poison message must not
                # drag its batch-mates to the dead-letter queue, so retry them singly.
                for message in batch:
                    try:
                        handler([message])
                        acked += 1
                    except Exception as single_exc:
                        self._redeliver(topic, [message], single_exc)

    def _redeliver(self, topic: str, batch: list[Message], exc: Exception) -> None:
        with self._lock:
            queue = self._queues[topic]
            for message in batch:
                if message.delivery_attempt >= self.max_attempts:
                    self.dead_letters.append((topic, message, repr(exc)))
                    logger.error(
                        "message dead-lettered",
                        extra=log_fields(
                            topic=topic,
                            message_id=message.message_id,
                            attempts=message.delivery_attempt,
                            error=repr(exc),
                        ),
                    )
                else:
                    queue.append(replace(message, delivery_attempt=message.delivery_attempt + 1))
        logger.warning(
            "delivery failed, will redeliver",
            extra=log_fields(topic=topic, messages=len(batch), error=repr(exc)),
        )
