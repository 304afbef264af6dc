"""The index reader: cached, memory-mapped segments, merged top-k, tombstone filtering.

A query instance opens the manifest once, fetches only segments it does not
already hold (verified by sha256 into a local cache) and memory-maps them with
USearch ``view``, so a cold start costs a download and an mmap, not a
deserialisation, and several workers on one host share the page cache.
``refresh()`` is one metadata request when nothing changed.

Searches run against an immutable snapshot of the open segments, swapped
atomically by ``refresh()``: concurrent request threads never see a half
refreshed index, and segments dropped by a refresh stay mapped until the last
search using them returns.

Tombstones are filtered per segment on the candidates only (binary search in
the segment's sorted tombstone array), never by scanning the index: each
segment is asked for ``k + its tombstone count`` candidates, so even if every
tombstoned vector ranks first, k live ones remain. Compaction keeps that
number small (a segment is rewritten once ``compact_tombstone_ratio`` of it is
deleted).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from facesearch.errors import IndexCorrupt, NotFound
from facesearch.index.fanout import OpenSegment, search_segments
from facesearch.index.live import sorted_contains, tombstone_array
from facesearch.index.manifest import MANIFEST_NAME, Manifest, ModelRef, SegmentEntry
from facesearch.index.params import IndexParams
from facesearch.index.segment import SegmentCache
from facesearch.index.vectors import normalise
from facesearch.logs import log_fields
from facesearch.native import search_many
from facesearch.storage.blob import BlobStore
from facesearch.telemetry import metrics, span

#: Segments fetched, verified and mapped at once on open/refresh (downloads and sha256
#: release the GIL, so a cold start with several segments overlaps them).
OPEN_THREADS = 4

logger = logging.getLogger(__name__)


class SearchHit(NamedTuple):
    """One result. A named tuple: ten are built per query, at a third of a dataclass's cost."""

    face_id: str
    #: cosine similarity in [-1, 1] (approximate for f16/i8 storage)
    similarity: float


@dataclass(frozen=True)
class _Snapshot:
    manifest: Manifest | None
    generation: int | None
    segments: tuple[OpenSegment, ...]


class IndexReader:
    """Searches the index in ``store``. Thread-safe; call :meth:`refresh` to see new data."""

    def __init__(
        self,
        store: BlobStore,
        *,
        cache_dir: Path,
        params: IndexParams | None = None,
        expected_model: ModelRef | str | None = None,
        view: bool = True,
    ) -> None:
        self.store = store
        self.params = params or IndexParams()
        self.cache = SegmentCache(store, cache_dir)
        self.expected_model = None if expected_model is None else ModelRef.parse(expected_model)
        self.view = view
        self._snapshot = _Snapshot(None, None, ())
        self._refresh_lock = threading.Lock()
        self.refresh()

    # --- state ---------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest | None:
        return self._snapshot.manifest

    @property
    def live_count(self) -> int:
        manifest = self._snapshot.manifest
        return manifest.live_count if manifest else 0

    def refresh(self) -> bool:
        """Pick up a new manifest if there is one; returns whether anything changed."""
        with self._refresh_lock:
            generation = self.store.stat(MANIFEST_NAME)
            if generation == self._snapshot.generation:
                return False
            for attempt in range(2):
                try:
                    self._snapshot = self._load()
                    break
                except NotFound as exc:
                    # A segment vanished between our manifest read and its download:
                    # compaction + GC raced us. The next manifest will not list it.
                    if attempt == 1:
                        raise IndexCorrupt(
                            f"{self.store.url}: a segment listed in the manifest is missing "
                            f"from the store ({exc.message})"
                        ) from exc
            snapshot = self._snapshot
            if snapshot.manifest is not None:
                manifest = snapshot.manifest
                metrics.record_index(
                    "reader",
                    self,
                    len(manifest.segments),
                    manifest.live_count,
                    manifest.tombstone_count,
                )
                self.cache.prune(snapshot.manifest.segments)
                logger.info(
                    "index opened",
                    extra=log_fields(
                        manifest_version=snapshot.manifest.version,
                        segments=len(snapshot.segments),
                        live=snapshot.manifest.live_count,
                    ),
                )
            return True

    def _load(self) -> _Snapshot:
        try:
            data, generation = self.store.read(MANIFEST_NAME)
        except NotFound:
            return _Snapshot(None, None, ())
        manifest = Manifest.from_bytes(data, source=f"{self.store.url}/{MANIFEST_NAME}")
        if self.expected_model is not None:
            manifest.check_model(self.expected_model)
        held = {s.entry.id: s for s in self._snapshot.segments}
        new = [entry for entry in manifest.segments if entry.id not in held]
        if len(new) > 1:
            with ThreadPoolExecutor(min(OPEN_THREADS, len(new))) as pool:
                opened_new = pool.map(lambda entry: self._open(entry, manifest), new)
                fresh = dict(zip([e.id for e in new], opened_new, strict=True))
        else:
            fresh = {entry.id: self._open(entry, manifest) for entry in new}
        opened = []
        for entry in manifest.segments:
            old = held.get(entry.id)
            if old is not None:  # same immutable files; only the tombstones may differ
                opened.append(OpenSegment(entry, old.index, old.ids, tombstone_array(entry)))
            else:
                opened.append(fresh[entry.id])
        return _Snapshot(manifest, generation, tuple(opened))

    def _open(self, entry: SegmentEntry, manifest: Manifest) -> OpenSegment:
        """Fetch (verified), map and check one segment."""
        index = self.cache.open_index(
            entry, dims=manifest.dims, dtype=manifest.dtype, view=self.view
        )
        index.expansion_search = self.params.expansion_search  # type: ignore[misc]
        ids = self.cache.ids(entry)
        tombs = tombstone_array(entry)
        if len(tombs) and not sorted_contains(ids.keys, tombs).all():
            raise IndexCorrupt(f"segment {entry.id}: tombstones name keys it does not hold")
        return OpenSegment(entry, index, ids, tombs)

    # --- search --------------------------------------------------------------------

    def search(
        self, queries: ArrayLike, k: int = 10, *, exact: bool = False
    ) -> list[list[SearchHit]]:
        """Top-``k`` live faces for each query row, best first.

        ``exact=True`` brute-forces every segment (for tests and recall checks). Traced
        as an ``index.search`` span.
        """
        if k < 1:
            raise ValueError("k must be >= 1")
        with span(
            "index.search",
            {"facesearch.k": k, "facesearch.segments": len(self._snapshot.segments)},
        ):
            return self._search(queries, k, exact)

    def _search(self, queries: ArrayLike, k: int, exact: bool) -> list[list[SearchHit]]:
        snapshot = self._snapshot
        manifest = snapshot.manifest
        if manifest is None:
            return [[] for _ in range(len(normalise(queries)))]
        q = normalise(queries, dims=manifest.dims)
        segments = snapshot.segments
        if len(q) == 1 and len(segments) == 1 and not len(segments[0].tombstones):
            return [self._search_plain(segments[0], q, k, exact)]
        rows = search_segments(
            segments,
            q,
            k,
            exact=exact,
            threads=self.params.search_threads,
            fanout_threads=self.params.fanout_threads,
        )
        return [[SearchHit(face_id, 1.0 - dist) for face_id, dist in row] for row in rows]

    def _search_plain(
        self, seg: OpenSegment, query: np.ndarray, k: int, exact: bool
    ) -> list[SearchHit]:
        """One query, one segment, nothing deleted: the steady state after compaction.

        Same result as the general path with a third of its numpy calls; at
        sub-millisecond search times the wrapper's overhead is worth shaving.
        """
        keys, dist, found = search_many(
            seg.index, query, k, exact=exact, threads=self.params.search_threads
        )
        count = int(found[0])
        positions = seg.ids.positions(keys[0, :count])
        if np.any(positions < 0):
            raise IndexCorrupt(f"segment {seg.entry.id}: a key is missing from its sidecar")
        return [
            SearchHit(face_id, 1.0 - distance)
            for face_id, distance in zip(
                seg.ids.face_ids(positions), dist[0, :count].tolist(), strict=True
            )
        ]

    def search_one(self, query: ArrayLike, k: int = 10, *, exact: bool = False) -> list[SearchHit]:
        return self.search(query, k, exact=exact)[0]

    def face_ids(self) -> list[str]:
        """Every live face id (a full scan of the sidecars: for tests and tools, not queries)."""
        out: list[str] = []
        for seg in self._snapshot.segments:
            live = ~sorted_contains(seg.tombstones, seg.ids.keys)
            out.extend(seg.ids.face_ids(np.flatnonzero(live)))
        return out
