"""Group commit: many concurrent requests, one index commit, each acked after it.

Every push request thread calls :meth:`GroupCommitter.submit` with its item and
blocks. The first thread to find no leader becomes the leader: it waits up to
``window_s`` (or until ``max_weight`` is queued), takes everything queued, runs
``flush`` once for all of it, hands each waiting thread its own result, and
steps down. So a request returns (HTTP 2xx, ack) only after the manifest that
holds its vectors is stored, and a burst of N messages costs one segment and
one manifest swap instead of N — which is what keeps the index from
fragmenting and the manifest from becoming a contention point.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Slot(Generic[T, R]):
    item: T
    weight: int
    done: bool = False
    result: R | None = None
    error: BaseException | None = None
    created: float = field(default_factory=time.monotonic)


class GroupCommitter(Generic[T, R]):
    """``flush(items)`` returns one result, or an exception to raise in that caller, per item."""

    def __init__(
        self,
        flush: Callable[[list[T]], Sequence[R | BaseException]],
        *,
        window_s: float,
        max_weight: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._flush = flush
        self.window_s = window_s
        self.max_weight = max_weight
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[_Slot[T, R]] = []
        self._pending_weight = 0
        self._leader = False
        self.flushes = 0  # how many commits served how many requests (metrics, tests)
        self.items_flushed = 0

    def submit(self, item: T, weight: int = 1) -> R | None:
        """Queue ``item``, wait for the commit that includes it, return its result."""
        slot: _Slot[T, R] = _Slot(item, max(1, weight))
        with self._cond:
            self._pending.append(slot)
            self._pending_weight += slot.weight
            self._cond.notify_all()
            while not slot.done and self._leader:
                self._cond.wait()
            if slot.done:
                return self._outcome(slot)
            self._leader = True
            deadline = self._clock() + self.window_s
            while self._pending_weight < self.max_weight:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch, self._pending, self._pending_weight = self._pending, [], 0
        try:
            try:
                results = list(self._flush([s.item for s in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"flush returned {len(results)} results for {len(batch)}")
            except BaseException as exc:  # the whole commit failed: every caller retries
                results = [exc] * len(batch)
            for s, r in zip(batch, results, strict=True):
                if isinstance(r, BaseException):
                    s.error = r
                else:
                    s.result = r
        finally:
            with self._cond:
                for s in batch:
                    s.done = True
                self.flushes += 1
                self.items_flushed += len(batch)
                self._leader = False
                self._cond.notify_all()
        return self._outcome(slot)

    @staticmethod
    def _outcome(slot: _Slot[T, R]) -> R | None:
        if slot.error is not None:
            raise slot.error
        return slot.result
