"""Collection records as a service sees them: cached briefly, checked before work.

Every ingest, search and index commit asks "does this collection exist and take
work?" — one catalog read each would double the storage traffic, so records are
cached per instance for ``ttl_s``. The cache only ever delays *seeing* a change;
the guarantee that nothing is written into an erased collection comes from the
stores themselves, which check the status in the same transaction as each write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from facesearch.collections.policy import CollectionSettings
from facesearch.errors import CollectionClosed, NotFound
from facesearch.storage.catalog import Catalog, CollectionRecord, CollectionStatus

#: how long a collection record is trusted before it is read again
RECORD_TTL_S = 10.0


class CollectionDirectory:
    def __init__(
        self,
        catalog: Catalog,
        *,
        ttl_s: float = RECORD_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, CollectionRecord | None]] = {}
        self._lock = threading.Lock()

    def get(self, collection_id: str, *, fresh: bool = False) -> CollectionRecord | None:
        """The record (None: no such collection); ``fresh`` reads past the cache."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(collection_id)
        if not fresh and hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        record = self.catalog.get_collection(collection_id)
        with self._lock:
            self._cache[collection_id] = (now, record)
        return record

    def forget(self, collection_id: str) -> None:
        """Drop the cached record (this instance just changed it)."""
        with self._lock:
            self._cache.pop(collection_id, None)

    def require(self, collection_id: str, *, fresh: bool = False) -> CollectionRecord:
        """The record of an existing collection (NotFound otherwise), any status."""
        record = self.get(collection_id, fresh=fresh)
        if record is None:
            raise NotFound(f"collection {collection_id} does not exist")
        return record

    def require_active(self, collection_id: str, *, fresh: bool = False) -> CollectionRecord:
        """An existing collection that takes work (NotFound / CollectionClosed otherwise)."""
        record = self.require(collection_id, fresh=fresh)
        if record.status is not CollectionStatus.ACTIVE:
            raise CollectionClosed(f"collection {collection_id} is {record.status}")
        return record

    def settings(self, collection_id: str) -> CollectionSettings:
        return CollectionSettings.from_record(self.require(collection_id).settings)
