"""Import native extensions in an order that does not crash the process.

usearch (2.2x) loads its numkong kernel library with ``RTLD_GLOBAL``; that
library exports libstdc++ symbols, and onnxruntime's extension module imported
*afterwards* binds to them and segfaults during import (reproduce with
``python -c "import usearch.index, onnxruntime"``; the reverse order works).
The query and ingest paths need both, so every use of usearch goes through this
module, which loads onnxruntime first when it is installed.
"""

from __future__ import annotations

import contextlib

# An indexer-only image may not ship onnxruntime; then there is nothing to protect.
with contextlib.suppress(ImportError):
    import onnxruntime  # noqa: F401  - must be loaded before usearch, see above

from usearch.compiled import MetricKind, ScalarKind
from usearch.index import Index, Matches

__all__ = ["Index", "Matches", "MetricKind", "ScalarKind"]
