"""The blob-store port: named immutable-ish objects with generation preconditions.

The index (and later the crops bucket) needs only this much of Cloud Storage:
whole-object reads and writes, a per-object *generation* that changes on every
write, and a compare-and-swap write (``if_generation_match``). That is enough to
build a lock-free, multi-writer index on top: the generation of ``manifest.json``
is the serialisation point. Keeping the port this small is what lets a local
directory give exactly the same guarantees (see :mod:`.local.blob`).
"""

from __future__ import annotations

import builtins
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

from facesearch.errors import TransientError

T = TypeVar("T")

#: ``if_generation_match=MUST_NOT_EXIST`` creates an object only if it is absent.
MUST_NOT_EXIST = 0


@dataclass(frozen=True)
class BlobInfo:
    """One listed object. ``updated`` is seconds since the epoch (object creation time)."""

    name: str
    generation: int
    size: int
    updated: float


@runtime_checkable
class BlobStore(Protocol):
    """A flat namespace of objects under one root (a bucket prefix or a directory).

    Names are relative, ``/``-separated, never start with ``/`` or ``.``.
    Every write returns the object's new generation (a positive int, unique per
    write of that name). ``if_generation_match``: ``None`` = unconditional,
    ``0`` = the object must not exist, ``g`` = the current generation must be ``g``;
    a failed precondition raises :class:`facesearch.errors.PreconditionFailed`.
    Missing objects raise :class:`facesearch.errors.NotFound` on read.
    Transient backend failures surface as :class:`facesearch.errors.TransientError`
    after the adapter's own bounded retries.
    """

    @property
    def url(self) -> str:
        """Where this store points (``gs://bucket/prefix`` or ``file:///dir``), for logs."""
        ...

    def read(self, name: str) -> tuple[bytes, int]:
        """The whole object and the generation those bytes belong to."""
        ...

    def download_to_file(self, name: str, dest: Path) -> int:
        """Stream a (large) object into ``dest``; returns the generation downloaded."""
        ...

    def stat(self, name: str) -> int | None:
        """Current generation, or ``None`` if absent. One metadata request."""
        ...

    def open_read(self, name: str, *, generation: int | None = None) -> BinaryIO:
        """A seekable reader of one version of a (large) object that fetches only what
        is read (ranged requests on GCS): a video chunk reads its own stretch of a
        4 GB upload. ``generation`` pins the version (None: the current one, pinned at
        open). NotFound when absent; a backend failure while reading raises
        TransientError. Close it after use."""
        ...

    def write(self, name: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        """Replace the object atomically; returns the new generation."""
        ...

    def write_file(self, name: str, src: Path, *, if_generation_match: int | None = None) -> int:
        """Like :meth:`write` for a (large) local file, without reading it into memory."""
        ...

    def list(self, prefix: str = "") -> list[BlobInfo]:
        """Objects whose name starts with ``prefix``, sorted by name."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object; deleting a missing object is not an error (idempotent GC)."""
        ...

    def list_versions(self, prefix: str = "") -> builtins.list[BlobInfo]:
        """Every stored version under ``prefix``, noncurrent ones of a versioned bucket
        included (an erase must find those too), sorted by name then generation."""
        ...

    def delete_version(self, name: str, generation: int) -> None:
        """Remove that one version for good (missing: not an error)."""
        ...


def check_name(name: str) -> str:
    """Reject names that could escape the store root or hit reserved entries."""
    if not name or name.startswith(("/", ".")) or "\\" in name or "\x00" in name:
        raise ValueError(f"invalid blob name {name!r}")
    if any(part in ("", ".", "..") or part.startswith(".") for part in name.split("/")):
        raise ValueError(f"invalid blob name {name!r}")
    return name


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter for transient backend errors.

    Bounded on purpose: inside a Pub/Sub push handler it is better to give the
    message back (TransientError -> 503 -> redelivery) than to hang the request.
    """

    attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0

    def run(
        self,
        fn: Callable[[], T],
        *,
        transient: Callable[[BaseException], bool],
        what: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """Call ``fn``; retry while ``transient(exc)``; finally raise TransientError."""
        last: BaseException | None = None
        for attempt in range(max(1, self.attempts)):
            try:
                return fn()
            except Exception as exc:
                if not transient(exc):
                    raise
                last = exc
                if attempt + 1 < self.attempts:
                    cap = min(self.max_delay_s, self.base_delay_s * (2**attempt))
                    sleep(random.uniform(0, cap))
        raise TransientError(
            f"{what}: backend unavailable after {self.attempts} attempts: {last!r}"
        ) from last
