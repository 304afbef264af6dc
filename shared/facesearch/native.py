"""Import native extensions in an order that does not crash the process; raw usearch calls.

usearch (2.2x) loads its numkong kernel library with ``RTLD_GLOBAL``; that
library exports libstdc++ symbols, and onnxruntime's extension module imported
*afterwards* binds to them and segfaults during import (reproduce with
``python -c "import usearch.index, onnxruntime"``; the reverse order works).
The query and ingest paths need both, so every use of usearch goes through this
module, which loads onnxruntime first when it is installed.
"""

from __future__ import annotations

import contextlib

import numpy as np

# An indexer-only image may not ship onnxruntime; then there is nothing to protect.
with contextlib.suppress(ImportError):
    import onnxruntime  # noqa: F401  - must be loaded before usearch, see above

from usearch.compiled import MetricKind, ScalarKind
from usearch.index import Index, Matches

__all__ = ["Index", "Matches", "MetricKind", "ScalarKind", "search_many"]


def search_many(
    index: Index, queries: np.ndarray, count: int, *, exact: bool, threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``count`` of each row of ``queries`` (2-D): keys, distances (n, count), found (n,).

    Slots past a row's found count hold garbage. This calls the compiled method
    that ``Index.search`` wraps: the wrapper's assertions, progress plumbing and
    ``Matches`` objects cost ~5-10 us per call, measured against a 0.2-0.5 ms
    query (docs/index.md). ``tests/unit/test_native_imports.py`` checks it
    against the public wrapper, so a usearch release that changes it fails there.
    """
    keys, dist, found, _visited, _computed = index._compiled.search_many(
        queries, count=count, exact=exact, threads=threads, dtype=ScalarKind.Unknown
    )
    return keys, dist, found
