"""Fixed-window request counters per key: share-page searches per link and per client.

In memory and per instance: a guest hammering one Cloud Run instance is refused there;
across instances the limit multiplies by the instance count (``max_instances`` bounds it),
which is why the per-client limit is small. Bounded: old windows are dropped.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, per_window: int, window_s: float = 60.0, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window number, count)
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Count one request for ``key``: None if allowed, else seconds until it would be."""
        now = self._clock()
        window = int(now // self.window_s)
        with self._lock:
            if len(self._counts) > 50_000:
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
            seen_window, count = self._counts.get(key, (window, 0))
            if seen_window != window:
                count = 0
            if count >= self.per_window:
                return max(1.0, math.ceil((window + 1) * self.window_s - now))
            self._counts[key] = (window, count + 1)
        return None
