"""Property: any sequence of add / duplicate add / delete / compact matches a brute-force model.

The model is a dict face_id -> vector with the documented semantics (adding a
live face is a no-op, deleting removes, re-adding after a delete takes the new
vector, compaction changes nothing observable). After every step the index's
live set must equal the model's, every face must be live exactly once, and
exact-mode search must agree with a numpy brute force over the model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader
from facesearch.index.writer import IndexWriter
from facesearch.storage.local.blob import LocalBlobStore

DIMS = 8
UNIVERSE = 12  # few ids, so duplicates, re-adds and deletes of absent ids are common
K = 4

face = st.integers(0, UNIVERSE - 1).map(lambda i: f"face-{i}")
op = st.one_of(
    st.tuples(st.just("add"), st.lists(face, min_size=1, max_size=6)),
    st.tuples(st.just("delete"), st.lists(face, min_size=1, max_size=4)),
    st.tuples(st.just("compact"), st.booleans()),
)


def brute_force(model: dict[str, np.ndarray], query: np.ndarray, k: int) -> list[tuple[str, float]]:
    names = sorted(model)
    matrix = np.array([model[n] for n in names], dtype=np.float64)
    sims = matrix @ query.astype(np.float64)
    order = np.argsort(-sims, kind="stable")[:k]
    return [(names[i], float(sims[i])) for i in order]


def assert_search_agrees(
    reader: IndexReader, model: dict[str, np.ndarray], rng: np.random.Generator
) -> None:
    queries = rng.standard_normal((3, DIMS)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    got = reader.search(queries, k=K, exact=True)
    assert reader.search_one(queries[0], k=K, exact=True) == got[0]  # single-query fast path
    for query, hits in zip(queries, got, strict=True):
        want = brute_force(model, query, K) if model else []
        assert len(hits) == len(want)
        got_sims = np.array([h.similarity for h in hits])
        want_sims = np.array([s for _, s in want])
        np.testing.assert_allclose(got_sims, want_sims, atol=1e-5)
        for i, (hit, (name, sim)) in enumerate(zip(hits, want, strict=True)):
            # ids must match except where two neighbours are tied within float error
            tied = any(abs(sim - other) < 1e-5 for j, (_, other) in enumerate(want) if j != i)
            assert hit.face_id == name or tied


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ops=st.lists(op, min_size=1, max_size=12), seed=st.integers(0, 2**32 - 1), auto=st.booleans()
)
def test_random_operation_sequences_match_brute_force(
    ops: list[tuple[str, object]], seed: int, auto: bool
) -> None:
    rng = np.random.default_rng(seed)
    params = IndexParams(
        dtype="f32",
        build_threads=1,
        compact_min_segment=3,
        compact_fanout=2,
        compact_tombstone_ratio=0.34,
        auto_compact=auto,
    )
    model: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = LocalBlobStore(root / "bucket")
        writer = IndexWriter(store, cache_dir=root / "wcache", params=params)
        reader = IndexReader(store, cache_dir=root / "rcache", params=params)
        for kind, arg in ops:
            if kind == "add":
                batch: list[str] = arg  # type: ignore[assignment]
                vectors = rng.standard_normal((len(batch), DIMS)).astype(np.float32)
                writer.add(batch, vectors, "m@1")
                for name, vector in zip(batch, vectors, strict=True):
                    if name not in model:  # live faces keep their vector; first in batch wins
                        model[name] = vector / np.linalg.norm(vector)
            elif kind == "delete":
                writer.delete(arg)  # type: ignore[arg-type]
                for name in arg:  # type: ignore[attr-defined]
                    model.pop(name, None)
            else:
                writer.compact(full=bool(arg))
            reader.refresh()
            live = reader.face_ids()
            assert len(live) == len(set(live)), f"duplicate live faces: {sorted(live)}"
            assert set(live) == set(model)
            assert reader.live_count == len(model)
            assert_search_agrees(reader, model, rng)
        # an independent reader with a cold cache sees the same thing
        cold = IndexReader(store, cache_dir=root / "cold", params=params)
        assert sorted(cold.face_ids()) == sorted(model)
