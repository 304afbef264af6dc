"""Past one index: a shard map, routing of faces to shards, fan-out search and top-k merge.

One index (one manifest, one set of query instances holding every segment in
memory) is bounded by an instance's memory: at 128-d f16 a face costs ~0.55 KB
of index (vector + graph + sidecar), so ~20M faces fill a 16 GiB Cloud Run
instance. Beyond that the collection is split into *shards*: independent
indexes (each its own prefix with its own manifest, writers and query
service), and a coordinator that asks every shard and merges. docs/scale.md
has the design; this module is the part every component shares.

* :class:`ShardMap`: a versioned list of shards, stored as JSON next to the
  shards (swapped by generation precondition, like the manifest).
* Routing by **weighted rendezvous hashing**: a face belongs to the shard with
  the highest ``weight / -ln(h(face_id, shard_id))``. Adding a shard moves only
  the faces that now score highest on the new shard (about ``1/(N+1)`` of them,
  never between two old shards); removing one moves only its own faces.
* :func:`fanout_search`: one request per shard in parallel, each for ``k``
  results. Every shard returns its own exact-or-approximate top-``k``, so the
  global top-``k`` is contained in their union and the merge is exact given
  the shards' answers. A shard that fails or misses the deadline is reported in
  ``missing`` (the caller decides between a partial answer and an error); a
  face seen in two shards (mid-rebalance) is returned once, at its best score.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from facesearch.errors import NotFound
from facesearch.index.reader import SearchHit
from facesearch.storage.blob import BlobStore

SHARD_MAP_NAME = "shardmap.json"


class ShardSpec(BaseModel):
    """One shard: where its index lives and which service answers for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    index_url: str = Field(min_length=1)
    endpoint: str | None = None
    #: relative share of new faces (a bigger instance can take a bigger shard)
    weight: float = Field(default=1.0, gt=0.0)


class ShardMap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=1, ge=1)
    shards: tuple[ShardSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ShardMap:
        ids = [s.id for s in self.shards]
        if len(ids) != len(set(ids)):
            raise ValueError("shard ids repeat")
        return self

    def shard_of(self, face_id: str) -> ShardSpec:
        """The shard that owns ``face_id`` (weighted rendezvous hashing)."""
        return max(self.shards, key=lambda s: _score(face_id, s))

    def shard(self, shard_id: str) -> ShardSpec:
        for spec in self.shards:
            if spec.id == shard_id:
                return spec
        raise KeyError(shard_id)

    def moves(self, new: ShardMap, face_ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """(face_id, from shard, to shard) for every face that ``new`` places elsewhere."""
        out = []
        for face_id in face_ids:
            before, after = self.shard_of(face_id).id, new.shard_of(face_id).id
            if before != after:
                out.append((face_id, before, after))
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ShardMap:
        return cls.model_validate_json(data)


def read_shard_map(store: BlobStore) -> tuple[ShardMap | None, int]:
    """The collection's shard map and its generation; ``(None, 0)`` when not sharded."""
    try:
        data, generation = store.read(SHARD_MAP_NAME)
    except NotFound:
        return None, 0
    return ShardMap.from_bytes(data), generation


def write_shard_map(store: BlobStore, new: ShardMap, generation: int) -> int:
    """Swap in ``new`` if the map is still at ``generation`` (PreconditionFailed otherwise).

    Versions only go up, so a coordinator that cached an older map can tell.
    """
    current, _ = read_shard_map(store)
    if current is not None and new.version <= current.version:
        raise ValueError(f"shard map version {new.version} is not above {current.version}")
    return store.write(SHARD_MAP_NAME, new.to_bytes(), if_generation_match=generation)


def _score(face_id: str, shard: ShardSpec) -> float:
    digest = hashlib.blake2b(
        f"{shard.id}\x00{face_id}".encode(), digest_size=8, person=b"facesearch-shrd"
    ).digest()
    unit = (int.from_bytes(digest, "little") + 0.5) / 2.0**64  # uniform in (0, 1)
    return shard.weight / -math.log(unit)


class ShardSearch(Protocol):
    """Ask one shard: top-``k`` hits per query row, within ``timeout_s``."""

    def __call__(
        self, shard: ShardSpec, queries: np.ndarray, k: int, timeout_s: float
    ) -> list[list[SearchHit]]: ...


@dataclass(frozen=True)
class FanoutResult:
    hits: list[list[SearchHit]]
    #: shards that failed or missed the deadline (their faces are absent from ``hits``)
    missing: tuple[str, ...]
    #: per shard: seconds its answer took (failed ones omitted)
    shard_seconds: dict[str, float]

    @property
    def complete(self) -> bool:
        return not self.missing


def fanout_search(
    shard_map: ShardMap,
    queries: np.ndarray,
    k: int,
    search: ShardSearch,
    *,
    timeout_s: float,
    pool: ThreadPoolExecutor,
) -> FanoutResult:
    """Ask every shard at once; merge what arrives before the deadline."""

    def ask(spec: ShardSpec) -> tuple[list[list[SearchHit]], float]:
        t0 = time.perf_counter()
        hits = search(spec, queries, k, timeout_s)
        return hits, time.perf_counter() - t0

    futures = {pool.submit(ask, spec): spec.id for spec in shard_map.shards}
    done, _ = wait(futures, timeout=timeout_s)
    parts: list[list[list[SearchHit]]] = []
    seconds: dict[str, float] = {}
    missing: list[str] = []
    for future, shard_id in futures.items():
        if future in done and future.exception() is None:
            hits, took = future.result()
            parts.append(hits)
            seconds[shard_id] = took
        else:
            future.cancel()
            missing.append(shard_id)
    return FanoutResult(merge_shard_results(parts, len(queries), k), tuple(missing), seconds)


def merge_shard_results(
    parts: Sequence[list[list[SearchHit]]], rows: int, k: int
) -> list[list[SearchHit]]:
    """Per query row: the best ``k`` over all shards, each face once (at its best score)."""
    merged: list[list[SearchHit]] = []
    for row in range(rows):
        best: dict[str, SearchHit] = {}
        for part in parts:
            for hit in part[row]:
                seen = best.get(hit.face_id)
                if seen is None or hit.similarity > seen.similarity:
                    best[hit.face_id] = hit
        ranked = sorted(best.values(), key=lambda h: (-h.similarity, h.face_id))
        merged.append(ranked[:k])
    return merged


def route(shard_map: ShardMap, face_ids: Sequence[str]) -> dict[str, list[int]]:
    """Positions of ``face_ids`` grouped by owning shard id (the indexer's write path)."""
    groups: dict[str, list[int]] = {}
    for position, face_id in enumerate(face_ids):
        groups.setdefault(shard_map.shard_of(face_id).id, []).append(position)
    return groups
