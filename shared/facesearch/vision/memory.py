"""Keep the C heap from holding on to freed image buffers (glibc only).

Why: the pipeline allocates and frees many multi-megabyte numpy buffers per photo
(decoded pixels, the normalised float copy, pyramid levels, crops). glibc serves large
allocations with ``mmap`` and returns them on ``free``, but it raises that threshold
to the size of every mmapped block freed ("dynamic mmap threshold"), after which
buffers of up to ~32 MB come from the heap, fragment it, and are never given back.
Measured on the vision bench: peak RSS 468 MB → 282 MB for the same work, with a
fixed 1 MiB threshold (setting it also turns the dynamic adjustment off).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

_M_TRIM_THRESHOLD = -1  # malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 20
_done = threading.Event()


def limit_heap_growth() -> bool:
    """Fix glibc's mmap and trim thresholds once per process; False where not glibc."""
    if _done.is_set():
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    ok = bool(mallopt(_M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD_BYTES)) and ok
    if ok:
        _done.set()
    return ok
