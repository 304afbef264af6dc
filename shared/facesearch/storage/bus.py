"""The message-bus port: publish to a topic, delivered at least once to its handler.

The library only *publishes*; delivery is the platform's job. In the cloud that
is a Pub/Sub push subscription calling a function (ack = HTTP 2xx, anything
else = redelivery with backoff, then the topic's dead-letter queue). The
embedded adapter (:class:`facesearch.storage.local.bus.InProcessBus`) reproduces
exactly those semantics in one process, so the same handlers run unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: Same default as the Terraform dead-letter policy (max_delivery_attempts = 10).
MAX_DELIVERY_ATTEMPTS = 10


@dataclass(frozen=True)
class Message:
    """One bus message. ``attributes`` are small string pairs Pub/Sub can filter on."""

    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_id: str = ""
    delivery_attempt: int = 1


@dataclass(frozen=True)
class DeadLetterInfo:
    """A message that exhausted its delivery attempts, as ``facesearch dlq`` shows it."""

    topic: str  # the topic it came from (and is replayed to)
    message_id: str
    attributes: Mapping[str, str]
    data: bytes
    published_at: float
    error: str = ""


@runtime_checkable
class DeadLetters(Protocol):
    """The dead-letter queues of every consumed topic (Pub/Sub DLQs, or the embedded bus)."""

    def letters(self, limit: int = 100) -> list[DeadLetterInfo]: ...

    def show(self, message_id: str) -> DeadLetterInfo:
        """NotFound when no dead letter has that id."""
        ...

    def replay(self, message_ids: Sequence[str] | None = None) -> list[str]:
        """Back to their topics (all, or these ids): idempotent; the ids replayed."""
        ...


#: A subscriber: gets a batch of messages; returning acks them all, raising retries them all.
Handler = Callable[[list[Message]], None]


@runtime_checkable
class Bus(Protocol):
    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        """Publish and wait until the bus has durably accepted every message; their ids.

        Raises :class:`facesearch.errors.TransientError` when the bus is unavailable
        (the caller's own delivery is then retried and re-publishes: consumers are
        idempotent by design).
        """
        ...
