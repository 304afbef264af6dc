"""Size-tiered compaction planning (pure: manifest segments in, merge groups out).

Why size-tiered: the indexer commits one small segment per Pub/Sub batch, and
query cost grows with the number of segments (one HNSW search each). Grouping
segments by the order of magnitude of their live size and merging a tier once
it holds ``fanout`` segments keeps the segment count logarithmic in the index
size while each vector is rewritten only about log_fanout(N) times.

Tier of a segment with ``live`` vectors: 0 below ``min_segment``, otherwise
``1 + floor(log_fanout(live / min_segment))``. Independently, a segment whose
deleted share reaches ``tombstone_ratio`` is rewritten (alone or with its tier)
to drop the dead vectors, and an entirely dead segment is simply dropped.

Why a size cap (``max_segment``): a merge rebuilds an HNSW graph over all its
inputs, so merging four 250k segments costs a full million-vector build in one
process, which undoes a parallel build and grows without bound. Segments at the
cap leave the tiers; a tier merge takes its smallest members up to the cap;
``full`` packs segments into groups no larger than the cap. The segment count
is then about ``live / max_segment`` plus a logarithmic tail, and the reader
fans out over them (see :mod:`.fanout`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from facesearch.index.manifest import SegmentEntry


def tier(live: int, *, min_segment: int, fanout: int) -> int:
    if live < min_segment:
        return 0
    return 1 + math.floor(math.log(live / min_segment, fanout) + 1e-9)


def plan(
    segments: Sequence[SegmentEntry],
    *,
    min_segment: int,
    fanout: int,
    tombstone_ratio: float,
    full: bool = False,
    max_segment: int | None = None,
) -> list[list[SegmentEntry]]:
    """Groups of segments to replace, each by one merged segment (or nothing if all dead).

    ``full`` merges everything (in groups of at most ``max_segment`` live vectors)
    when that changes anything (more than one segment, or any tombstone): the
    offline "optimise" button.
    """
    cap = max_segment or sum(s.live for s in segments) or 1
    if full:
        return [g for g in _pack(segments, cap) if len(g) > 1 or g[0].tombstones]
    groups: list[list[SegmentEntry]] = []
    chosen: set[str] = set()
    for entry in segments:
        if entry.live == 0:  # nothing to merge: the replacement is "no segment"
            groups.append([entry])
            chosen.add(entry.id)
    tiers: dict[int, list[SegmentEntry]] = defaultdict(list)
    for entry in segments:
        if entry.id not in chosen and entry.live < cap:
            tiers[tier(entry.live, min_segment=min_segment, fanout=fanout)].append(entry)
    for number in sorted(tiers):
        members = tiers[number]
        if len(members) >= fanout:
            group = _smallest_within(members, cap)
            if len(group) > 1:
                groups.append(group)
                chosen.update(s.id for s in group)
    for entry in segments:
        if entry.id not in chosen and len(entry.tombstones) >= tombstone_ratio * entry.count:
            groups.append([entry])
            chosen.add(entry.id)
    return groups


def _smallest_within(members: list[SegmentEntry], cap: int) -> list[SegmentEntry]:
    """The smallest members whose live vectors add up to at most ``cap`` (manifest order)."""
    total = 0
    taken: set[str] = set()
    for entry in sorted(members, key=lambda s: s.live):
        if total + entry.live > cap:
            break
        total += entry.live
        taken.add(entry.id)
    return [s for s in members if s.id in taken]


def _pack(segments: Sequence[SegmentEntry], cap: int) -> list[list[SegmentEntry]]:
    """Consecutive groups of at most ``cap`` live vectors (a bigger segment stands alone)."""
    groups: list[list[SegmentEntry]] = []
    current: list[SegmentEntry] = []
    total = 0
    for entry in segments:
        if current and total + entry.live > cap:
            groups.append(current)
            current, total = [], 0
        current.append(entry)
        total += entry.live
    if current:
        groups.append(current)
    return groups
