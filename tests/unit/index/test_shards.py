"""Sharding: routing by rendezvous hashing, fan-out over shards, merge of top-k, failures."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from facesearch.errors import PreconditionFailed
from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader, SearchHit
from facesearch.index.shards import (
    ShardMap,
    ShardSpec,
    fanout_search,
    merge_shard_results,
    read_shard_map,
    route,
    write_shard_map,
)
from facesearch.index.writer import IndexWriter
from facesearch.storage.local.blob import LocalBlobStore

MODEL = "m@1"
DIMS = 8
FACES = [f"face-{i}" for i in range(20_000)]


def shard_map(n: int, **weights: float) -> ShardMap:
    return ShardMap(
        shards=tuple(
            ShardSpec(id=f"s{i}", index_url=f"/x/s{i}", weight=weights.get(f"s{i}", 1.0))
            for i in range(n)
        )
    )


@pytest.fixture(scope="module")
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4)


# --- routing --------------------------------------------------------------------------------


def test_adding_a_shard_moves_only_faces_onto_it_about_one_in_n() -> None:
    four, five = shard_map(4), shard_map(5)
    moves = four.moves(five, FACES)
    assert {to for _, _, to in moves} == {"s4"}  # nothing moves between old shards
    assert 0.17 < len(moves) / len(FACES) < 0.23  # ~1/5
    counts = Counter(five.shard_of(f).id for f in FACES)
    assert all(0.17 < c / len(FACES) < 0.23 for c in counts.values())


def test_removing_a_shard_moves_only_its_own_faces() -> None:
    five = shard_map(5)
    four = ShardMap(shards=five.shards[:4], version=2)
    moves = five.moves(four, FACES)
    assert {frm for _, frm, _ in moves} == {"s4"}
    assert len(moves) == sum(1 for f in FACES if five.shard_of(f).id == "s4")


def test_weights_set_the_share() -> None:
    counts = Counter(shard_map(3, s0=2.0).shard_of(f).id for f in FACES)
    assert 0.45 < counts["s0"] / len(FACES) < 0.55  # 2 / (2 + 1 + 1)


def test_route_groups_positions_by_owner() -> None:
    m = shard_map(3)
    groups = route(m, FACES[:500])
    assert sorted(p for rows in groups.values() for p in rows) == list(range(500))
    assert all(m.shard_of(FACES[p]).id == sid for sid, rows in groups.items() for p in rows)


def test_shard_map_round_trip_and_validation() -> None:
    m = shard_map(3)
    assert ShardMap.from_bytes(m.to_bytes()) == m
    with pytest.raises(ValidationError):
        ShardMap(shards=(ShardSpec(id="a", index_url="x"), ShardSpec(id="a", index_url="y")))
    with pytest.raises(ValidationError):
        ShardMap(shards=())


# --- fan-out and merge ----------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 80),
    shards=st.integers(1, 4),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**31),
)
def test_fanout_merge_equals_a_single_index_search_on_exact_data(
    n: int, shards: int, k: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMS)).astype(np.float32)
    ids = [f"f{i}" for i in range(n)]
    queries = rng.standard_normal((3, DIMS)).astype(np.float32)
    params = IndexParams(dtype="f32", build_threads=1, auto_compact=False)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        m = ShardMap(
            shards=tuple(
                ShardSpec(id=f"s{i}", index_url=str(root / f"s{i}")) for i in range(shards)
            )
        )
        readers: dict[str, IndexReader] = {}
        for spec, rows in route(m, ids).items():
            store = LocalBlobStore(Path(m.shard(spec).index_url))
            IndexWriter(store, cache_dir=root / "w", params=params).add(
                [ids[r] for r in rows], vectors[rows], MODEL
            )
            readers[spec] = IndexReader(store, cache_dir=root / f"r-{spec}", params=params)
        whole = LocalBlobStore(root / "whole")
        IndexWriter(whole, cache_dir=root / "w", params=params).add(ids, vectors, MODEL)
        single = IndexReader(whole, cache_dir=root / "rw", params=params).search(
            queries, k, exact=True
        )

        def ask(spec: ShardSpec, q: np.ndarray, kk: int, timeout_s: float) -> list[list[SearchHit]]:
            reader = readers.get(spec.id)
            return reader.search(q, kk, exact=True) if reader else [[] for _ in q]

        with ThreadPoolExecutor(max_workers=4) as pool:
            result = fanout_search(m, queries, k, ask, timeout_s=30.0, pool=pool)
    assert result.complete
    for got, want in zip(result.hits, single, strict=True):
        assert len(got) == len(want) == min(k, n)
        np.testing.assert_allclose(
            [h.similarity for h in got], [h.similarity for h in want], atol=1e-6
        )
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            tied = any(
                abs(b.similarity - o.similarity) < 1e-6 for j, o in enumerate(want) if j != i
            )
            assert a.face_id == b.face_id or tied


def test_a_failed_and_a_slow_shard_are_reported_missing(pool: ThreadPoolExecutor) -> None:
    m = shard_map(3)

    def ask(spec: ShardSpec, q: np.ndarray, k: int, timeout_s: float) -> list[list[SearchHit]]:
        if spec.id == "s1":
            raise ConnectionError("shard down")
        if spec.id == "s2":
            time.sleep(0.5)
        return [[SearchHit(f"{spec.id}-a", 0.9), SearchHit(f"{spec.id}-b", 0.5)]]

    started = time.perf_counter()
    result = fanout_search(m, np.zeros((1, DIMS), np.float32), 3, ask, timeout_s=0.2, pool=pool)
    assert time.perf_counter() - started < 0.45  # the deadline, not the slow shard, decides
    assert sorted(result.missing) == ["s1", "s2"] and not result.complete
    assert [h.face_id for h in result.hits[0]] == ["s0-a", "s0-b"]
    assert set(result.shard_seconds) == {"s0"}


def test_a_face_in_two_shards_mid_rebalance_is_returned_once_at_its_best() -> None:
    old = [[SearchHit("x", 0.80), SearchHit("y", 0.70)]]
    new = [[SearchHit("x", 0.81), SearchHit("z", 0.60)]]
    merged = merge_shard_results([old, new], rows=1, k=3)
    assert merged == [[SearchHit("x", 0.81), SearchHit("y", 0.70), SearchHit("z", 0.60)]]


def test_shard_map_is_swapped_by_generation_and_versions_only_go_up(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "collection")
    assert read_shard_map(store) == (None, 0)
    first = shard_map(2)
    generation = write_shard_map(store, first, 0)
    assert read_shard_map(store) == (first, generation)
    grown = ShardMap(shards=shard_map(3).shards, version=2)
    with pytest.raises(PreconditionFailed):
        write_shard_map(store, grown, 0)  # a coordinator holding a stale generation loses
    with pytest.raises(ValueError, match="not above"):
        write_shard_map(store, shard_map(3), generation)
    write_shard_map(store, grown, generation)
    assert read_shard_map(store)[0] == grown
