"""The index writer: add, delete, compact and garbage-collect by manifest swaps.

Every mutation follows one pattern, which is what makes racing writers,
redelivered messages and killed instances safe:

1. read ``manifest.json`` and its generation ``g``;
2. decide the change *against that manifest* (which faces are already live,
   which keys are free, which segments to merge);
3. upload any new segment under a fresh, never-reused name;
4. write the new manifest with ``if_generation_match=g``.

Step 4 is the only point where anything becomes visible, and it is atomic. A
writer that loses the race (412) goes back to step 1 and re-decides against the
winner's manifest, so nobody's work is lost and two writers adding the same
face id still leave it live once. A writer killed before step 4 leaves only an
unreferenced segment object, which :meth:`IndexWriter.gc` deletes once it is
older than the grace period. Objects of segments replaced by compaction are
likewise kept for the grace period, so readers holding an older manifest can
still download them.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

from facesearch.errors import (
    FaceSearchError,
    IndexCorrupt,
    NotFound,
    PreconditionFailed,
    TransientError,
)
from facesearch.index import compaction
from facesearch.index.ids import SegmentIds
from facesearch.index.keys import check_face_id
from facesearch.index.live import LiveView
from facesearch.index.manifest import (
    MANIFEST_NAME,
    SEGMENTS_PREFIX,
    Manifest,
    ModelRef,
    RetiredSegment,
    SegmentEntry,
    segment_id_of,
    segment_object_names,
)
from facesearch.index.params import IndexParams
from facesearch.index.segment import (
    BuiltSegment,
    SegmentCache,
    build_segment,
    new_segment_id,
    stack_vectors,
    upload_segment,
)
from facesearch.index.vectors import normalise
from facesearch.logs import log_fields
from facesearch.storage.blob import BlobStore
from facesearch.telemetry import metrics

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class AddResult:
    added: int
    already_live: int
    segment_id: str | None
    manifest_version: int
    attempts: int


@dataclass(frozen=True)
class DeleteResult:
    deleted: int
    not_found: int
    manifest_version: int
    attempts: int


@dataclass(frozen=True)
class GcResult:
    deleted_objects: tuple[str, ...]
    forgotten_retired: int


@dataclass(frozen=True)
class CompactResult:
    merges: int
    segments_before: int
    segments_after: int
    vectors_dropped: int
    gc: GcResult | None


def read_manifest(store: BlobStore) -> tuple[Manifest | None, int]:
    """The current manifest and its generation; ``(None, 0)`` for an empty index."""
    try:
        data, generation = store.read(MANIFEST_NAME)
    except NotFound:
        return None, 0
    return Manifest.from_bytes(data, source=f"{store.url}/{MANIFEST_NAME}"), generation


class IndexWriter:
    """Mutates the index in ``store``. Any number of writers may run at once."""

    def __init__(
        self,
        store: BlobStore,
        *,
        cache_dir: Path,
        params: IndexParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.params = params or IndexParams()
        self.cache = SegmentCache(store, cache_dir)
        self._clock = clock
        self._ids: dict[str, SegmentIds] = {}

    def read_manifest(self) -> tuple[Manifest | None, int]:
        return read_manifest(self.store)

    # --- add -----------------------------------------------------------------------

    def add(self, face_ids: Sequence[str], vectors: ArrayLike, model: ModelRef | str) -> AddResult:
        """Add faces not already live; live ones (redelivery) are a no-op.

        Within one call a repeated face id keeps its first vector. Raises
        ModelMismatch for another model's embeddings, InvalidEmbedding for bad
        vectors, TransientError if the manifest stays contended (retry later).
        """
        model = ModelRef.parse(model)
        ids = [check_face_id(f) for f in face_ids]
        vecs = normalise(vectors)
        if len(vecs) != len(ids):
            raise ValueError(f"{len(ids)} face ids but {len(vecs)} vectors")
        first: dict[str, int] = {}
        for i, face_id in enumerate(ids):
            first.setdefault(face_id, i)
        ids, vecs = list(first), vecs[list(first.values())]
        built: BuiltSegment | None = None
        uploaded_at = 0.0
        try:
            for attempt in range(1, self.params.commit_attempts + 1):
                manifest, generation = self.read_manifest()
                if manifest is None:
                    manifest = Manifest(dims=vecs.shape[1], dtype=self.params.dtype, model=model)
                manifest.check_model(model, vecs.shape[1])
                if built is not None and manifest.segment(built.entry.id) is not None:
                    # our previous swap landed although it reported a failure
                    result = self._added(built, manifest, len(ids), attempt)
                    built = None
                    return result
                try:
                    live = self._live(manifest)
                except NotFound:
                    continue  # a segment vanished under a stale manifest: re-read
                found = live.find(ids, manifest.max_probe)
                todo = [i for i, hit in enumerate(found) if hit is None]
                if not todo:
                    return AddResult(0, len(ids), None, manifest.version, attempt)
                todo_ids = [ids[i] for i in todo]
                keys, max_probe = live.assign(todo_ids, manifest.max_probe)
                if built is not None and not built.same_content(keys, todo_ids):
                    self._discard(built)  # the race changed what this batch must add
                    built = None
                if built is not None and self._clock() - uploaded_at > self.params.gc_grace_s / 2:
                    # GC may soon take our uncommitted upload for an orphan: upload a fresh copy
                    old_names = segment_object_names(built.entry.id)
                    built.entry = built.entry.model_copy(update={"id": new_segment_id()})
                    upload_segment(self.store, built)
                    uploaded_at = self._clock()
                    for name in old_names:
                        with contextlib.suppress(FaceSearchError):
                            self.store.delete(name)
                if built is None:
                    built = build_segment(
                        keys,
                        vecs[todo],
                        todo_ids,
                        dims=manifest.dims,
                        dtype=manifest.dtype,
                        params=self.params,
                        workdir=self.cache.directory,
                    )
                    upload_segment(self.store, built)
                    uploaded_at = self._clock()
                entry = built.entry.model_copy(update={"created_at": self._clock()})
                built.entry = entry
                new = self._next(
                    manifest, segments=(*manifest.segments, entry), max_probe=max_probe
                )
                if not self._swap(new, generation, attempt, "add"):
                    continue
                result = self._added(built, new, len(ids), attempt)
                built = None  # committed: no longer ours to discard
                self._after_commit()
                return result
        finally:
            if built is not None:
                self._discard(built)
        raise TransientError(
            f"add: manifest still contended after {self.params.commit_attempts} attempts"
        )

    def _added(
        self, built: BuiltSegment, manifest: Manifest, total: int, attempt: int
    ) -> AddResult:
        self.cache.adopt(built)
        added = built.entry.count
        logger.info(
            "index add committed",
            extra=log_fields(
                segment_id=built.entry.id,
                added=added,
                already_live=total - added,
                manifest_version=manifest.version,
                attempts=attempt,
            ),
        )
        return AddResult(added, total - added, built.entry.id, manifest.version, attempt)

    # --- delete --------------------------------------------------------------------

    def delete(self, face_ids: Sequence[str]) -> DeleteResult:
        """Tombstone the live entries of these faces; unknown/deleted ones are a no-op."""
        ids = list(dict.fromkeys(check_face_id(f) for f in face_ids))
        for attempt in range(1, self.params.commit_attempts + 1):
            manifest, generation = self.read_manifest()
            if manifest is None:
                return DeleteResult(0, len(ids), 0, attempt)
            try:
                hits = self._live(manifest).find(ids, manifest.max_probe)
            except NotFound:
                continue
            by_segment: dict[str, set[int]] = {}
            for hit in hits:
                if hit is not None:
                    by_segment.setdefault(hit.segment_id, set()).add(hit.key)
            deleted = sum(len(keys) for keys in by_segment.values())
            if not deleted:
                return DeleteResult(0, len(ids), manifest.version, attempt)
            segments = tuple(
                s.model_copy(
                    update={"tombstones": tuple(sorted({*s.tombstones, *by_segment[s.id]}))}
                )
                if s.id in by_segment
                else s
                for s in manifest.segments
            )
            new = self._next(manifest, segments=segments)
            if not self._swap(new, generation, attempt, "delete"):
                continue
            logger.info(
                "index delete committed",
                extra=log_fields(deleted=deleted, manifest_version=new.version, attempts=attempt),
            )
            self._after_commit()
            return DeleteResult(deleted, len(ids) - deleted, new.version, attempt)
        raise TransientError(
            f"delete: manifest still contended after {self.params.commit_attempts} attempts"
        )

    # --- compaction ------------------------------------------------------------------

    def compact(self, *, full: bool = False, gc: bool = True) -> CompactResult:
        """Merge segments by size tier (or all, with ``full``) and drop deleted vectors.

        Each merge is its own manifest swap; concurrent deletes to the inputs are
        carried over onto the merged segment, a concurrent compaction of the same
        inputs makes this one abandon its merge and re-plan.
        """
        manifest, _ = self.read_manifest()
        before = len(manifest.segments) if manifest else 0
        merges = dropped = 0
        for _ in range(self.params.commit_attempts):
            manifest, _ = self.read_manifest()
            if manifest is None:
                break
            groups = compaction.plan(
                manifest.segments,
                min_segment=self.params.compact_min_segment,
                fanout=self.params.compact_fanout,
                tombstone_ratio=self.params.compact_tombstone_ratio,
                full=full,
            )
            if not groups:
                break
            outcome = self._merge(manifest, groups[0])
            if outcome is not None:
                merges += 1
                dropped += outcome
                full = False  # a full merge is done once; what follows is ordinary tiering
        manifest, _ = self.read_manifest()
        after = len(manifest.segments) if manifest else 0
        gc_result = self.gc() if gc and merges else None
        return CompactResult(merges, before, after, dropped, gc_result)

    def _merge(self, planned: Manifest, group: list[SegmentEntry]) -> int | None:
        """Replace ``group`` by one segment; returns vectors dropped, None if abandoned."""
        keys_parts: list[np.ndarray] = []
        vector_parts: list[np.ndarray] = []
        face_ids: list[str] = []
        try:
            for entry in group:
                ids = self._fetch(entry, self._sidecar)
                live_mask = ~np.isin(ids.keys, np.asarray(entry.tombstones, dtype=np.uint64))
                live_keys = np.asarray(ids.keys[live_mask], dtype=np.uint64)
                if len(live_keys) == 0:
                    continue
                index = self._fetch(
                    entry,
                    lambda e: self.cache.open_index(
                        e, dims=planned.dims, dtype=planned.dtype, view=True
                    ),
                )
                keys_parts.append(live_keys)
                vector_parts.append(stack_vectors(index.get(live_keys)))
                face_ids.extend(ids.face_id(int(p)) for p in np.flatnonzero(live_mask))
                del index
        except NotFound:
            return None  # inputs already replaced and collected: re-plan
        built: BuiltSegment | None = None
        if keys_parts:
            built = build_segment(
                np.concatenate(keys_parts),
                np.concatenate(vector_parts),
                face_ids,
                dims=planned.dims,
                dtype=planned.dtype,
                params=self.params,
                workdir=self.cache.directory,
            )
            upload_segment(self.store, built)
        group_ids = {e.id for e in group}
        planned_tombs = {e.id: set(e.tombstones) for e in group}
        try:
            for attempt in range(1, self.params.commit_attempts + 1):
                manifest, generation = self.read_manifest()
                current = {s.id: s for s in manifest.segments} if manifest else {}
                if manifest is None or not group_ids <= current.keys():
                    return None  # someone else compacted these first
                segments = [s for s in manifest.segments if s.id not in group_ids]
                if built is not None:
                    # deletes that raced with us, carried over to the merged segment
                    late = {
                        key
                        for sid in group_ids
                        for key in set(current[sid].tombstones) - planned_tombs[sid]
                    }
                    merged = built.entry.model_copy(
                        update={
                            "tombstones": tuple(sorted(late)),
                            "created_at": self._clock(),
                        }
                    )
                    built.entry = merged
                    segments.append(merged)
                now = self._clock()
                retired = (
                    *manifest.retired,
                    *(RetiredSegment(id=sid, retired_at=now) for sid in sorted(group_ids)),
                )
                new = self._next(manifest, segments=tuple(segments), retired=retired)
                if not self._swap(new, generation, attempt, "compact"):
                    continue
                dropped = sum(e.count for e in group) - (built.entry.count if built else 0)
                logger.info(
                    "index compaction committed",
                    extra=log_fields(
                        merged=sorted(group_ids),
                        into=built.entry.id if built else None,
                        vectors=built.entry.count if built else 0,
                        dropped=dropped,
                        manifest_version=new.version,
                    ),
                )
                if built is not None:
                    self.cache.adopt(built)
                    built = None
                return dropped
            return None
        finally:
            if built is not None:
                self._discard(built)

    # --- garbage collection -------------------------------------------------------------

    def gc(self, *, grace_s: float | None = None) -> GcResult:
        """Delete segment objects nobody can need any more.

        Retired segments go once ``grace_s`` has passed since they were replaced;
        orphans (uploaded by a writer that died or lost before committing) go
        once the object itself is that old. Objects listed by the manifest, and
        foreign objects under ``segments/``, are never touched.
        """
        grace = self.params.gc_grace_s if grace_s is None else grace_s
        manifest, _ = self.read_manifest()
        if manifest is None:
            return GcResult((), 0)
        now = self._clock()
        live_ids = {s.id for s in manifest.segments}
        retired_at = {r.id: r.retired_at for r in manifest.retired}
        expired = {sid for sid, when in retired_at.items() if now - when >= grace}
        doomed: list[str] = []
        for info in self.store.list(SEGMENTS_PREFIX):
            sid = segment_id_of(info.name)
            if sid is None or sid in live_ids:
                continue
            if sid in retired_at:
                if sid in expired:
                    doomed.append(info.name)
            elif now - info.updated >= grace:
                doomed.append(info.name)
        for name in doomed:
            self.store.delete(name)
        forgotten = self._forget_retired(expired) if expired else 0
        if doomed or forgotten:
            logger.info(
                "index gc",
                extra=log_fields(deleted_objects=len(doomed), forgotten_retired=forgotten),
            )
        return GcResult(tuple(doomed), forgotten)

    def _forget_retired(self, expired: set[str]) -> int:
        """Drop GC'd entries from the manifest's retired list (after their objects are gone)."""
        for attempt in range(1, self.params.commit_attempts + 1):
            manifest, generation = self.read_manifest()
            if manifest is None:
                return 0
            keep = tuple(r for r in manifest.retired if r.id not in expired)
            if len(keep) == len(manifest.retired):
                return 0
            new = self._next(manifest, retired=keep)
            if self._swap(new, generation, attempt, "gc"):
                return len(manifest.retired) - len(keep)
        return 0

    # --- shared machinery ---------------------------------------------------------------

    def _next(self, manifest: Manifest, **changes: object) -> Manifest:
        """The successor manifest, re-validated so a bug here can never be committed."""
        update = {"version": manifest.version + 1, "updated_at": self._clock(), **changes}
        return Manifest.model_validate(manifest.model_copy(update=update).model_dump(mode="json"))

    def _swap(self, new: Manifest, generation: int, attempt: int, what: str) -> bool:
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

    def _sidecar(self, entry: SegmentEntry) -> SegmentIds:
        ids = self._ids.get(entry.id)
        if ids is None:
            ids = self.cache.ids(entry)
            self._ids[entry.id] = ids
        return ids

    def _live(self, manifest: Manifest) -> LiveView:
        """Live set of ``manifest``; sidecars of segments seen before come from memory."""
        pairs = [(s, self._fetch(s, self._sidecar)) for s in manifest.segments]
        wanted = {s.id for s in manifest.segments}
        for sid in [sid for sid in self._ids if sid not in wanted]:
            del self._ids[sid]
        return LiveView(pairs)

    def _fetch(self, entry: SegmentEntry, fetch: Callable[[SegmentEntry], T]) -> T:
        """Fetch a segment part; a missing object is corruption only if still listed.

        NotFound under a stale manifest is the normal race with compaction + GC
        and is re-raised for the caller to re-read; missing while the current
        manifest lists it is a broken index and says so.
        """
        try:
            return fetch(entry)
        except NotFound:
            fresh, _ = self.read_manifest()
            if fresh is not None and fresh.segment(entry.id) is not None:
                raise IndexCorrupt(
                    f"segment {entry.id} is listed in {self.store.url}/{MANIFEST_NAME} "
                    "but its objects are missing from the store"
                ) from None
            raise

    def _discard(self, built: BuiltSegment) -> None:
        """Best-effort removal of a segment we uploaded but will not commit (GC is the backstop)."""
        built.index_path.unlink(missing_ok=True)
        for name in segment_object_names(built.entry.id):
            with contextlib.suppress(FaceSearchError):
                self.store.delete(name)

    def _after_commit(self) -> None:
        if not self.params.auto_compact:
            return
        try:
            self.compact()
        except TransientError as exc:  # the commit itself succeeded; compaction can wait
            logger.warning("auto-compaction postponed", extra=log_fields(error=str(exc)))


__all__ = [
    "AddResult",
    "CompactResult",
    "DeleteResult",
    "GcResult",
    "IndexWriter",
    "read_manifest",
]
