"""Segmented USearch index stored in a blob store (GCS bucket or local directory).

Writers (:class:`~facesearch.index.writer.IndexWriter`) append immutable segments
and swap ``manifest.json`` under a generation precondition; readers
(:class:`~facesearch.index.reader.IndexReader`) memory-map cached segments and
merge per-segment top-k. Import from the modules: this ``__init__`` stays empty so
that the settings can import :mod:`.params` without loading usearch. See
docs/index.md.
"""
