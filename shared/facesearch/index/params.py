"""Index tuning knobs in one frozen object, built from :class:`facesearch.config.Settings`.

Names follow USearch; the HNSW paper's names are in brackets. The defaults in
config.py were picked from ``python -m tests.bench.index`` runs (docs/index.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facesearch.config import Settings
from facesearch.index.manifest import Dtype
from facesearch.storage.blob import BlobStore, RetryPolicy, blob_store_from_url


@dataclass(frozen=True, kw_only=True)
class IndexParams:
    dtype: Dtype = "f16"
    connectivity: int = 32  # [M]
    expansion_add: int = 128  # [efConstruction]
    expansion_search: int = 64  # [ef]
    build_threads: int = 0
    search_threads: int = 1
    compact_min_segment: int = 1024
    compact_fanout: int = 4
    compact_tombstone_ratio: float = 0.2
    auto_compact: bool = True
    gc_grace_s: float = 600.0
    commit_attempts: int = 32

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexParams:
        return cls(
            dtype=settings.index_dtype,
            connectivity=settings.index_connectivity,
            expansion_add=settings.index_expansion_add,
            expansion_search=settings.index_expansion_search,
            build_threads=settings.index_build_threads,
            search_threads=settings.index_search_threads,
            compact_min_segment=settings.index_compact_min_segment,
            compact_fanout=settings.index_compact_fanout,
            compact_tombstone_ratio=settings.index_compact_tombstone_ratio,
            auto_compact=settings.index_auto_compact,
            gc_grace_s=settings.index_gc_grace_s,
            commit_attempts=settings.index_commit_attempts,
        )


def index_url(settings: Settings) -> str:
    return settings.index_url or str(settings.data_dir / "index")


def cache_dir(settings: Settings) -> Path:
    return settings.index_cache_dir or settings.data_dir / "index-cache"


def store_from_settings(settings: Settings, url: str | None = None) -> BlobStore:
    """The index's blob store, with the retry policy and timeout from settings."""
    return blob_store_from_url(
        url or index_url(settings),
        retry=RetryPolicy(
            attempts=settings.blob_retry_attempts, base_delay_s=settings.blob_retry_base_s
        ),
        timeout_s=settings.blob_timeout_s,
    )
