"""The ingest function's request handling: event in, ack or retry out.

This is the one place where errors become delivery decisions:

* returned normally (HTTP 2xx, acknowledged): every final outcome — done,
  failed(code) recorded in the metadata store (an image, or a video: a bad video stays
  bad, whichever chunk finds it), skipped, duplicate, a video queued as chunk tasks —
  and poison input we cannot parse (logged at ERROR with its id: acked, not lost
  silently);
* raised (HTTP 5xx, the platform retries with backoff; after the subscription's
  ``max_delivery_attempts`` the message goes to the dead-letter topic):
  :class:`TransientError` (a dependency is down), :class:`ModelError` /
  :class:`ConfigError` (this instance is broken or misconfigured, the image may
  be fine), :class:`IncompleteVideo` (a finish that overtook a chunk's result) and any
  unexpected exception. A video chunk that keeps crashing its instance is failed after
  ``MAX_CHUNK_ATTEMPTS`` instead (facesearch.ingest.video).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from facesearch import jsonsafe
from facesearch.config import Settings, get_settings
from facesearch.errors import BadMessage, ConfigError, FaceSearchError, ModelError
from facesearch.ingest.service import IngestOutcome, IngestService
from facesearch.ingest.sources import (
    PUBSUB_PUBLISHED,
    STORAGE_FINALIZED,
    SourceRef,
    collection_for_object,
    request_from_ingest_message,
    rfc3339,
    source_from_storage_object,
)
from facesearch.logs import log_fields
from facesearch.storage.bus import Message
from facesearch.storage.messages import VideoTask
from facesearch.telemetry import TRACE_ATTRIBUTES, delivery, metrics

logger = logging.getLogger(__name__)

_service: IngestService | None = None
_service_lock = threading.Lock()


def default_service(settings: Settings | None = None) -> IngestService:
    """One service (clients + loaded models) per instance, built on first use."""
    global _service  # noqa: PLW0603 - per-instance singleton by design
    with _service_lock:
        if _service is None:
            from facesearch.backends import backend_for
            from facesearch.backends.services import cloud_ingest_service

            _service = cloud_ingest_service(backend_for(settings or get_settings()))
        return _service


def _json_data(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, bytes | str | Mapping):
        raise BadMessage("event data is not a JSON object")
    return jsonsafe.loads_object(data, error=BadMessage, what="event data")


def source_from_event(event_type: str, data: Any) -> SourceRef | VideoTask:
    """What an event asks for: a finalized object, an ingest-requests message naming
    something to ingest, or one step of a video being processed."""
    if event_type == STORAGE_FINALIZED:
        return source_from_storage_object(_json_data(data))
    if event_type == PUBSUB_PUBLISHED:
        message = _json_data(data).get("message")
        if not isinstance(message, Mapping):
            raise BadMessage("Pub/Sub event without a message")
        try:
            body = base64.b64decode(message.get("data") or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadMessage("Pub/Sub message data is not base64") from exc
        return request_from_ingest_message(body)
    raise BadMessage(f"unexpected event type {event_type!r}")


def event_envelope(
    event_type: str, data: Any, attributes: Mapping[str, Any]
) -> tuple[float | None, dict[str, str]]:
    """When the event happened (epoch s) and the carrier of its trace context.

    Eventarc's CloudEvent ``time`` (and ``traceparent`` extension) for a finalized
    object; the Pub/Sub message's ``publishTime`` (and its attributes) for a push.
    """
    carrier = {k: str(v) for k, v in attributes.items() if k in TRACE_ATTRIBUTES}
    when = rfc3339(attributes.get("time"))
    if event_type == PUBSUB_PUBLISHED:
        with contextlib.suppress(BadMessage):
            message = _json_data(data).get("message")
            if isinstance(message, Mapping):
                when = rfc3339(message.get("publishTime") or message.get("publish_time")) or when
                carrier |= {
                    str(k): str(v)
                    for k, v in (message.get("attributes") or {}).items()
                    if k in TRACE_ATTRIBUTES
                }
    return when, carrier


def handle_event(
    event_type: str,
    data: Any,
    *,
    event_id: str = "",
    service: IngestService | None = None,
    attributes: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> IngestOutcome | None:
    """Process one delivery; returns to acknowledge, raises to have it redelivered.

    ``attributes`` are the CloudEvent's (``time``, ``traceparent``): the span of this
    delivery continues the uploader's or publisher's trace, and an event older than
    ``FACESEARCH_MAX_EVENT_AGE_S`` is dropped and recorded instead of retried forever.
    """
    when, carrier = event_envelope(event_type, data, attributes or {})
    topic = "uploads" if event_type == STORAGE_FINALIZED else "ingest-requests"
    age = None if when is None else (time.time() if now is None else now) - when
    if age is not None:
        metrics.record_message_age(topic, age)
    with delivery(
        "ingest.delivery",
        {"messaging.message.id": event_id, "facesearch.event.type": event_type},
        carrier,
    ):
        return _handle(event_type, data, event_id, service, age)


def _handle(
    event_type: str,
    data: Any,
    event_id: str,
    service: IngestService | None,
    age: float | None,
) -> IngestOutcome | None:
    try:
        source = source_from_event(event_type, data)
        service = service or default_service()
        if isinstance(source, VideoTask):
            return service.run_video_task(source)
        watched = service.settings.storage.uploads_bucket
        if event_type == STORAGE_FINALIZED:  # the object's name says which collection
            pattern = service.settings.ingest.collection_pattern
            source = source.in_collection(collection_for_object(source.name, pattern))
        if event_type == STORAGE_FINALIZED and watched and source.bucket != watched:
            # the trigger filters on the uploads bucket: anything else is a misrouted
            # event (a second trigger, a copied subscription); never ingest it
            logger.error(
                "finalize event from an unwatched bucket acknowledged without processing",
                extra=_f(event_id, bucket=source.bucket, watched=watched),
            )
            return None
        if age is not None and age > service.settings.ops.max_event_age_s:
            return expired(service, source, event_type, event_id, age)
        return service.ingest(source)
    except (ModelError, ConfigError) as error:
        metrics.record_failure(error.code)
        logger.exception(
            "instance broken or misconfigured: delivery will be retried", extra=_f(event_id)
        )
        raise
    except FaceSearchError as error:
        if error.retryable:
            metrics.record_failure(error.code)
            logger.warning(
                "transient failure: delivery will be retried",
                extra=_f(event_id, error_code=error.code, error=error.message),
            )
            raise
        logger.error(
            "event acknowledged without processing",
            extra=_f(
                event_id,
                **error.log_fields(),
            ),
        )
        return None


def expired(
    service: IngestService, source: SourceRef, event_type: str, event_id: str, age: float
) -> IngestOutcome:
    """Drop an event that kept failing past the max age, and record it: the image is
    failed ``event-expired`` (visible, re-queueable with ``facesearch doctor``), unless
    its record is already final."""
    metrics.record_expired("uploads" if event_type == STORAGE_FINALIZED else "ingest-requests")
    logger.error(
        "event older than the max event age: dropped and recorded",
        extra=_f(event_id, image_id=source.image_id, source=source.display, age_s=round(age)),
    )
    return service.record_expired(source, age)


def _f(event_id: str, **fields: Any) -> dict[str, Any]:
    return log_fields(event_id=event_id, **fields)


def handle_cloud_event(event: Any, *, service: IngestService | None = None) -> None:
    """Adapter for ``functions_framework.cloud_event`` (a ``cloudevents`` CloudEvent)."""
    handle_event(
        str(event["type"]),
        event.data,
        event_id=str(event["id"]),
        service=service,
        attributes=event.get_attributes(),
    )


def bus_handler(service: IngestService) -> Callable[[list[Message]], None]:
    """``ingest-requests`` on the in-process bus (embedded mode): each message through
    :func:`handle_event`, as the Pub/Sub push does in the cloud (raise = redeliver)."""

    def handle(messages: list[Message]) -> None:
        for message in messages:
            data = {
                "message": {
                    "data": base64.b64encode(message.data).decode(),
                    "attributes": dict(message.attributes),  # the trace context, as in Pub/Sub
                }
            }
            handle_event(PUBSUB_PUBLISHED, data, event_id=message.message_id, service=service)

    return handle
