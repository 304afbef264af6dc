"""Index at scale: parallel segment builds, fan-out search, tombstone over-fetch, size cap, kernel.

Invariants (hypothesis where they are about any input):

* a large add split into parts (in-process or by worker processes) leaves the same
  live set and the same exact-search answers as one big segment;
* fan-out over many segments (sequential or threaded), with tombstones, equals a
  brute-force search over the live set on exact data;
* a segment whose deleted vectors all rank first still yields k live hits, and the
  common case asks usearch for a narrow list;
* compaction never builds a segment above ``segment_max_vectors``;
* segments written with usearch's cos kernel (earlier versions) open with the ip
  kernel and answer the same.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facesearch.errors import PreconditionFailed
from facesearch.index import build as build_mod
from facesearch.index import compaction, fanout
from facesearch.index import segment as segment_mod
from facesearch.index.commit import read_manifest
from facesearch.index.manifest import MANIFEST_NAME, SegmentEntry
from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader
from facesearch.index.writer import IndexWriter
from facesearch.native import MetricKind
from facesearch.storage.local.blob import LocalBlobStore

MODEL = "test-embedder@1"
DIMS = 12


def unit(n: int, seed: int, dims: int = DIMS) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(
    live: dict[str, np.ndarray], queries: np.ndarray, k: int
) -> list[list[tuple[str, float]]]:
    names = sorted(live)
    if not names:
        return [[] for _ in queries]
    matrix = np.stack([live[n] for n in names]).astype(np.float64)
    out = []
    for q in queries.astype(np.float64):
        sims = matrix @ q
        order = np.argsort(-sims, kind="stable")[:k]
        out.append([(names[i], float(sims[i])) for i in order])
    return out


def assert_same_answers(
    got: list[list[Any]], want: list[list[tuple[str, float]]], atol: float = 1e-5
) -> None:
    for hits, expected in zip(got, want, strict=True):
        assert len(hits) == len(expected)
        np.testing.assert_allclose(
            [h.similarity for h in hits], [s for _, s in expected], atol=atol
        )
        for i, (hit, (name, sim)) in enumerate(zip(hits, expected, strict=True)):
            tied = any(abs(sim - o) < 1e-5 for j, (_, o) in enumerate(expected) if j != i)
            assert hit.face_id == name or tied


def open_pair(root: Path, params: IndexParams) -> tuple[IndexWriter, Callable[[], IndexReader]]:
    store = LocalBlobStore(root / "bucket")
    writer = IndexWriter(store, cache_dir=root / "wcache", params=params)
    counter = iter(range(1000))

    def reader() -> IndexReader:
        return IndexReader(store, cache_dir=root / f"rcache{next(counter)}", params=params)

    return writer, reader


# --- parts -------------------------------------------------------------------------------


@given(count=st.integers(0, 5000), max_vectors=st.integers(1, 2000))
def test_parts_cover_the_batch_in_order_and_respect_the_cap(count: int, max_vectors: int) -> None:
    parts = build_mod.plan_parts(count, max_vectors)
    assert [i for p in parts for i in range(p.start, p.stop)] == list(range(count))
    assert all(0 < p.stop - p.start <= max_vectors for p in parts)
    sizes = {p.stop - p.start for p in parts}
    assert not sizes or max(sizes) - min(sizes) <= 1  # near-equal: no runt segment


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 90),
    max_vectors=st.integers(1, 40),
    dup=st.integers(0, 10),
    seed=st.integers(0, 2**31),
)
def test_split_add_leaves_the_same_live_set_and_answers_as_one_segment(
    n: int, max_vectors: int, dup: int, seed: int
) -> None:
    vectors = unit(n, seed)
    ids = [f"face-{i}" for i in range(n)] + [f"face-{i}" for i in range(min(dup, n))]
    batch = np.concatenate([vectors, unit(min(dup, n), seed + 1)])  # repeats keep the first
    queries = unit(3, seed + 2)
    answers = []
    for cap in (max_vectors, 10_000):
        params = IndexParams(
            dtype="f32",
            build_threads=1,
            build_workers=1,
            segment_max_vectors=cap,
            auto_compact=False,
        )
        with tempfile.TemporaryDirectory() as tmp:
            writer, reader = open_pair(Path(tmp), params)
            result = writer.add(ids, batch, MODEL)
            assert (result.added, result.already_live) == (n, 0)  # in-batch repeats: dropped
            manifest, _ = writer.read_manifest()
            assert manifest is not None
            assert len(manifest.segments) == len(result.segment_ids) == -(-n // cap)
            assert all(s.count <= cap for s in manifest.segments)
            r = reader()
            assert sorted(r.face_ids()) == sorted(f"face-{i}" for i in range(n))
            answers.append(r.search(queries, 5, exact=True))
            assert writer.add(ids, batch, MODEL).added == 0  # redelivery: a no-op
    live = {f"face-{i}": vectors[i] for i in range(n)}
    for got in answers:
        assert_same_answers(got, brute(live, queries, 5))


@pytest.mark.parametrize("dtype", ["f32", "f16"])  # f16 parts travel to workers as f16
def test_worker_processes_build_the_parts(tmp_path: Path, dtype: str) -> None:
    """build_workers > 1 really runs parts in other interpreters, with the same outcome."""
    params = IndexParams(
        dtype=dtype,  # type: ignore[arg-type]
        build_threads=1,
        build_workers=2,
        segment_max_vectors=25,
        auto_compact=False,
    )
    writer, reader = open_pair(tmp_path, params)
    vectors = unit(70, 3)
    spawned: list[Any] = []
    real = build_mod._run_worker

    def counting(job: Any) -> Any:
        spawned.append(job.rows)
        return real(job)

    build_mod._run_worker = counting  # type: ignore[assignment]
    try:
        result = writer.add([f"f{i}" for i in range(70)], vectors, MODEL)
    finally:
        build_mod._run_worker = real  # type: ignore[assignment]
    assert sorted((s.start, s.stop) for s in spawned) == [(0, 23), (23, 47), (47, 70)]
    assert len(result.segment_ids) == 3
    queries = unit(4, 9)
    live = {f"f{i}": vectors[i] for i in range(70)}
    got = reader().search(queries, 6, exact=True)
    assert_same_answers(got, brute(live, queries, 6), atol=1e-5 if dtype == "f32" else 2e-3)
    leftovers = [p.name for p in (tmp_path / "wcache").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # shared vector file, job and result files are cleaned up


def test_a_failing_worker_is_reported_not_swallowed(tmp_path: Path) -> None:
    job = build_mod._PartJob(
        tmp_path / "missing.npy",
        slice(0, 2),
        np.arange(2, dtype=np.uint64),
        ["a", "b"],
        DIMS,
        "f32",
        IndexParams(),
        tmp_path,
    )
    with pytest.raises(RuntimeError, match="segment build worker exited"):
        build_mod._run_worker(job)


def test_split_add_survives_a_lost_commit_response(tmp_path: Path) -> None:
    """All parts land in one manifest swap; a retry finds them and does not add twice."""

    class LoseFirstSwap(LocalBlobStore):
        lost = False

        def write(self, name: str, data: bytes, *, if_generation_match: int | None = None) -> int:
            gen = super().write(name, data, if_generation_match=if_generation_match)
            if name == MANIFEST_NAME and not self.lost:
                self.lost = True
                raise PreconditionFailed("simulated lost response")
            return gen

    store = LoseFirstSwap(tmp_path / "bucket")
    params = IndexParams(dtype="f32", build_workers=1, segment_max_vectors=10, auto_compact=False)
    writer = IndexWriter(store, cache_dir=tmp_path / "w", params=params)
    result = writer.add([f"f{i}" for i in range(35)], unit(35, 1), MODEL)
    assert result.added == 35 and result.attempts == 2 and len(result.segment_ids) == 4
    manifest, _ = read_manifest(store)
    assert manifest is not None and manifest.version == 1 and manifest.live_count == 35


# --- fan-out -------------------------------------------------------------------------------

op = st.one_of(
    st.tuples(st.just("add"), st.lists(st.integers(0, 40), min_size=1, max_size=15)),
    st.tuples(st.just("delete"), st.lists(st.integers(0, 40), min_size=1, max_size=10)),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=8), seed=st.integers(0, 2**31), k=st.integers(1, 8))
def test_fanout_over_segments_with_tombstones_equals_brute_force(
    ops: list[tuple[str, list[int]]], seed: int, k: int
) -> None:
    rng = np.random.default_rng(seed)
    live: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        params = IndexParams(dtype="f32", build_threads=1, auto_compact=False)
        writer, reader = open_pair(Path(tmp), params)
        for kind, numbers in ops:
            names = [f"face-{i}" for i in numbers]
            if kind == "add":
                vectors = rng.standard_normal((len(names), DIMS)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                writer.add(names, vectors, MODEL)
                for name, vector in zip(names, vectors, strict=True):
                    live.setdefault(name, vector)
            else:
                writer.delete(names)
                for name in names:
                    live.pop(name, None)
        queries = unit(3, seed % 1000)
        want = brute(live, queries, k)
        answers = []
        for threads in (1, 3):
            r = reader()
            r.params = params.model_copy(update={"fanout_threads": threads})
            got = r.search(queries, k, exact=True)
            assert_same_answers(got, want)
            answers.append(got)
        assert answers[0] == answers[1]  # threaded fan-out merges exactly like sequential


def test_deleted_nearest_neighbours_do_not_hide_live_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delete the 30 nearest faces of a query: still 5 live hits, found by widening."""
    params = IndexParams(dtype="f32", build_threads=1, auto_compact=False)
    writer, reader = open_pair(tmp_path, params)
    vectors = unit(400, 5)
    names = [f"f{i}" for i in range(400)]
    writer.add(names, vectors, MODEL)
    query = vectors[0]
    nearest = np.argsort(-(vectors @ query))[:30]
    writer.delete([names[i] for i in nearest])
    live = {n: v for i, (n, v) in enumerate(zip(names, vectors, strict=True)) if i not in nearest}
    widths: list[int] = []
    real = fanout.search_many

    def recording(index: Any, queries: np.ndarray, count: int, **kw: Any) -> Any:
        widths.append(count)
        return real(index, queries, count, **kw)

    monkeypatch.setattr(fanout, "search_many", recording)
    r = reader()
    assert_same_answers([r.search_one(query, 5, exact=True)], brute(live, query[None, :], 5))
    assert widths[0] < 30 and widths[-1] >= 35  # started narrow, widened only as needed
    widths.clear()
    far = -query  # its neighbours are all live: one narrow request, not k + 30
    assert_same_answers([r.search_one(far, 5, exact=True)], brute(live, far[None, :], 5))
    assert widths == [fanout.first_request(5, 30, 400)] and widths[0] < 35


@given(k=st.integers(1, 100), deleted=st.integers(0, 10_000), size=st.integers(1, 1_000_000))
def test_first_request_is_within_bounds(k: int, deleted: int, size: int) -> None:
    deleted = min(deleted, size)
    first = fanout.first_request(k, deleted, size)
    assert min(size, k) <= first <= min(size, k + deleted)


def test_fanout_workers_setting() -> None:
    assert fanout.fanout_workers(1, 5) == 1
    assert fanout.fanout_workers(8, 3) == 3
    assert 1 <= fanout.fanout_workers(0, 4) <= 4
    assert fanout.fanout_workers(0, 1) == 1


# --- compaction cap --------------------------------------------------------------------------


def entry(sid: str, count: int, dead: int = 0) -> SegmentEntry:
    return SegmentEntry(
        id=f"seg-{sid}-xxxx",
        count=count,
        index_sha256="0" * 64,
        index_bytes=1,
        ids_sha256="0" * 64,
        ids_bytes=1,
        tombstones=tuple(f"{key:016x}" for key in range(dead)),  # type: ignore[arg-type]
        created_at=0.0,
    )


@given(
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=12),
    cap=st.integers(500, 5000),
    full=st.booleans(),
)
def test_no_merge_exceeds_the_segment_cap(sizes: list[int], cap: int, full: bool) -> None:
    segments = [entry(str(i), n) for i, n in enumerate(sizes)]
    groups = compaction.plan(
        segments, min_segment=64, fanout=2, tombstone_ratio=0.2, full=full, max_segment=cap
    )
    for group in groups:
        assert len(group) == 1 or sum(s.live for s in group) <= cap
    ids = [s.id for g in groups for s in g]
    assert len(ids) == len(set(ids))  # a segment is in at most one group


def test_full_segments_leave_the_tiers() -> None:
    big = [entry(str(i), 1000) for i in range(4)]  # four parts of a parallel build
    plan = compaction.plan(big, min_segment=10, fanout=4, tombstone_ratio=0.2, max_segment=1000)
    assert plan == []  # without the cap these four would be merged into one 4000-vector build
    plan = compaction.plan(big, min_segment=10, fanout=4, tombstone_ratio=0.2)
    assert len(plan) == 1 and len(plan[0]) == 4


def test_tombstone_rewrite_still_applies_to_full_segments() -> None:
    segments = [entry("a", 1000, dead=300), entry("b", 1000)]
    plan = compaction.plan(
        segments, min_segment=10, fanout=2, tombstone_ratio=0.2, max_segment=1000
    )
    assert [[s.id for s in g] for g in plan] == [[segments[0].id]]


def test_full_compaction_packs_up_to_the_cap(tmp_path: Path) -> None:
    params = IndexParams(
        dtype="f32",
        build_threads=1,
        segment_max_vectors=30,
        compact_min_segment=4,
        auto_compact=False,
    )
    writer, reader = open_pair(tmp_path, params)
    for n in range(6):
        writer.add([f"s{n}-{i}" for i in range(10)], unit(10, n), MODEL)
    writer.delete(["s0-1", "s3-3"])
    writer.compact(full=True)
    manifest, _ = writer.read_manifest()
    assert manifest is not None
    assert sorted(s.count for s in manifest.segments) == [29, 29]
    assert manifest.tombstone_count == 0 and manifest.live_count == 58
    assert len(reader().face_ids()) == 58


# --- kernel -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["f16", "f32", "i8"])
def test_kernel_per_dtype_and_old_cos_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str
) -> None:
    params = IndexParams(dtype=dtype, build_threads=1, auto_compact=False)  # type: ignore[arg-type]
    vectors = unit(300, 11, dims=32)
    names = [f"f{i}" for i in range(300)]
    queries = unit(4, 12, dims=32)
    live = dict(zip(names, vectors, strict=True))
    tolerance = {"f32": 1e-5, "f16": 2e-3, "i8": 5e-2}[dtype]
    # an index written by an earlier version: every segment built with the cos kernel
    monkeypatch.setattr(segment_mod, "kernel_metric", lambda _dtype: MetricKind.Cos)
    writer, reader = open_pair(tmp_path, params)
    writer.add(names[:150], vectors[:150], MODEL)
    monkeypatch.undo()
    writer.add(names[150:], vectors[150:], MODEL)  # and one written now
    r = reader()
    expected = MetricKind.Cos if dtype == "i8" else MetricKind.IP
    assert segment_mod.kernel_metric(dtype) == expected  # type: ignore[arg-type]
    assert len(r._snapshot.segments) == 2
    for seg in r._snapshot.segments:  # which kernel runs: only cos ignores the query's length
        one = float(seg.index.search(queries[0], 1, exact=True).distances[0])
        two = float(seg.index.search(2 * queries[0], 1, exact=True).distances[0])
        if expected == MetricKind.IP:
            assert two == pytest.approx(1 - 2 * (1 - one), abs=tolerance)
        else:
            assert two == pytest.approx(one, abs=tolerance)
    got = r.search(queries, 5, exact=True)
    want = brute(live, queries, 5)
    for hits, expect in zip(got, want, strict=True):
        np.testing.assert_allclose(
            [h.similarity for h in hits], [s for _, s in expect], atol=tolerance
        )
    if dtype != "i8":  # the float kernels rank exactly like brute force
        assert_same_answers(got, want, atol=tolerance)
