"""The indexer service: a batch of bus messages -> one index commit per model.

Per message, the outcome is one of: applied (ack), poison (ack and log at
ERROR: unparsable body, another model's embeddings, bad vectors — retrying
cannot help, and the faces stay in the metadata store from which ``rebuild``
recreates the index), or an exception (the message is redelivered).

Idempotent by construction: the writer skips face ids that are already live,
so redelivered or re-published embeddings never create duplicate entries.
After a commit, ``face-events`` announce the faces (at least once: a failure
to publish them makes the messages come back, the re-add is a no-op, and the
events go out again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facesearch.errors import BadMessage, FaceSearchError, InvalidEmbedding, ModelMismatch
from facesearch.index.writer import IndexWriter
from facesearch.logs import log_fields
from facesearch.storage.bus import Bus, Message
from facesearch.storage.messages import (
    KIND_DELETIONS,
    KIND_EMBEDDINGS,
    DeletionsMessage,
    EmbeddingsMessage,
    FaceEvent,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """A message whose effect is now in a stored manifest (or that was poison: acked)."""

    kind: str
    faces: int
    poison: str | None = None
    manifest_version: int | None = None


class IndexerService:
    def __init__(
        self,
        writer: IndexWriter,
        bus: Bus,
        *,
        events_topic: str = "face-events",
        deletions_topic: str = "face-deletions",
    ) -> None:
        self.writer = writer
        self.bus = bus
        self.events_topic = events_topic
        self.deletions_topic = deletions_topic

    def kind_of(self, message: Message, topic: str | None = None) -> str:
        kind = message.attributes.get("kind")
        if kind in (KIND_EMBEDDINGS, KIND_DELETIONS):
            return kind
        return KIND_DELETIONS if topic == self.deletions_topic else KIND_EMBEDDINGS

    def apply(self, messages: Sequence[Message]) -> list[Applied | BaseException]:
        """Apply a batch; one result (or exception) per message, in order."""
        results: list[Applied | BaseException | None] = [None] * len(messages)
        by_model: dict[str, list[tuple[int, EmbeddingsMessage]]] = {}
        deletions: list[tuple[int, DeletionsMessage]] = []
        for i, message in enumerate(messages):
            kind = self.kind_of(message)
            try:
                if kind == KIND_DELETIONS:
                    deletions.append((i, DeletionsMessage.decode(message)))
                else:
                    decoded = EmbeddingsMessage.decode(message)
                    by_model.setdefault(decoded.model, []).append((i, decoded))
            except BadMessage as exc:
                results[i] = self._poison(message, kind, exc)
        for model, items in by_model.items():
            self._add(model, items, messages, results)
        if deletions:
            self._delete(deletions, results)
        return [r if r is not None else RuntimeError("message not handled") for r in results]

    def _add(
        self,
        model: str,
        items: list[tuple[int, EmbeddingsMessage]],
        messages: Sequence[Message],
        results: list[Applied | BaseException | None],
    ) -> None:
        face_ids = [f for _, m in items for f in m.face_ids]
        if not face_ids:
            for i, _ in items:
                results[i] = Applied(KIND_EMBEDDINGS, 0)
            return
        vectors = np.concatenate([m.vectors for _, m in items if len(m.face_ids)])
        try:
            added = self.writer.add(face_ids, vectors, model)
            self.bus.publish(
                self.events_topic,
                [FaceEvent("face_added", face_ids, model, added.manifest_version).encode()],
            )
        except (ModelMismatch, InvalidEmbedding, ValueError) as exc:
            error = exc if isinstance(exc, FaceSearchError) else BadMessage(str(exc))
            for i, _ in items:
                results[i] = self._poison(messages[i], KIND_EMBEDDINGS, error)
            return
        except Exception as exc:
            for i, _ in items:
                results[i] = exc
            return
        now = time.time()
        lags = [now - m.source_time for _, m in items if m.source_time]
        logger.info(
            "embeddings indexed",
            extra=log_fields(
                model=model,
                messages=len(items),
                faces=len(face_ids),
                added=added.added,
                already_live=added.already_live,
                manifest_version=added.manifest_version,
                image_ids=sorted({m.image_id for _, m in items}),
                upload_to_searchable_s=round(max(lags), 3) if lags else None,
            ),
        )
        for i, m in items:
            results[i] = Applied(KIND_EMBEDDINGS, len(m.face_ids), None, added.manifest_version)

    def _delete(
        self,
        deletions: list[tuple[int, DeletionsMessage]],
        results: list[Applied | BaseException | None],
    ) -> None:
        face_ids = [f for _, m in deletions for f in m.face_ids]
        try:
            deleted = self.writer.delete(face_ids)
            self.bus.publish(
                self.events_topic,
                [FaceEvent("face_removed", face_ids, None, deleted.manifest_version).encode()],
            )
        except Exception as exc:
            for i, _ in deletions:
                results[i] = exc
            return
        logger.info(
            "faces removed from the index",
            extra=log_fields(
                requested=len(face_ids),
                deleted=deleted.deleted,
                manifest_version=deleted.manifest_version,
            ),
        )
        for i, m in deletions:
            results[i] = Applied(KIND_DELETIONS, len(m.face_ids), None, deleted.manifest_version)

    @staticmethod
    def _poison(message: Message, kind: str, error: FaceSearchError) -> Applied:
        logger.error(
            "poison message acknowledged (rebuild from metadata restores the index)",
            extra=log_fields(
                message_id=message.message_id,
                kind=kind,
                image_id=message.attributes.get("image_id"),
                error_type=type(error).__name__,
                error_code=error.code,
                error=error.message,
            ),
        )
        return Applied(kind, 0, poison=error.code)

    def handle_batch(self, messages: list[Message]) -> None:
        """In-process bus handler: raise if any message must be redelivered."""
        for result in self.apply(messages):
            if isinstance(result, BaseException):
                raise result
