"""Read-only inspection of an index: stats for humans and a full integrity check.

Used by ``facesearch index stats|verify``; kept apart from the CLI so the checks
are plain functions returning data (testable, reusable by a health endpoint).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError, NotFound
from facesearch.index.commit import read_manifest
from facesearch.index.live import sorted_contains
from facesearch.index.manifest import Manifest, segment_id_of
from facesearch.index.segment import SegmentCache, stack_vectors
from facesearch.native import Index
from facesearch.storage.blob import BlobStore

#: How many of its own vectors each segment is asked to find in ``verify --deep``.
SELF_SEARCH_SAMPLE = 200


@dataclass(frozen=True)
class SegmentStats:
    id: str
    vectors: int
    deleted: int
    live: int
    index_bytes: int
    ids_bytes: int
    created_at: float


@dataclass(frozen=True)
class IndexStats:
    url: str
    manifest: Manifest | None
    generation: int
    segments: list[SegmentStats]
    stored_bytes: int
    retired_objects: int
    orphan_objects: int
    orphan_bytes: int


def collect_stats(store: BlobStore) -> IndexStats:
    """Manifest summary plus what the bucket holds beyond it (one list call)."""
    manifest, generation = read_manifest(store)
    segments = [
        SegmentStats(
            s.id, s.count, len(s.tombstones), s.live, s.index_bytes, s.ids_bytes, s.created_at
        )
        for s in (manifest.segments if manifest else ())
    ]
    live_ids = {s.id for s in manifest.segments} if manifest else set()
    retired_ids = {r.id for r in manifest.retired} if manifest else set()
    stored = retired = orphans = orphan_bytes = 0
    for info in store.list("segments/"):
        sid = segment_id_of(info.name)
        if sid in live_ids:
            stored += info.size
        elif sid in retired_ids:
            retired += 1
        elif sid is not None:
            orphans += 1
            orphan_bytes += info.size
    return IndexStats(
        store.url, manifest, generation, segments, stored, retired, orphans, orphan_bytes
    )


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, ok, detail))


def verify(store: BlobStore, *, deep: bool = False, workdir: Path | None = None) -> VerifyReport:
    """Re-download and re-check everything the manifest references.

    Uses a fresh scratch cache, so it checks the bucket, not a local copy.
    ``deep`` also asks every segment to find a sample of its own vectors.
    """
    report = VerifyReport()
    try:
        manifest, _ = read_manifest(store)
    except FaceSearchError as exc:
        report.add("manifest", False, exc.message)
        return report
    if manifest is None:
        report.add("manifest", True, "no manifest: the index is empty")
        return report
    report.add(
        "manifest",
        True,
        f"v{manifest.version}, {len(manifest.segments)} segments, model {manifest.model}",
    )
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        cache = SegmentCache(store, Path(scratch))
        owners: Counter[str] = Counter()
        live_keys: Counter[int] = Counter()
        for entry in manifest.segments:
            name = f"segment {entry.id}"
            started = time.perf_counter()
            try:
                ids = cache.ids(entry)
                index = cache.open_index(entry, dims=manifest.dims, dtype=manifest.dtype, view=True)
            except (FaceSearchError, NotFound) as exc:
                report.add(name, False, exc.message)
                continue
            tombs = np.asarray(entry.tombstones, dtype=np.uint64)
            if len(tombs) and not sorted_contains(ids.keys, tombs).all():
                report.add(name, False, "tombstones name keys the segment does not hold")
                continue
            live_mask = ~sorted_contains(tombs, ids.keys)
            for position in np.flatnonzero(live_mask).tolist():
                owners[ids.face_id(position)] += 1
            live_keys.update(ids.keys[live_mask].tolist())
            detail = (
                f"{entry.count} vectors, {len(entry.tombstones)} deleted, sha256 ok "
                f"({time.perf_counter() - started:.2f}s)"
            )
            if deep:
                recall = _self_recall(index, np.asarray(ids.keys[live_mask], dtype=np.uint64))
                ok = recall >= 0.99
                report.add(name, ok, f"{detail}, self-search top-1 {recall:.3f}")
            else:
                report.add(name, True, detail)
            del index
        twice = [face for face, n in owners.items() if n > 1]
        report.add(
            "faces live once",
            not twice,
            f"{len(owners)} live faces" if not twice else f"{len(twice)} live twice: {twice[:5]}",
        )
        clashing = [key for key, n in live_keys.items() if n > 1]
        report.add(
            "keys live once",
            not clashing,
            "ok" if not clashing else f"{len(clashing)} keys live in several segments",
        )
        report.add(
            "live count",
            sum(owners.values()) == manifest.live_count,
            f"manifest says {manifest.live_count}, segments hold {sum(owners.values())}",
        )
    return report


def _self_recall(index: Index, keys: np.ndarray) -> float:
    """Share of sampled vectors whose nearest neighbour is themselves (graph sanity)."""
    if len(keys) == 0:
        return 1.0
    rng = np.random.default_rng(0)
    sample = (
        keys
        if len(keys) <= SELF_SEARCH_SAMPLE
        else rng.choice(keys, SELF_SEARCH_SAMPLE, replace=False)
    )
    vectors = stack_vectors(index.get(sample))
    matches = index.search(vectors, 1)  # stored dtype in, so nothing is re-quantised
    found = np.asarray(matches.keys, dtype=np.uint64).reshape(len(sample), -1)[:, 0]
    return float(np.mean(found == sample))
