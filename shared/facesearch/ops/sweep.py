"""Images stuck in ``processing`` are found and re-queued.

An ingest instance that dies mid-image (OOM, a kill, a deploy) leaves its image
``processing``. Pub/Sub's redelivery normally repairs that; the sweep is the safety net
for deliveries that will never come back (the Eventarc subscription gave up, an event
was dropped as too old, a message was acknowledged by a bug): every image
``processing`` for longer than ``FACESEARCH_OPS_STUCK_AFTER_S`` is published again as
an ``ingest-requests`` message. The ingest counts attempts, so an image that kills its
instance every time is failed (``too-many-attempts``) after five, not re-queued forever.

In the cloud the indexer runs it on Cloud Scheduler's ``{"action": "sweep"}`` control
message (every 10 minutes); embedded, ``facesearch doctor --repair`` re-ingests the
stuck local files directly.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice

from facesearch.logs import log_fields
from facesearch.storage.bus import Bus, Message
from facesearch.storage.catalog import Catalog, CollectionStatus, iter_collections
from facesearch.storage.metadata import (
    DEFAULT_COLLECTION,
    ImageRecord,
    ImageStatus,
    MetadataStore,
    iter_images,
)
from facesearch.telemetry import metrics

logger = logging.getLogger(__name__)

#: images re-queued per collection per sweep (one push request's worth)
SWEEP_LIMIT = 500


def requeue_request(record: ImageRecord, collection_id: str) -> Message | None:
    """The ``ingest-requests`` message that ingests ``record``'s source again.

    ``None`` for a source only this machine can read (a local file: embedded mode
    re-ingests it by path instead).
    """
    info = record.source_info
    body: dict[str, object] = {"v": 1, "collection": collection_id}
    if info.get("kind") == "gcs" and info.get("bucket") and info.get("generation"):
        body |= {"bucket": info["bucket"], "name": info["name"], "generation": info["generation"]}
    elif info.get("kind") == "url" and info.get("url"):
        body |= {"url": info["url"], "source_id": record.source}
        if info.get("content_type"):
            body["content_type"] = info["content_type"]
    else:
        return None
    attributes = {
        "kind": "ingest-request",
        "source": "sweep",
        "collection": collection_id,
        "image_id": record.image_id,
    }
    return Message(json.dumps(body, separators=(",", ":")).encode(), attributes)


def stuck_images(
    store: MetadataStore, *, older_than_s: float, now: float, limit: int = SWEEP_LIMIT
) -> list[ImageRecord]:
    """Up to ``limit`` images ``processing`` and untouched for ``older_than_s``."""
    processing = iter_images(store, ImageStatus.PROCESSING)
    return list(islice((r for r in processing if r.updated_at < now - older_than_s), limit))


@dataclass
class SweepResult:
    requeued: dict[str, int] = field(default_factory=dict)  # collection -> images
    local: list[ImageRecord] = field(default_factory=list)  # not re-queueable by message

    @property
    def total(self) -> int:
        return sum(self.requeued.values())


class StuckSweep:
    def __init__(
        self,
        catalog: Catalog,
        *,
        stores: Callable[[str], MetadataStore],
        bus: Bus,
        ingest_topic: str,
        older_than_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.stores = stores
        self.bus = bus
        self.ingest_topic = ingest_topic
        self.older_than_s = older_than_s
        self._clock = clock

    def active_collections(self) -> list[str]:
        return [DEFAULT_COLLECTION] + [
            r.collection_id
            for r in iter_collections(self.catalog)
            if r.status is CollectionStatus.ACTIVE and r.collection_id != DEFAULT_COLLECTION
        ]

    def run(self, collection_id: str | None = None) -> SweepResult:
        """Re-queue the stuck images of one collection, or of every active one."""
        result = SweepResult()
        now = self._clock()
        for cid in [collection_id] if collection_id else self.active_collections():
            stuck = stuck_images(self.stores(cid), older_than_s=self.older_than_s, now=now)
            messages = []
            for record in stuck:
                message = requeue_request(record, cid)
                if message is None:
                    result.local.append(record)
                else:
                    messages.append(message)
            if messages:
                self.bus.publish(self.ingest_topic, messages)
                result.requeued[cid] = len(messages)
                metrics.record_requeued(len(messages))
                logger.warning(
                    "stuck images re-queued",
                    extra=log_fields(
                        collection=cid,
                        images=len(messages),
                        image_ids=[m.attributes["image_id"] for m in messages[:20]],
                    ),
                )
        return result


__all__ = ["SWEEP_LIMIT", "StuckSweep", "SweepResult", "requeue_request", "stuck_images"]
