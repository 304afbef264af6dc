"""The indexer function's request handling: one Pub/Sub push in, ack or retry out.

functions-framework turns each raw push into a ``messagePublished`` CloudEvent
whose ``source`` names the topic (the push endpoint path is
``/projects/P/topics/T``). The handler decodes the message, hands it to the
instance's :class:`GroupCommitter` and blocks until the commit holding it is
stored. This is the one place where outcomes become delivery decisions:

* returns (HTTP 2xx, ack): applied, or poison (unreadable body, another model's
  embeddings, bad vectors; logged at ERROR with its id);
* raises (HTTP 5xx, Pub/Sub redelivers with backoff, then the dead-letter
  topic after ``max_delivery_attempts``): everything else, e.g. the index bucket
  unavailable, the manifest contended past the retry budget, a corrupt index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from facesearch.config import Settings, get_settings
from facesearch.errors import BadMessage
from facesearch.indexer.group_commit import GroupCommitter
from facesearch.indexer.service import Applied, IndexerService
from facesearch.ingest.sources import rfc3339
from facesearch.logs import log_fields
from facesearch.storage.bus import Message
from facesearch.storage.messages import KIND_DELETIONS, KIND_EMBEDDINGS, push_message
from facesearch.telemetry import delivery, metrics

logger = logging.getLogger(__name__)

_committer: GroupCommitter[Message, Applied] | None = None
_service: IndexerService | None = None
_lock = threading.Lock()


def make_committer(service: IndexerService, settings: Settings) -> GroupCommitter[Message, Applied]:
    return GroupCommitter(
        service.apply,
        window_s=settings.indexer.commit_window_ms / 1000.0,
        max_weight=settings.indexer.commit_max_vectors,
    )


def default_committer(settings: Settings | None = None) -> GroupCommitter[Message, Applied]:
    """One writer + committer per instance, built on first use."""
    global _committer, _service  # noqa: PLW0603 - per-instance singletons by design
    with _lock:
        if _committer is None:
            settings = settings or get_settings()
            from facesearch.backends import backend_for
            from facesearch.backends.services import indexer_service

            _service = indexer_service(backend_for(settings))
            _committer = make_committer(_service, settings)
        return _committer


def topic_of(source: str) -> str:
    """``//pubsub.googleapis.com/projects/P/topics/T`` -> ``T`` ('' when unknown)."""
    marker = "/topics/"
    return source.rsplit(marker, 1)[1] if marker in source else ""


def publish_time(data: Any) -> float | None:
    """The pushed message's ``publishTime`` (epoch s), if it says."""
    raw = data.get("message") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping):
        return None
    return rfc3339(raw.get("publishTime") or raw.get("publish_time"))


def message_from_push(data: Any, *, deletions_topic: str, topic: str) -> Message:
    message = push_message(data)
    if "kind" not in message.attributes:
        kind = KIND_DELETIONS if topic == deletions_topic else KIND_EMBEDDINGS
        message = replace(message, attributes={**message.attributes, "kind": kind})
    return message


def _weight(message: Message) -> int:
    return max(1, len(message.data) // 700)  # ~one 128-d base64 face per 700 bytes


def handle_push(
    source: str,
    data: Any,
    *,
    event_id: str = "",
    committer: GroupCommitter[Message, Applied] | None = None,
    settings: Settings | None = None,
    now: float | None = None,
) -> Applied | None:
    """Process one pushed message; returns to acknowledge, raises to be redelivered.

    Traced as ``indexer.delivery``, a child of the publisher's span (the message's
    ``traceparent`` attribute); flushed before the answer goes out.
    """
    settings = settings or get_settings()
    try:
        message = message_from_push(
            data, deletions_topic=settings.storage.deletions_topic, topic=topic_of(source)
        )
    except BadMessage as error:
        logger.error(
            "unreadable push acknowledged",
            extra=log_fields(event_id=event_id, error_code=error.code, error=error.message),
        )
        return None
    topic = topic_of(source) or message.attributes.get("kind", "")
    published = publish_time(data)
    age = None if published is None else (time.time() if now is None else now) - published
    if age is not None:
        metrics.record_message_age(topic, age)
    with delivery(
        "indexer.delivery",
        {"messaging.message.id": message.message_id, "messaging.destination.name": topic},
        message.attributes,
    ):
        if age is not None and age > settings.ops.max_event_age_s:
            # The faces stay in the metadata store: `facesearch doctor --repair` (or a
            # re-ingest) puts them back. Better than a message retried for ever.
            metrics.record_expired(topic)
            logger.error(
                "message older than the max event age: dropped (doctor --repair restores)",
                extra=log_fields(
                    event_id=event_id,
                    message_id=message.message_id,
                    kind=message.attributes.get("kind"),
                    image_id=message.attributes.get("image_id"),
                    collection=message.attributes.get("collection"),
                    age_s=round(age),
                ),
            )
            return None
        return _submit(message, event_id, committer, settings)


def _submit(
    message: Message,
    event_id: str,
    committer: GroupCommitter[Message, Applied] | None,
    settings: Settings,
) -> Applied | None:
    try:
        # poison bodies come back as Applied(poison=...) (acked, logged by the service);
        # whatever raises here (index store down, manifest contended, a bug) is retried
        return (committer or default_committer(settings)).submit(message, _weight(message))
    except Exception as error:
        logger.warning(
            "indexing failed: delivery will be retried",
            extra=log_fields(
                event_id=event_id,
                message_id=message.message_id,
                error_type=type(error).__name__,
                error=str(error),
            ),
        )
        raise


def handle_cloud_event(event: Any) -> None:
    """Adapter for ``functions_framework.cloud_event``."""
    handle_push(str(event["source"]), event.data, event_id=str(event["id"]))
