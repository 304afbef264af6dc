"""The clusterer function's request handling: one Pub/Sub push of ``face-events`` in,
ack or retry out. This is the one place where outcomes become delivery decisions:

* returns (HTTP 2xx, ack): applied, skipped (unknown or erasing collection), or poison
  (a body that is not a face event: logged at ERROR — retrying cannot help; a full
  re-cluster reconciles whatever it would have done);
* raises (HTTP 5xx, Pub/Sub redelivers with backoff, then the dead-letter topic after
  ``max_delivery_attempts``): everything else — Firestore unavailable, the index
  bucket unreadable, racing clusterers that kept changing the neighbourhood past
  ``FACESEARCH_PEOPLE_APPLY_ATTEMPTS`` (:class:`~facesearch.errors.TransientError`).
  Redelivery is safe: every decision is idempotent (:mod:`.engine`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from facesearch.config import Settings, get_settings
from facesearch.errors import BadMessage
from facesearch.logs import log_fields
from facesearch.people.clusterer import ClustererService, Handled
from facesearch.storage.messages import push_message
from facesearch.telemetry import delivery

logger = logging.getLogger(__name__)

_service: ClustererService | None = None
_lock = threading.Lock()


def default_service(settings: Settings | None = None) -> ClustererService:
    """One service per instance (its stores, readers and clients), built on first use."""
    global _service  # noqa: PLW0603 - a per-instance singleton by design
    with _lock:
        if _service is None:
            from facesearch.backends import backend_for
            from facesearch.backends.services import clusterer_service

            _service = clusterer_service(backend_for(settings or get_settings()))
        return _service


def handle_push(
    data: Any, *, event_id: str = "", service: ClustererService | None = None
) -> Handled | None:
    """Process one pushed face event; returns to acknowledge, raises to be redelivered.

    Traced as ``clusterer.delivery``, a child of the indexer's commit span (the event's
    ``traceparent`` attribute), so one trace runs from the upload to the person.
    """
    try:
        message = push_message(data)
        with delivery(
            "clusterer.delivery",
            {"messaging.message.id": message.message_id or event_id},
            message.attributes,
        ):
            return (service or default_service()).handle(message)
    except BadMessage as error:
        logger.error(
            "unreadable face event acknowledged",
            extra=log_fields(event_id=event_id, error_code=error.code, error=error.message),
        )
        return None
    except Exception as error:
        logger.warning(
            "clustering failed: delivery will be retried",
            extra=log_fields(event_id=event_id, error_type=type(error).__name__, error=str(error)),
        )
        raise


def handle_cloud_event(event: Any) -> None:
    """Adapter for ``functions_framework.cloud_event``."""
    handle_push(event.data, event_id=str(event["id"]))
