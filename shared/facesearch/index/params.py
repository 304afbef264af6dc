"""Index settings: where the index lives and its tuning knobs (``FACESEARCH_INDEX_*``).

Names follow USearch; the HNSW paper's names are in brackets. The defaults were
picked from ``python -m tests.bench.index`` runs (docs/index.md) and are declared
here only: writers and readers take an :class:`IndexParams`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from facesearch.index.manifest import Dtype
from facesearch.section import SettingsSection


class IndexParams(SettingsSection):
    """How the segmented index is built, searched, compacted and refreshed."""

    env_prefix = "index_"

    url: str | None = Field(
        default=None,
        description="Where the index lives: gs://bucket/prefix, file:///dir or a path. "
        "None = <data_dir>/index.",
    )
    cache_dir: Path | None = Field(
        default=None, description="Local segment cache (mmapped). None = <data_dir>/index-cache."
    )
    dtype: Dtype = Field(
        default="f16", description="Scalar type of stored vectors (new indexes only)."
    )
    connectivity: int = Field(default=32, ge=2, le=256, description="[M] graph degree")
    expansion_add: int = Field(default=128, ge=1, description="[efConstruction]")
    expansion_search: int = Field(default=64, ge=1, description="[ef] at query time")
    build_threads: int = Field(default=0, ge=0, description="0 = all cores")
    segment_max_vectors: int = Field(
        default=1_000_000,
        ge=1,
        description="Largest segment an add builds or compaction merges into; a larger add "
        "becomes several segments, built in parallel.",
    )
    build_workers: int = Field(
        default=0,
        ge=0,
        description="Processes building the segments of one large add at once; "
        "0 = one per core, 1 = in the calling process.",
    )
    search_threads: int = Field(default=1, ge=0, description="per query batch; 0 = all")
    fanout_threads: int = Field(
        default=0,
        ge=0,
        description="Segments of one query searched in parallel; 0 = one thread per core, "
        "1 = one after another.",
    )
    compact_min_segment: int = Field(
        default=1024, ge=1, description="Segments below this many live vectors form tier 0."
    )
    compact_fanout: int = Field(
        default=4, ge=2, description="Merge a size tier once it holds this many segments."
    )
    compact_tombstone_ratio: float = Field(
        default=0.2, gt=0.0, le=1.0, description="Rewrite a segment once this share is deleted."
    )
    auto_compact: bool = Field(default=True, description="Writers compact after commits.")
    gc_grace_s: float = Field(
        default=600.0, ge=0.0, description="Age before unreferenced segment objects are deleted."
    )
    commit_attempts: int = Field(default=32, ge=1, description="Manifest swap retries.")
    refresh_interval_s: float = Field(
        default=30.0, ge=0.0, description="Query service: re-read the index manifest this often."
    )

    def location(self, data_dir: Path) -> str:
        """The index URL, defaulting to ``<data_dir>/index`` in embedded mode."""
        return self.url or str(data_dir / "index")

    def cache_path(self, data_dir: Path) -> Path:
        """The local segment cache, defaulting to ``<data_dir>/index-cache``."""
        return self.cache_dir or data_dir / "index-cache"
