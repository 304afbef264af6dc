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
) -> list[list[SegmentEntry]]:
    """Groups of segments to replace, each by one merged segment (or nothing if all dead).

    ``full`` merges everything into one segment when that changes anything
    (more than one segment, or any tombstone): the offline "optimise" button.
    """
    if full:
        if len(segments) > 1 or any(s.tombstones for s in segments):
            return [list(segments)]
        return []
    groups: list[list[SegmentEntry]] = []
    chosen: set[str] = set()
    for entry in segments:
        if entry.live == 0:  # nothing to merge: the replacement is "no segment"
            groups.append([entry])
            chosen.add(entry.id)
    tiers: dict[int, list[SegmentEntry]] = defaultdict(list)
    for entry in segments:
        if entry.id not in chosen:
            tiers[tier(entry.live, min_segment=min_segment, fanout=fanout)].append(entry)
    for number in sorted(tiers):
        members = tiers[number]
        if len(members) >= fanout:
            groups.append(members)
            chosen.update(s.id for s in members)
    for entry in segments:
        if entry.id not in chosen and len(entry.tombstones) >= tombstone_ratio * entry.count:
            groups.append([entry])
            chosen.add(entry.id)
    return groups
