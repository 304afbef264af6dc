"""One query batch over many segments: per-segment candidates, fan-out, top-k merge.

Each open segment answers with its own candidates (live ones only) and the
lists are merged by distance. Two things keep this cheap:

* **Tombstones are filtered on candidates, with adaptive over-fetch.** A
  segment with ``t`` deleted vectors could need up to ``k + t`` candidates
  before ``k`` live ones remain (if every deleted vector ranked first), and
  asking usearch for ``k + t`` results raises its search breadth to that many,
  so a segment with a thousand deletions would make every query a thousand
  wide. Instead each segment is first asked for ``k`` plus a few more than the
  deleted share predicts; only rows that came back full but with fewer than
  ``k`` live hits are asked again, doubling, up to ``k + t``. The guarantee is
  unchanged (k live hits whenever the segment holds them), the common case
  costs one narrow search.
* **Segments are searched in parallel.** usearch releases the GIL while it
  searches, so a thread per segment overlaps their searches on several cores
  (``fanout_threads``); with one segment, or one thread, nothing is handed off.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from facesearch.errors import IndexCorrupt
from facesearch.index.ids import SegmentIds
from facesearch.index.live import sorted_contains
from facesearch.index.manifest import SegmentEntry
from facesearch.native import Index, search_many

#: First over-fetch = this many times the expected number of deleted hits among k, at least
#: MIN_OVERFETCH (a miss only costs one more, wider search of the short rows).
OVERFETCH_FACTOR = 2.0
MIN_OVERFETCH = 4


@dataclass(frozen=True)
class OpenSegment:
    """A segment as the reader holds it: usearch index, sidecar, sorted tombstones."""

    entry: SegmentEntry
    index: Index
    ids: SegmentIds
    tombstones: np.ndarray


@dataclass(frozen=True)
class Candidates:
    """One segment's answer: distances (inf where no live hit) and sidecar positions."""

    distances: np.ndarray
    positions: np.ndarray


def first_request(k: int, deleted: int, size: int) -> int:
    """How many results to ask a segment for first (see the module docstring)."""
    ceiling = min(size, k + deleted)
    if deleted == 0:
        return min(size, k)
    expected_dead = k * deleted / max(1, size - deleted)
    extra = max(MIN_OVERFETCH, math.ceil(OVERFETCH_FACTOR * expected_dead))
    return min(ceiling, k + extra)


def segment_candidates(
    seg: OpenSegment, queries: np.ndarray, k: int, *, exact: bool, threads: int
) -> Candidates:
    """Up to ``k`` live candidates per query row from one segment (best first, inf-padded)."""
    size, deleted = seg.entry.count, len(seg.tombstones)
    ceiling = min(size, k + deleted)
    want = first_request(k, deleted, size)
    while True:
        keys, dist, found = search_many(seg.index, queries, want, exact=exact, threads=threads)
        valid = np.arange(want)[None, :] < np.asarray(found).reshape(-1, 1)
        if deleted:
            valid &= ~sorted_contains(seg.tombstones, keys)
        if want >= ceiling:
            break
        short = (valid.sum(axis=1) < k) & (np.asarray(found) >= want)
        if not short.any():
            break
        want = min(ceiling, want * 2)
    positions = seg.ids.positions(keys)
    if np.any(valid & (positions < 0)):
        raise IndexCorrupt(f"segment {seg.entry.id}: a key is missing from its sidecar")
    return Candidates(np.where(valid, dist, np.inf), positions)


def search_segments(
    segments: Sequence[OpenSegment],
    queries: np.ndarray,
    k: int,
    *,
    exact: bool,
    threads: int,
    fanout_threads: int,
) -> list[list[tuple[str, float]]]:
    """Top-``k`` (face_id, distance) per query row over all segments, best first."""
    n = len(queries)
    if not segments:
        return [[] for _ in range(n)]

    def one(seg: OpenSegment) -> Candidates:
        return segment_candidates(seg, queries, k, exact=exact, threads=threads)

    workers = fanout_workers(fanout_threads, len(segments))
    if workers > 1:
        parts = list(_pool(workers).map(one, segments))
    else:
        parts = [one(seg) for seg in segments]
    return merge_topk(parts, segments, k)


def merge_topk(
    parts: Sequence[Candidates], segments: Sequence[OpenSegment], k: int
) -> list[list[tuple[str, float]]]:
    """Merge per-segment candidate lists by distance (stable: earlier segments win ties)."""
    dist = np.concatenate([p.distances for p in parts], axis=1)
    pos = np.concatenate([p.positions for p in parts], axis=1)
    owner = np.concatenate(
        [np.full(p.distances.shape, i, dtype=np.int32) for i, p in enumerate(parts)], axis=1
    )
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    results: list[list[tuple[str, float]]] = []
    for row in range(len(dist)):
        cols = order[row]
        row_dist = dist[row, cols]
        live = int(np.count_nonzero(np.isfinite(row_dist)))
        cols, row_dist = cols[:live], row_dist[:live].tolist()
        owners, positions = owner[row, cols], pos[row, cols]
        face_ids: list[str] = [""] * live
        for number in np.unique(owners).tolist():
            mine = np.flatnonzero(owners == number)
            for slot, face_id in zip(
                mine.tolist(), segments[number].ids.face_ids(positions[mine]), strict=True
            ):
                face_ids[slot] = face_id
        results.append(list(zip(face_ids, row_dist, strict=True)))
    return results


def fanout_workers(setting: int, segments: int) -> int:
    """Threads to search ``segments`` segments with: ``setting`` (0 = one per core), capped."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wanted = setting or cores or 1
    return max(1, min(wanted, segments))


@functools.lru_cache(maxsize=8)
def _pool(workers: int) -> ThreadPoolExecutor:
    """One long-lived pool per size and process (threads are reused across queries)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="index-fanout")
