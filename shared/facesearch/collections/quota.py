"""Requests per second per collection: a token bucket per collection, per instance.

Each collection's ``requests_per_s`` (its settings) bounds how fast its signed
calls are served by one query instance; a collection over its rate gets 429 with
``Retry-After`` and no other collection notices. Per instance on purpose: no
shared counter on the request path; the deployment-wide rate is at most the
per-instance rate times the instance count (Cloud Run ``max_instances``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from facesearch.errors import QuotaExceeded

#: a collection may burst this many seconds' worth of requests
BURST_S = 2.0


class RequestQuota:
    def __init__(
        self,
        rate_for: Callable[[str], float | None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate_for = rate_for
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # collection -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, collection_id: str) -> None:
        """Spend one request of ``collection_id``'s rate, or raise QuotaExceeded."""
        rate = self._rate_for(collection_id)
        if rate is None:
            return
        capacity = max(1.0, rate * BURST_S)
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(collection_id, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[collection_id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise QuotaExceeded(
                    f"collection {collection_id} allows {rate:g} requests/s; retry in {wait} s",
                    retry_after_s=wait,
                )
            self._buckets[collection_id] = (tokens - 1.0, now)
