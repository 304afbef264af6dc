"""The indexer service: a batch of bus messages -> one index commit per collection and model.

Each collection has its own index; messages say which (``default`` for messages
from before collections). Embeddings and deletions for a collection that does not
exist or is being erased are dropped (acknowledged, logged): its index must not come
back, not even as a manifest of tombstones.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from facesearch.collections.maintenance import Maintenance
from facesearch.errors import (
    BadMessage,
    CollectionClosed,
    FaceSearchError,
    InvalidEmbedding,
    ModelMismatch,
    NotFound,
)
from facesearch.index.writer import IndexWriter
from facesearch.logs import log_fields
from facesearch.storage.bus import Bus, Message
from facesearch.storage.messages import (
    KIND_CONTROL,
    KIND_DELETIONS,
    KIND_EMBEDDINGS,
    ControlMessage,
    DeletionsMessage,
    EmbeddingsMessage,
    FaceEvent,
)
from facesearch.storage.metadata import DEFAULT_COLLECTION
from facesearch.telemetry import link_to, metrics, span

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """A message whose effect is now in a stored manifest (or that was poison: acked)."""

    kind: str
    faces: int
    poison: str | None = None
    manifest_version: int | None = None


#: which writer holds a collection's index (the composition root caches one per collection)
WriterFor = Callable[[str], IndexWriter]
#: raises NotFound / CollectionClosed unless the collection takes work (read uncached:
#: it guards index commits, which a stale "active" would let recreate an erased index)
ActiveCheck = Callable[[str], object]


class IndexerService:
    def __init__(
        self,
        writers: WriterFor,
        bus: Bus,
        *,
        events_topic: str = "face-events",
        deletions_topic: str = "face-deletions",
        require_active: ActiveCheck | None = None,
        discard_index: Callable[[str], object] | None = None,
        maintenance: Maintenance | None = None,
    ) -> None:
        self.writers = writers
        self.maintenance = maintenance
        self.bus = bus
        self.events_topic = events_topic
        self.deletions_topic = deletions_topic
        self._require_active = require_active or (lambda collection_id: None)
        self._discard_index = discard_index

    @property
    def writer(self) -> IndexWriter:
        """The default collection's writer."""
        return self.writers(DEFAULT_COLLECTION)

    def kind_of(self, message: Message, topic: str | None = None) -> str:
        kind = message.attributes.get("kind")
        if kind in (KIND_EMBEDDINGS, KIND_DELETIONS, KIND_CONTROL):
            return kind
        return KIND_DELETIONS if topic == self.deletions_topic else KIND_EMBEDDINGS

    def apply(self, messages: Sequence[Message]) -> list[Applied | BaseException]:
        """Apply a batch; one result (or exception) per message, in order."""
        results: list[Applied | BaseException | None] = [None] * len(messages)
        adds: dict[tuple[str, str], list[tuple[int, EmbeddingsMessage]]] = {}
        deletions: dict[str, list[tuple[int, DeletionsMessage]]] = {}
        for i, message in enumerate(messages):
            kind = self.kind_of(message)
            try:
                if kind == KIND_CONTROL:
                    results[i] = self._control(message)
                elif kind == KIND_DELETIONS:
                    removal = DeletionsMessage.decode(message)
                    deletions.setdefault(removal.collection_id, []).append((i, removal))
                else:
                    decoded = EmbeddingsMessage.decode(message)
                    key = (decoded.collection_id, decoded.model)
                    adds.setdefault(key, []).append((i, decoded))
            except BadMessage as exc:
                results[i] = self._poison(message, kind, exc)
        for (collection_id, model), items in adds.items():
            # never recreate an erased index: its late embeddings are poison (logged)
            indices = [i for i, _ in items]
            poison = lambda i, exc: self._poison(messages[i], KIND_EMBEDDINGS, exc)  # noqa: E731
            if self._takes_work(collection_id, indices, results, poison):
                self._add(collection_id, model, items, messages, results)
        for collection_id, removals in deletions.items():
            # the erase removes its index wholesale: a late deletion has nothing left to do
            done = {i: Applied(KIND_DELETIONS, len(m.face_ids)) for i, m in removals}

            def acked(i: int, _: FaceSearchError, done: dict[int, Applied] = done) -> Applied:
                return done[i]

            if self._takes_work(collection_id, list(done), results, acked):
                self._delete(collection_id, removals, results)
        return [r if r is not None else RuntimeError("message not handled") for r in results]

    def _takes_work(
        self,
        collection_id: str,
        indices: list[int],
        results: list[Applied | BaseException | None],
        closed: Callable[[int, FaceSearchError], Applied],
    ) -> bool:
        """Does the collection take index writes? Otherwise fill in the messages' results:
        ``closed`` for an unknown or erasing collection, the error (retry) if the check failed.
        """
        try:
            self._require_active(collection_id)
        except (NotFound, CollectionClosed) as exc:
            for i in indices:
                results[i] = closed(i, exc)
            return False
        except Exception as exc:
            for i in indices:
                results[i] = exc
            return False
        return True

    def _add(
        self,
        collection_id: str,
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
        links = [link for i, _ in items if (link := link_to(messages[i].attributes))]
        started = time.perf_counter()
        try:
            with span(
                "index.commit",
                {"facesearch.op": "add", "facesearch.faces": len(face_ids)},
                links=links,
            ):
                added = self.writers(collection_id).add(face_ids, vectors, model)
            metrics.record_commit("add", time.perf_counter() - started)
            if self._closed_meanwhile(collection_id):
                for i, _ in items:
                    results[i] = Applied(KIND_EMBEDDINGS, 0)
                return
            event = FaceEvent(
                "face_added", face_ids, model, added.manifest_version, collection_id=collection_id
            )
            self.bus.publish(self.events_topic, [event.encode()])
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
        if added.added:  # a redelivery that added nothing made nothing searchable
            for lag in lags:
                metrics.record_searchable(lag)
        logger.info(
            "embeddings indexed",
            extra=log_fields(
                collection=collection_id,
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
        collection_id: str,
        deletions: list[tuple[int, DeletionsMessage]],
        results: list[Applied | BaseException | None],
    ) -> None:
        face_ids = [f for _, m in deletions for f in m.face_ids]
        started = time.perf_counter()
        try:
            with span(
                "index.commit", {"facesearch.op": "delete", "facesearch.faces": len(face_ids)}
            ):
                deleted = self.writers(collection_id).delete(face_ids)
            metrics.record_commit("delete", time.perf_counter() - started)
            if self._closed_meanwhile(collection_id):
                for i, m in deletions:
                    results[i] = Applied(KIND_DELETIONS, len(m.face_ids))
                return
            event = FaceEvent(
                "face_removed",
                face_ids,
                None,
                deleted.manifest_version,
                collection_id=collection_id,
            )
            self.bus.publish(self.events_topic, [event.encode()])
        except Exception as exc:
            for i, _ in deletions:
                results[i] = exc
            return
        logger.info(
            "faces removed from the index",
            extra=log_fields(
                collection=collection_id,
                requested=len(face_ids),
                deleted=deleted.deleted,
                manifest_version=deleted.manifest_version,
            ),
        )
        for i, m in deletions:
            results[i] = Applied(KIND_DELETIONS, len(m.face_ids), None, deleted.manifest_version)

    def _closed_meanwhile(self, collection_id: str) -> bool:
        """After a commit: did an erase begin while it ran? Then remove what it wrote.

        The erase marks the collection before it scans, and this check runs after the
        commit: either the erase's scan sees the new objects (and goes round again) or
        this check sees the mark and removes them; an erased index never stays back.
        """
        try:
            self._require_active(collection_id)
        except (NotFound, CollectionClosed):
            if self._discard_index is not None:
                removed = self._discard_index(collection_id)
                logger.warning(
                    "commit raced a collection erase; its index objects removed again",
                    extra=log_fields(collection=collection_id, removed=removed),
                )
            return True
        return False

    def _control(self, message: Message) -> Applied | BaseException:
        """One maintenance step (erase, retention); its own continuation if unfinished."""
        control = ControlMessage.decode(message)
        if self.maintenance is None:
            return self._poison(
                message, KIND_CONTROL, BadMessage("this indexer runs no maintenance")
            )
        try:
            outcome = self.maintenance.handle(control)
        except Exception as exc:
            return exc
        logger.info(
            "maintenance step",
            extra=log_fields(
                action=control.action, collection=control.collection_id, outcome=outcome
            ),
        )
        return Applied(KIND_CONTROL, 0)

    @staticmethod
    def _poison(message: Message, kind: str, error: FaceSearchError) -> Applied:
        logger.error(
            "poison message acknowledged (rebuild from metadata restores the index)",
            extra=log_fields(
                message_id=message.message_id,
                kind=kind,
                image_id=message.attributes.get("image_id"),
                **error.log_fields(),
            ),
        )
        return Applied(kind, 0, poison=error.code)

    def handle_batch(self, messages: list[Message]) -> None:
        """In-process bus handler: raise if any message must be redelivered."""
        for result in self.apply(messages):
            if isinstance(result, BaseException):
                raise result
