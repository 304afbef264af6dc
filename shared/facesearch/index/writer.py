"""The index writer: add, delete, compact and garbage-collect by manifest swaps.

Every mutation follows one pattern (:mod:`.commit`), which is what makes
racing writers, redelivered messages and killed instances safe:

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

This module holds add and delete; merges live in :mod:`.merge`, GC in
:mod:`.gc`, and large adds are split into segments built in parallel by
:mod:`.build`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from numpy.typing import ArrayLike

from facesearch.errors import FaceSearchError, NotFound, TransientError
from facesearch.index import merge
from facesearch.index.build import build_segments, same_content
from facesearch.index.commit import ManifestLog, read_manifest
from facesearch.index.gc import GcResult, collect_garbage
from facesearch.index.keys import check_face_id
from facesearch.index.manifest import Manifest, ModelRef, segment_object_names
from facesearch.index.merge import CompactResult
from facesearch.index.params import IndexParams
from facesearch.index.segment import BuiltSegment, SegmentCache, new_segment_id, upload_segment
from facesearch.index.vectors import normalise
from facesearch.logs import log_fields
from facesearch.storage.blob import BlobStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AddResult:
    added: int
    already_live: int
    #: the first new segment (None if nothing was added)
    segment_id: str | None
    manifest_version: int
    attempts: int
    #: every new segment: a large add is split into several (``segment_max_vectors``)
    segment_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteResult:
    deleted: int
    not_found: int
    manifest_version: int
    attempts: int


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
        self._log = ManifestLog(store, self.cache, clock)

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
        built: list[BuiltSegment] = []
        uploaded_at = 0.0
        log = self._log
        try:
            for attempt in range(1, self.params.commit_attempts + 1):
                manifest, generation = log.read()
                if manifest is None:
                    manifest = Manifest(dims=vecs.shape[1], dtype=self.params.dtype, model=model)
                manifest.check_model(model, vecs.shape[1])
                if built and manifest.segment(built[0].entry.id) is not None:
                    # our previous swap landed although it reported a failure
                    result = self._added(built, manifest, len(ids), attempt)
                    built = []
                    return result
                try:
                    live = log.live(manifest)
                except NotFound:
                    continue  # a segment vanished under a stale manifest: re-read
                found = live.find(ids, manifest.max_probe)
                todo = [i for i, hit in enumerate(found) if hit is None]
                if not todo:
                    return AddResult(0, len(ids), None, manifest.version, attempt)
                todo_ids = [ids[i] for i in todo]
                keys, max_probe = live.assign(todo_ids, manifest.max_probe)
                if built and not same_content(built, keys, todo_ids):
                    log.discard(built)  # the race changed what this batch must add
                    built = []
                if built and self._clock() - uploaded_at > self.params.gc_grace_s / 2:
                    # GC may soon take our uncommitted uploads for orphans: upload fresh copies
                    for part in built:
                        self._reupload(part)
                    uploaded_at = self._clock()
                if not built:
                    built = build_segments(
                        keys,
                        vecs[todo],
                        todo_ids,
                        dims=manifest.dims,
                        dtype=manifest.dtype,
                        params=self.params,
                        workdir=self.cache.directory,
                    )
                    for part in built:
                        upload_segment(self.store, part)
                    uploaded_at = self._clock()
                now = self._clock()
                for part in built:
                    part.entry = part.entry.model_copy(update={"created_at": now})
                new = log.successor(
                    manifest,
                    segments=(*manifest.segments, *(part.entry for part in built)),
                    max_probe=max_probe,
                )
                if not log.swap(new, generation, attempt, "add"):
                    continue
                result = self._added(built, new, len(ids), attempt)
                built = []  # committed: no longer ours to discard
                self._after_commit()
                return result
        finally:
            log.discard(built)
        raise TransientError(
            f"add: manifest still contended after {self.params.commit_attempts} attempts"
        )

    def _reupload(self, part: BuiltSegment) -> None:
        old_names = segment_object_names(part.entry.id)
        part.entry = part.entry.model_copy(update={"id": new_segment_id()})
        upload_segment(self.store, part)
        for name in old_names:
            with contextlib.suppress(FaceSearchError):
                self.store.delete(name)

    def _added(
        self, built: list[BuiltSegment], manifest: Manifest, total: int, attempt: int
    ) -> AddResult:
        for part in built:
            self.cache.adopt(part)
        added = sum(part.entry.count for part in built)
        segment_ids = tuple(part.entry.id for part in built)
        logger.info(
            "index add committed",
            extra=log_fields(
                segment_ids=list(segment_ids),
                added=added,
                already_live=total - added,
                manifest_version=manifest.version,
                attempts=attempt,
            ),
        )
        return AddResult(
            added, total - added, segment_ids[0], manifest.version, attempt, segment_ids
        )

    # --- delete --------------------------------------------------------------------

    def delete(self, face_ids: Sequence[str]) -> DeleteResult:
        """Tombstone the live entries of these faces; unknown/deleted ones are a no-op."""
        ids = list(dict.fromkeys(check_face_id(f) for f in face_ids))
        log = self._log
        for attempt in range(1, self.params.commit_attempts + 1):
            manifest, generation = log.read()
            if manifest is None:
                return DeleteResult(0, len(ids), 0, attempt)
            try:
                hits = log.live(manifest).find(ids, manifest.max_probe)
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
            new = log.successor(manifest, segments=segments)
            if not log.swap(new, generation, attempt, "delete"):
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

    # --- compaction and garbage collection --------------------------------------------

    def compact(self, *, full: bool = False, gc: bool = True) -> CompactResult:
        """Merge segments by size tier (or all, with ``full``) and drop deleted vectors.

        Each merge is its own manifest swap; concurrent deletes to the inputs are
        carried over onto the merged segment, a concurrent compaction of the same
        inputs makes this one abandon its merge and re-plan (see :mod:`.merge`).
        """
        return merge.compact(self._log, self.params, full=full, run_gc=self.gc if gc else None)

    def gc(self, *, grace_s: float | None = None) -> GcResult:
        """Delete segment objects nobody can need any more (see :mod:`.gc`)."""
        grace = self.params.gc_grace_s if grace_s is None else grace_s
        return collect_garbage(self._log, grace_s=grace, attempts=self.params.commit_attempts)

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
