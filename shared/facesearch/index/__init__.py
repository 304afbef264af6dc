"""Segmented USearch index stored in a blob store (GCS bucket or local directory).

Writers (:class:`IndexWriter`) append immutable segments and swap
``manifest.json`` under a generation precondition; readers (:class:`IndexReader`)
memory-map cached segments and merge per-segment top-k. See docs/index.md.
Exports load lazily (:mod:`facesearch.lazy`): the settings import
:mod:`.params` without loading usearch.
"""

from typing import TYPE_CHECKING

from facesearch.lazy import lazy_exports

if TYPE_CHECKING:
    from facesearch.index.commit import read_manifest
    from facesearch.index.gc import GcResult
    from facesearch.index.manifest import Manifest, ModelRef, SegmentEntry
    from facesearch.index.merge import CompactResult
    from facesearch.index.params import IndexParams
    from facesearch.index.reader import IndexReader, SearchHit
    from facesearch.index.writer import AddResult, DeleteResult, IndexWriter

_EXPORTS = {
    "Manifest": "facesearch.index.manifest",
    "ModelRef": "facesearch.index.manifest",
    "SegmentEntry": "facesearch.index.manifest",
    "IndexParams": "facesearch.index.params",
    "IndexReader": "facesearch.index.reader",
    "SearchHit": "facesearch.index.reader",
    "AddResult": "facesearch.index.writer",
    "CompactResult": "facesearch.index.merge",
    "DeleteResult": "facesearch.index.writer",
    "GcResult": "facesearch.index.gc",
    "IndexWriter": "facesearch.index.writer",
    "read_manifest": "facesearch.index.commit",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
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
