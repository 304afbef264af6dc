"""Which face ids are live in one manifest, answered from the segments' sidecars.

A face is live when its key is present in some segment and not tombstoned in
that segment. Invariant kept by every commit: a key (and a face id) is live in
at most one segment. Lookups are binary searches over the memory-mapped sorted
key arrays, vectorised over a batch, so checking a batch of B faces against S
segments costs O(B * S * log n) and no million-entry dict is ever built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facesearch.index.ids import SegmentIds
from facesearch.index.keys import MAX_PROBE, face_key, face_keys
from facesearch.index.manifest import SegmentEntry


def tombstone_array(entry: SegmentEntry) -> np.ndarray:
    return np.asarray(entry.tombstones, dtype=np.uint64)


def sorted_contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Membership by binary search (``sorted_keys`` ascending)."""
    keys = np.asarray(keys, dtype=np.uint64)
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.asarray(sorted_keys[pos] == keys)


@dataclass(frozen=True)
class LiveHit:
    segment_id: str
    key: int


class LiveView:
    """Live-set queries over the segments of one manifest."""

    def __init__(self, segments: Sequence[tuple[SegmentEntry, SegmentIds]]) -> None:
        self._segments = [(entry, ids, tombstone_array(entry)) for entry, ids in segments]

    def locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each key: (segment number or -1, position in that segment's sidecar)."""
        keys = np.asarray(keys, dtype=np.uint64)
        seg = np.full(keys.shape, -1, dtype=np.int64)
        pos = np.full(keys.shape, -1, dtype=np.int64)
        for number, (_, ids, tombs) in enumerate(self._segments):
            found = ids.positions(keys)
            live = (found >= 0) & ~sorted_contains(tombs, keys)
            seg[live] = number
            pos[live] = found[live]
        return seg, pos

    def find(self, face_ids: Sequence[str], max_probe: int) -> list[LiveHit | None]:
        """Where each face id is live, checking every key it could hold."""
        result: list[LiveHit | None] = [None] * len(face_ids)
        for probe in range(max_probe + 1):
            keys = face_keys(list(face_ids), probe)
            seg, pos = self.locate(keys)
            for i in np.flatnonzero(seg >= 0).tolist():
                entry, ids, _ = self._segments[seg[i]]
                if result[i] is None and ids.face_id(int(pos[i])) == face_ids[i]:
                    result[i] = LiveHit(entry.id, int(keys[i]))
        return result

    def assign(self, face_ids: Sequence[str], max_probe: int) -> tuple[np.ndarray, int]:
        """Keys for faces that are *not* live: the first probe not live for another face.

        Returns the keys and the new ``max_probe`` (raised if a collision needed it).
        """
        keys = face_keys(list(face_ids), 0)
        taken_live = self.locate(keys)[0] >= 0
        _, first = np.unique(keys, return_index=True)
        in_batch_dup = np.ones(len(keys), dtype=bool)
        in_batch_dup[first] = False
        conflicts = np.flatnonzero(taken_live | in_batch_dup)
        if len(conflicts) == 0:
            return keys, max_probe
        used = set(keys[~(taken_live | in_batch_dup)].tolist())
        for i in conflicts.tolist():  # rare: a 63-bit hash collision, so a Python loop is fine
            for probe in range(1, MAX_PROBE + 1):
                key = face_key(face_ids[i], probe)
                if key not in used and self.locate(np.array([key], np.uint64))[0][0] < 0:
                    keys[i] = key
                    used.add(key)
                    max_probe = max(max_probe, probe)
                    break
            else:  # pragma: no cover - would need 64 consecutive 63-bit collisions
                raise RuntimeError(f"no free key for face {face_ids[i]!r} after {MAX_PROBE} probes")
        return keys, max_probe
