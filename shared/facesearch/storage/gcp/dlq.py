"""The dead-letter queues on Pub/Sub: list, show and replay (``facesearch dlq``).

Terraform gives every pushed topic ``T`` a dead-letter topic ``T-dlq`` and a pull
subscription ``T-dlq-pull`` on it (modules/pubsub_topic). Pub/Sub has no "peek": listing
pulls messages and hands them straight back (ack deadline 0), so they stay queued.
Replay publishes the message (body and attributes, minus Pub/Sub's dead-letter
bookkeeping) to ``T`` again and only then acknowledges it in the DLQ: a crash in between
replays it twice, which the consumers absorb (ingest and indexer are idempotent). Replay
marks the copy with ``replayed_from`` (the dead letter's message id).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from facesearch.errors import NotFound
from facesearch.storage.bus import Bus, DeadLetterInfo, Message

pubsub_v1: Any = importlib.import_module("google.cloud.pubsub_v1")

#: attributes Pub/Sub adds to a dead-lettered message (not replayed)
PUBSUB_DLQ_ATTRIBUTES = ("CloudPubSubDeadLetterSourceDeliveryCount",)
PULL_BATCH = 100


class PubSubDeadLetters:
    def __init__(
        self, project: str, topics: Sequence[str], bus: Bus, *, subscriber: Any = None
    ) -> None:
        self.project = project
        self.topics = list(topics)
        #: replays go out through the deployment's bus (its publisher, timeout and errors)
        self.bus = bus
        self._subscriber = subscriber

    @property
    def subscriber(self) -> Any:
        if self._subscriber is None:
            self._subscriber = pubsub_v1.SubscriberClient()
        return self._subscriber

    def subscription(self, topic: str) -> str:
        return f"projects/{self.project}/subscriptions/{topic}-dlq-pull"

    def _pull(self, topic: str, limit: int) -> list[Any]:
        response = self.subscriber.pull(
            request={"subscription": self.subscription(topic), "max_messages": limit},
            timeout=10,  # an empty queue answers at the deadline
        )
        return list(response.received_messages)

    def _release(self, topic: str, received: list[Any]) -> None:
        if received:
            self.subscriber.modify_ack_deadline(
                request={
                    "subscription": self.subscription(topic),
                    "ack_ids": [r.ack_id for r in received],
                    "ack_deadline_seconds": 0,
                }
            )

    @staticmethod
    def _info(topic: str, received: Any) -> DeadLetterInfo:
        message = received.message
        return DeadLetterInfo(
            topic,
            str(message.message_id),
            dict(message.attributes),
            bytes(message.data),
            message.publish_time.timestamp() if message.publish_time else 0.0,
            f"delivery attempts: {received.delivery_attempt or '?'}",
        )

    def letters(self, limit: int = PULL_BATCH) -> list[DeadLetterInfo]:
        out: list[DeadLetterInfo] = []
        for topic in self.topics:
            received = self._pull(topic, limit)
            out += [self._info(topic, r) for r in received]
            self._release(topic, received)
        return out

    def show(self, message_id: str) -> DeadLetterInfo:
        for letter in self.letters():
            if letter.message_id == message_id:
                return letter
        raise NotFound(f"no dead letter {message_id} (among the first {PULL_BATCH} per queue)")

    def replay(self, message_ids: Sequence[str] | None = None) -> list[str]:
        """Republish (all, or the given ids) to their source topics, then ack; their ids."""
        replayed: list[str] = []
        for topic in self.topics:
            while True:
                received = self._pull(topic, PULL_BATCH)
                if not received:
                    break
                chosen = [
                    r
                    for r in received
                    if message_ids is None or str(r.message.message_id) in message_ids
                ]
                self._release(topic, [r for r in received if r not in chosen])
                if chosen:
                    self.bus.publish(topic, [_replay(r.message) for r in chosen])
                if chosen:
                    self.subscriber.acknowledge(
                        request={
                            "subscription": self.subscription(topic),
                            "ack_ids": [r.ack_id for r in chosen],
                        }
                    )
                replayed += [str(r.message.message_id) for r in chosen]
                if message_ids is not None or len(chosen) < len(received):
                    break
        return replayed


def _replay(message: Any) -> Message:
    """A dead-lettered message as it goes back to its topic: Pub/Sub's dead-letter
    attributes dropped, ``replayed_from`` added."""
    attributes = {k: v for k, v in message.attributes.items() if k not in PUBSUB_DLQ_ATTRIBUTES}
    attributes["replayed_from"] = str(message.message_id)
    return Message(message.data, attributes)


__all__ = ["PubSubDeadLetters"]
