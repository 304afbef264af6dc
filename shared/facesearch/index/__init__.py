"""Segmented USearch index stored in a blob store (GCS bucket or local directory).

Writers (:class:`IndexWriter`) append immutable segments and swap
``manifest.json`` under a generation precondition; readers (:class:`IndexReader`)
memory-map cached segments and merge per-segment top-k. See docs/index.md.
"""

from facesearch.index.manifest import Manifest, ModelRef, SegmentEntry
from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader, SearchHit
from facesearch.index.writer import (
    AddResult,
    CompactResult,
    DeleteResult,
    GcResult,
    IndexWriter,
    read_manifest,
)

__all__ = [
    "AddResult",
    "CompactResult",
    "DeleteResult",
    "GcResult",
    "IndexParams",
    "IndexReader",
    "IndexWriter",
    "Manifest",
    "ModelRef",
    "SearchHit",
    "SegmentEntry",
    "read_manifest",
]
