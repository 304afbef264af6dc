"""Index settings: where the index lives and its tuning knobs (``FACESEARCH_INDEX_*``).

Names follow USearch; the HNSW paper's names are in brackets. The defaults were
picked from ``python -m tests.bench.index`` runs (docs/index.md) and are declared
here only: writers and readers take an :class:`IndexParams`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, NonNegativeFloat, NonNegativeInt

from facesearch.index.manifest import Dtype
from facesearch.section import Count, SettingsSection


class IndexParams(SettingsSection):
    """How the segmented index is built, searched, compacted and refreshed."""

    env_prefix = "index_"

    url: str | None = None
    """Where the index lives: gs://bucket/prefix, file:///dir or a path. None = <data_dir>/index."""
    cache_dir: Path | None = None
    """Local segment cache (mmapped). None = <data_dir>/index-cache."""
    dtype: Dtype = "f16"
    """Scalar type of stored vectors (new indexes only)."""
    connectivity: int = Field(default=32, ge=2, le=256)
    """[M] graph degree"""
    expansion_add: Count = 128
    """[efConstruction]"""
    expansion_search: Count = 64
    """[ef] at query time"""
    build_threads: NonNegativeInt = 0
    """0 = all cores"""
    segment_max_vectors: Count = 1_000_000
    """Largest segment an add builds or compaction merges into; a larger add becomes several
    segments, built in parallel."""
    build_workers: NonNegativeInt = 0
    """Processes building the segments of one large add at once; 0 = one per core, 1 = in the
    calling process."""
    search_threads: NonNegativeInt = 1
    """per query batch; 0 = all"""
    fanout_threads: NonNegativeInt = 0
    """Segments of one query searched in parallel; 0 = one thread per core, 1 = one after another.
    """
    compact_min_segment: Count = 1024
    """Segments below this many live vectors form tier 0."""
    compact_fanout: int = Field(default=4, ge=2)
    """Merge a size tier once it holds this many segments."""
    compact_tombstone_ratio: float = Field(default=0.2, gt=0.0, le=1.0)
    """Rewrite a segment once this share is deleted."""
    auto_compact: bool = True
    """Writers compact after commits."""
    gc_grace_s: NonNegativeFloat = 600.0
    """Age before unreferenced segment objects are deleted."""
    commit_attempts: Count = 32
    """Manifest swap retries."""
    refresh_interval_s: NonNegativeFloat = 30.0
    """Query service: re-read the index manifest this often."""

    def location(self, data_dir: Path) -> str:
        """The index URL, defaulting to ``<data_dir>/index`` in embedded mode."""
        return self.url or str(data_dir / "index")

    def cache_path(self, data_dir: Path) -> Path:
        """The local segment cache, defaulting to ``<data_dir>/index-cache``."""
        return self.cache_dir or data_dir / "index-cache"
