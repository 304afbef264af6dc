"""The clusterer service: ``face-events`` in, persons out, for every collection.

The indexer announces each commit on ``face-events`` (``face_added`` / ``face_removed``
with the index manifest version, per collection). This service hands each event to the
collection's :class:`~.service.PeopleService` — opened on first use (its people store,
an index reader for neighbourhood queries, its metadata store) and kept in a small LRU
— whose engine applies it locally and idempotently (:mod:`.engine`).

Per message, one outcome: applied; skipped (the collection is unknown or being erased:
its persons are going, nothing may be written); or an exception, which the entry point
turns into a redelivery (:mod:`.entry`). A body that cannot be parsed is
:class:`~facesearch.errors.BadMessage` (poison: acknowledged and logged).

The in-process bus (embedded mode) calls :meth:`ClustererService.handle_batch`; Cloud
Run's push subscription calls :func:`facesearch.people.entry.handle_push`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from facesearch.errors import CollectionClosed, NotFound
from facesearch.logs import log_fields
from facesearch.people.service import PeopleService
from facesearch.storage.bus import Message
from facesearch.storage.messages import FaceEvent

logger = logging.getLogger(__name__)

#: the events that change persons; others on face-events (a finished video) are acknowledged
FACE_EVENTS = frozenset({"face_added", "face_removed"})
#: collections whose people service (and index reader) an instance keeps open
MAX_OPEN_COLLECTIONS = 16


@dataclass(frozen=True)
class Handled:
    """What one face event did: counts of outcomes (joined, founded, deferred, ...)."""

    event: str
    collection_id: str
    faces: int
    outcomes: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None


class ClustererService:
    def __init__(
        self,
        people: Callable[[str], PeopleService],
        *,
        require_active: Callable[[str], object] | None = None,
        max_open: int = MAX_OPEN_COLLECTIONS,
    ) -> None:
        self._build = people
        self._require_active = require_active or (lambda collection_id: None)
        self._max_open = max_open
        self._open: OrderedDict[str, PeopleService] = OrderedDict()
        self._lock = threading.Lock()

    def people(self, collection_id: str) -> PeopleService:
        """The collection's service, opened on first use (least recently used ones close)."""
        with self._lock:
            service = self._open.get(collection_id)
            if service is not None:
                self._open.move_to_end(collection_id)
                return service
        built = self._build(collection_id)
        with self._lock:
            service = self._open.setdefault(collection_id, built)
            self._open.move_to_end(collection_id)
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        return service

    def handle(self, message: Message) -> Handled:
        """Apply one face event; raises (BadMessage: poison; anything else: retry)."""
        event = FaceEvent.decode(message)
        if event.event not in FACE_EVENTS:  # video_done / video_failed share the topic
            return Handled(event.event, event.collection_id, 0, {}, "not a face event")
        start = time.perf_counter()
        try:
            self._require_active(event.collection_id)
            outcomes = self.people(event.collection_id).handle(event)
        except (NotFound, CollectionClosed) as exc:
            logger.info(
                "face event for a closed collection skipped",
                extra=log_fields(collection=event.collection_id, reason=str(exc)),
            )
            return Handled(event.event, event.collection_id, len(event.face_ids), {}, "closed")
        counts = dict(Counter(o.action for o in outcomes))
        logger.info(
            "face event clustered",
            extra=log_fields(
                collection=event.collection_id,
                event=event.event,
                faces=len(event.face_ids),
                manifest_version=event.manifest_version,
                outcomes=counts,
                attempts=max((o.attempts for o in outcomes), default=0),
                ms=round((time.perf_counter() - start) * 1000.0, 2),
            ),
        )
        return Handled(event.event, event.collection_id, len(event.face_ids), counts)

    def handle_batch(self, messages: list[Message]) -> None:
        """In-process bus handler: every message in turn; an error makes the bus retry."""
        for message in messages:
            self.handle(message)
