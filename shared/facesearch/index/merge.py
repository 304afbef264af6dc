"""Compaction, executed: merge planned segment groups by manifest swaps.

:mod:`.compaction` decides *what* to merge (pure); this module does it. Each
merge copies the live vectors of its inputs (in their stored dtype, so f16/i8
values are never re-quantised), builds one segment, uploads it and swaps it in
for the inputs in one manifest commit. Deletes that raced with the merge are
carried over onto the merged segment; a concurrent compaction of the same
inputs makes this one abandon its merge and re-plan. Replaced segments are
listed as retired, so readers holding the previous manifest can still fetch
them until GC (:mod:`.gc`) removes them after the grace period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facesearch.errors import NotFound
from facesearch.index import compaction
from facesearch.index.commit import ManifestLog
from facesearch.index.gc import GcResult
from facesearch.index.manifest import Manifest, RetiredSegment, SegmentEntry
from facesearch.index.params import IndexParams
from facesearch.index.segment import BuiltSegment, build_segment, stack_vectors, upload_segment
from facesearch.logs import log_fields

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactResult:
    merges: int
    segments_before: int
    segments_after: int
    vectors_dropped: int
    gc: GcResult | None


def compact(
    log: ManifestLog,
    params: IndexParams,
    *,
    full: bool = False,
    run_gc: Callable[[], GcResult] | None = None,
) -> CompactResult:
    """Merge segments by size tier (or all, with ``full``) and drop deleted vectors.

    Each merge is its own manifest swap; ``run_gc`` runs once afterwards if
    anything was merged.
    """
    manifest, _ = log.read()
    before = len(manifest.segments) if manifest else 0
    merges = dropped = 0
    for _ in range(params.commit_attempts if full else 0):
        # every pack of a full plan once; re-planned only if a racing compaction took one
        manifest, _ = log.read()
        if manifest is None:
            break
        abandoned = False
        for group in _plan(manifest, params, full=True):
            outcome = merge_group(log, params, manifest, group)
            abandoned |= outcome is None
            merges += outcome is not None
            dropped += outcome or 0
        if not abandoned:
            break
    for _ in range(params.commit_attempts):  # then ordinary tiering
        manifest, _ = log.read()
        if manifest is None:
            break
        groups = _plan(manifest, params, full=False)
        if not groups:
            break
        outcome = merge_group(log, params, manifest, groups[0])
        if outcome is not None:
            merges += 1
            dropped += outcome
    manifest, _ = log.read()
    after = len(manifest.segments) if manifest else 0
    gc_result = run_gc() if run_gc is not None and merges else None
    return CompactResult(merges, before, after, dropped, gc_result)


def _plan(manifest: Manifest, params: IndexParams, *, full: bool) -> list[list[SegmentEntry]]:
    return compaction.plan(
        manifest.segments,
        min_segment=params.compact_min_segment,
        fanout=params.compact_fanout,
        tombstone_ratio=params.compact_tombstone_ratio,
        full=full,
        max_segment=params.segment_max_vectors,
    )


def merge_group(
    log: ManifestLog, params: IndexParams, planned: Manifest, group: list[SegmentEntry]
) -> int | None:
    """Replace ``group`` by one segment; returns vectors dropped, None if abandoned."""
    keys_parts: list[np.ndarray] = []
    vector_parts: list[np.ndarray] = []
    face_ids: list[str] = []
    try:
        for entry in group:
            ids = log.fetch(entry, log.sidecar)
            live_mask = ~np.isin(ids.keys, np.asarray(entry.tombstones, dtype=np.uint64))
            live_keys = np.asarray(ids.keys[live_mask], dtype=np.uint64)
            if len(live_keys) == 0:
                continue
            index = log.fetch(
                entry,
                lambda e: log.cache.open_index(
                    e, dims=planned.dims, dtype=planned.dtype, view=True
                ),
            )
            keys_parts.append(live_keys)
            vector_parts.append(stack_vectors(index.get(live_keys)))
            face_ids.extend(ids.face_ids(np.flatnonzero(live_mask)))
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
            params=params,
            workdir=log.cache.directory,
        )
        upload_segment(log.store, built)
    try:
        dropped = _commit_merge(log, params, group, built)
        if dropped is not None and built is not None:
            log.cache.adopt(built)
            built = None
        return dropped
    finally:
        if built is not None:
            log.discard([built])


def _commit_merge(
    log: ManifestLog, params: IndexParams, group: list[SegmentEntry], built: BuiltSegment | None
) -> int | None:
    group_ids = {e.id for e in group}
    planned_tombs = {e.id: set(e.tombstones) for e in group}
    for attempt in range(1, params.commit_attempts + 1):
        manifest, generation = log.read()
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
            built.entry = built.entry.model_copy(
                update={"tombstones": tuple(sorted(late)), "created_at": log.clock()}
            )
            segments.append(built.entry)
        now = log.clock()
        retired = (
            *manifest.retired,
            *(RetiredSegment(id=sid, retired_at=now) for sid in sorted(group_ids)),
        )
        new = log.successor(manifest, segments=tuple(segments), retired=retired)
        if not log.swap(new, generation, attempt, "compact"):
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
        return dropped
    return None
