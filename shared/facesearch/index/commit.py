"""Manifest commits: read, successor, compare-and-swap, and fetches that race with GC.

Every mutation of the index (add, delete, merge, GC bookkeeping) is one pattern:

1. read ``manifest.json`` and its generation ``g``;
2. decide the change *against that manifest*;
3. upload any new segment under a fresh, never-reused name;
4. write the new manifest with ``if_generation_match=g``.

:class:`ManifestLog` owns steps 1 and 4 and the pieces every mutation shares:
the successor manifest (re-validated before it can be committed), the jittered
retry pause after a lost swap, the live view of a manifest (sidecars cached per
segment id), and the rule that a segment object missing under a *stale*
manifest is the normal race with compaction + GC, not corruption.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from facesearch.errors import FaceSearchError, IndexCorrupt, NotFound, PreconditionFailed
from facesearch.index.ids import SegmentIds
from facesearch.index.live import LiveView
from facesearch.index.manifest import MANIFEST_NAME, Manifest, SegmentEntry, segment_object_names
from facesearch.index.segment import BuiltSegment, SegmentCache
from facesearch.logs import log_fields
from facesearch.storage.blob import BlobStore
from facesearch.telemetry import metrics

logger = logging.getLogger(__name__)
T = TypeVar("T")


def read_manifest(store: BlobStore) -> tuple[Manifest | None, int]:
    """The current manifest and its generation; ``(None, 0)`` for an empty index."""
    try:
        data, generation = store.read(MANIFEST_NAME)
    except NotFound:
        return None, 0
    return Manifest.from_bytes(data, source=f"{store.url}/{MANIFEST_NAME}"), generation


class ManifestLog:
    """Reads and swaps one index's manifest; shared by the writer, merges and GC."""

    def __init__(self, store: BlobStore, cache: SegmentCache, clock: Callable[[], float]) -> None:
        self.store = store
        self.cache = cache
        self.clock = clock
        self._ids: dict[str, SegmentIds] = {}

    def read(self) -> tuple[Manifest | None, int]:
        return read_manifest(self.store)

    def successor(self, manifest: Manifest, **changes: object) -> Manifest:
        """The next manifest, re-validated so a bug here can never be committed."""
        update = {"version": manifest.version + 1, "updated_at": self.clock(), **changes}
        return Manifest.model_validate(manifest.model_copy(update=update).model_dump(mode="json"))

    def swap(self, new: Manifest, generation: int, attempt: int, what: str) -> bool:
        """Compare-and-swap the manifest; False (after a short jittered pause) if we lost."""
        try:
            self.store.write(MANIFEST_NAME, new.to_bytes(), if_generation_match=generation)
            metrics.record_index(
                "writer", self, len(new.segments), new.live_count, new.tombstone_count
            )
            return True
        except PreconditionFailed:
            logger.debug("manifest swap lost, retrying", extra=log_fields(op=what, attempt=attempt))
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))
            return False

    def sidecar(self, entry: SegmentEntry) -> SegmentIds:
        ids = self._ids.get(entry.id)
        if ids is None:
            ids = self.cache.ids(entry)
            self._ids[entry.id] = ids
        return ids

    def live(self, manifest: Manifest) -> LiveView:
        """Live set of ``manifest``; sidecars of segments seen before come from memory."""
        pairs = [(s, self.fetch(s, self.sidecar)) for s in manifest.segments]
        wanted = {s.id for s in manifest.segments}
        for sid in [sid for sid in self._ids if sid not in wanted]:
            del self._ids[sid]
        return LiveView(pairs)

    def fetch(self, entry: SegmentEntry, fetch: Callable[[SegmentEntry], T]) -> T:
        """Fetch a segment part; a missing object is corruption only if still listed.

        NotFound under a stale manifest is the normal race with compaction + GC
        and is re-raised for the caller to re-read; missing while the current
        manifest lists it is a broken index and says so.
        """
        try:
            return fetch(entry)
        except NotFound:
            fresh, _ = self.read()
            if fresh is not None and fresh.segment(entry.id) is not None:
                raise IndexCorrupt(
                    f"segment {entry.id} is listed in {self.store.url}/{MANIFEST_NAME} "
                    "but its objects are missing from the store"
                ) from None
            raise

    def discard(self, built: Iterable[BuiltSegment]) -> None:
        """Best-effort removal of segments we uploaded but will not commit (GC is the backstop)."""
        for segment in built:
            segment.index_path.unlink(missing_ok=True)
            for name in segment_object_names(segment.entry.id):
                with contextlib.suppress(FaceSearchError):
                    self.store.delete(name)
