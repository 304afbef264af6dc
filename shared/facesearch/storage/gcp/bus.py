"""Pub/Sub adapter of the bus port (official client; honours ``PUBSUB_EMULATOR_HOST``).

One publisher client per process (created lazily, reused across requests).
``publish`` waits for every future: an embedding is only "sent" once Pub/Sub
has stored it, so the ingest can mark an image done afterwards and a crash in
between leads to a redelivery, never a lost face.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

from google.api_core import exceptions as gexc

from facesearch.errors import ConfigError, TransientError
from facesearch.storage.bus import Message
from facesearch.telemetry import inject

# Imported dynamically: a static import of the typed google.cloud.pubsub makes mypy
# resolve the google.cloud namespace from it and hide the untyped google.cloud.storage.
pubsub_v1: Any = importlib.import_module("google.cloud.pubsub_v1")

PUBLISH_TIMEOUT_S = 60.0


class PubSubBus:
    def __init__(self, project: str | None, *, publisher: Any | None = None) -> None:
        if not project:
            raise ConfigError("the Pub/Sub bus needs FACESEARCH_PROJECT")
        self.project = project
        self._publisher = publisher
        self._lock = threading.Lock()

    @property
    def publisher(self) -> Any:
        with self._lock:
            if self._publisher is None:
                self._publisher = pubsub_v1.PublisherClient()
            return self._publisher

    def topic_path(self, topic: str) -> str:
        return topic if topic.startswith("projects/") else f"projects/{self.project}/topics/{topic}"

    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        path = self.topic_path(topic)
        try:
            # the publisher's trace context rides along as W3C traceparent attributes
            futures = [
                self.publisher.publish(path, m.data, **inject(m.attributes)) for m in messages
            ]
            return [str(f.result(timeout=PUBLISH_TIMEOUT_S)) for f in futures]
        except (gexc.GoogleAPICallError, gexc.RetryError, TimeoutError, ConnectionError) as exc:
            # Even a missing topic or a permission error is retried, not swallowed: the
            # delivery goes back to Pub/Sub and, if it persists, to the dead-letter topic.
            raise TransientError(f"publish to {path} failed: {exc}") from exc
