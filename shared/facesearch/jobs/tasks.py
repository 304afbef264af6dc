"""How a job's tasks split the work, and where they keep their checkpoints.

A job runs as N tasks (a Cloud Run Job's ``CLOUD_RUN_TASK_INDEX`` /
``CLOUD_RUN_TASK_COUNT``, or ``--tasks N`` processes locally). Tasks never talk to
each other: each one derives its share from its index alone, so a retried or
re-run task does exactly the same share again.

* Listings (backfill) split by a stable hash of the object name: every task lists,
  each publishes only its names. A listing is cheap (1,000 names a call) next to
  what is done per name, and hashing spreads any prefix evenly.
* Faces (rebuild) split into contiguous face-id ranges (``after < id <= until``):
  face ids start with 32 hex digits of a SHA-256, so equal ranges of that prefix
  hold equal shares, and each task reads only its range from the metadata store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from facesearch.errors import ConfigError, NotFound, PreconditionFailed
from facesearch.storage.blob import BlobStore

R = TypeVar("R")

#: a face id range bound sorts after every id with that 8-hex-digit prefix
_PAST = "~"
_SPACE = 16**8


@dataclass(frozen=True)
class TaskSlot:
    """This task's place in the job: ``index`` of ``count`` (0-based)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"task {self.index} of {self.count}: need 0 <= index < count")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        index: int | None = None,
        count: int | None = None,
    ) -> TaskSlot:
        """Explicit values, else Cloud Run's ``CLOUD_RUN_TASK_INDEX`` / ``_COUNT``, else 0 of 1."""
        env = os.environ if env is None else env
        try:
            found_index = int(env.get("CLOUD_RUN_TASK_INDEX", "0"))
            found_count = int(env.get("CLOUD_RUN_TASK_COUNT", "1"))
        except ValueError as exc:
            raise ConfigError(f"bad CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT: {exc}") from exc
        return cls(found_index if index is None else index, found_count if count is None else count)

    def owns(self, name: str) -> bool:
        """Is this listed name this task's? (stable hash: every task agrees, reruns too)"""
        if self.count == 1:
            return True
        digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    def face_range(self) -> tuple[str | None, str | None]:
        """``(after, until)``: this task's face ids are ``after < id <= until`` (None: open).

        The ranges of tasks 0..count-1 partition every string, hex ids or not.
        """

        def bound(i: int) -> str | None:
            if i <= 0 or i >= self.count:
                return None
            return f"{_SPACE * i // self.count - 1:08x}{_PAST}"

        return bound(self.index), bound(self.index + 1)

    @property
    def label(self) -> str:
        return f"task-{self.index:04d}-of-{self.count:04d}"


def run_in_processes(
    task_main: Callable[[tuple[Any, ...]], R], spec: tuple[Any, ...], count: int
) -> list[R]:
    """Every task of a ``--tasks N`` run on this machine: ``task_main((*spec, index, count))``
    in ``count`` processes. Spawned, not forked: each builds its own backend from the
    picklable ``spec`` (settings and job parameters), so no client or lock crosses over."""
    jobs = [(*spec, index, count) for index in range(count)]
    with multiprocessing.get_context("spawn").Pool(count) as pool:
        return pool.map(task_main, jobs)


class Checkpoints:
    """Small JSON documents of one job run in a blob store (a bucket or a folder).

    A task writes its own document after every unit of work it finished (a batch
    published, a segment uploaded), so a killed task resumes after the last one.
    """

    def __init__(self, store: BlobStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/") + "/"

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            data, _ = self.store.read(self.prefix + name)
        except NotFound:
            return None
        loaded = json.loads(data)
        if not isinstance(loaded, dict):
            raise ConfigError(f"checkpoint {self.prefix}{name} is not a JSON object")
        return loaded

    def write(self, name: str, body: Mapping[str, Any]) -> None:
        self.store.write(self.prefix + name, json.dumps(body, sort_keys=True).encode())

    def create(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``body`` unless the document exists; either way, the one that is stored
        (tasks starting at once agree on one)."""
        with contextlib.suppress(PreconditionFailed):
            self.store.write(
                self.prefix + name, json.dumps(body, sort_keys=True).encode(), if_generation_match=0
            )
        stored = self.read(name)
        if stored is None:
            raise ConfigError(f"checkpoint {self.prefix}{name} vanished after it was written")
        return stored

    def names(self) -> list[str]:
        return sorted(b.name[len(self.prefix) :] for b in self.store.list(self.prefix))
