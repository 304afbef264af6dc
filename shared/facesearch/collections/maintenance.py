"""Maintenance steps the indexer runs from control messages: erase, retention, stuck sweep.

One message, one bounded step; unfinished work re-publishes its own continuation,
so a million-face erase is many short push requests (each within Cloud Run's
request timeout, each retried on failure), never one long one. Steps are
idempotent: a redelivered message does less, never harm.
"""

from __future__ import annotations

import logging

from facesearch.collections.erase import EraseJob
from facesearch.collections.retention import RetentionSweep
from facesearch.logs import log_fields
from facesearch.ops.sweep import StuckSweep
from facesearch.storage.bus import Bus
from facesearch.storage.messages import ControlMessage

logger = logging.getLogger(__name__)


class Maintenance:
    def __init__(
        self,
        erase: EraseJob,
        retention: RetentionSweep,
        bus: Bus,
        topic: str,
        *,
        stuck: StuckSweep | None = None,
    ) -> None:
        self.erase = erase
        self.retention = retention
        self.bus = bus
        self.topic = topic
        self.stuck = stuck

    def handle(self, control: ControlMessage) -> str:
        """Do one step; returns what happened (``erased``, ``continued``, ``swept``...)."""
        if control.action == "erase":
            assert control.collection_id is not None
            return self._erase(control.collection_id)
        if control.action == "sweep":
            if self.stuck is None:
                return "no sweep configured"
            result = self.stuck.run(control.collection_id)
            return f"re-queued {result.total} stuck images"
        if control.collection_id is None:  # the scheduler's daily nudge: one per collection
            due = self.retention.due()
            if due:
                self.bus.publish(self.topic, [ControlMessage("retention", c).encode() for c in due])
            return f"fanned out to {len(due)} collections"
        step = self.retention.step(control.collection_id)
        if not step.done:
            self.bus.publish(self.topic, [control.encode()])
            return "continued"
        return "swept"

    def _erase(self, collection_id: str) -> str:
        step = self.erase.step(collection_id)
        if step.done and self.erase.finish(collection_id) is not None:
            return "erased"
        self.bus.publish(self.topic, [ControlMessage("erase", collection_id).encode()])
        logger.info(
            "collection erase continues",
            extra=log_fields(collection=collection_id, removed=step.removed),
        )
        return "continued"
