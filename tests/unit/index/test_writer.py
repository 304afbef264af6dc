"""Writer/reader behaviour on the local blob store: idempotence, deletes, races, GC, bad state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facesearch.errors import (
    IndexCorrupt,
    InvalidEmbedding,
    ModelMismatch,
    PreconditionFailed,
)
from facesearch.index import keys as keys_mod
from facesearch.index import live as live_mod
from facesearch.index.manifest import MANIFEST_NAME, Manifest
from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader
from facesearch.index.writer import IndexWriter, read_manifest
from facesearch.storage.blob import BlobInfo, BlobStore
from facesearch.storage.local.blob import LocalBlobStore

MODEL = "test-embedder@1"
DIMS = 16
PARAMS = IndexParams(
    dtype="f32", build_threads=1, compact_min_segment=8, compact_fanout=3, auto_compact=False
)


def vecs(n: int, seed: int = 0, dims: int = DIMS) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


class Hooked:
    """A blob store that runs a callback before chosen manifest swaps (deterministic races)."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.before_swap: list[Callable[[], object]] = []
        self.lose_response = 0  # next N manifest swaps land, then report 412
        self.lose_upload_response = 0  # same for segment uploads
        self.calls: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.inner.url

    def _count(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1

    def read(self, name: str) -> tuple[bytes, int]:
        self._count("read")
        return self.inner.read(name)

    def download_to_file(self, name: str, dest: Path) -> int:
        self._count("download")
        return self.inner.download_to_file(name, dest)

    def stat(self, name: str) -> int | None:
        self._count("stat")
        return self.inner.stat(name)

    def write(self, name: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        self._count("write")
        if name == MANIFEST_NAME and self.before_swap:
            self.before_swap.pop(0)()
        gen = self.inner.write(name, data, if_generation_match=if_generation_match)
        if name == MANIFEST_NAME and self.lose_response:
            self.lose_response -= 1
            raise PreconditionFailed("simulated: the write landed but the response was lost")
        return gen

    def write_file(self, name: str, src: Path, *, if_generation_match: int | None = None) -> int:
        self._count("write")
        gen = self.inner.write_file(name, src, if_generation_match=if_generation_match)
        if self.lose_upload_response:
            self.lose_upload_response -= 1
            raise PreconditionFailed("simulated: a retried upload finds its own first attempt")
        return gen

    def list(self, prefix: str = "") -> list[BlobInfo]:
        self._count("list")
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        self._count("delete")
        self.inner.delete(name)


WriterFactory = Callable[..., IndexWriter]
ReaderFactory = Callable[..., IndexReader]


@pytest.fixture
def store(tmp_path: Path) -> Hooked:
    return Hooked(LocalBlobStore(tmp_path / "bucket"))


@pytest.fixture
def make_writer(tmp_path: Path, store: Hooked) -> Callable[..., IndexWriter]:
    counter = iter(range(1000))

    def make(params: IndexParams = PARAMS, **kw: Any) -> IndexWriter:
        return IndexWriter(
            store,
            cache_dir=tmp_path / f"wcache{next(counter)}",
            params=params,
            **kw,
        )

    return make


@pytest.fixture
def make_reader(tmp_path: Path, store: Hooked) -> Callable[..., IndexReader]:
    counter = iter(range(1000))

    def make(**kw: Any) -> IndexReader:
        return IndexReader(
            store,
            cache_dir=tmp_path / f"rcache{next(counter)}",
            params=PARAMS,
            **kw,
        )

    return make


def live_ids(reader: IndexReader) -> list[str]:
    reader.refresh()
    return sorted(reader.face_ids())


def referenced_objects(store: BlobStore) -> set[str]:
    manifest, _ = read_manifest(store)
    assert manifest is not None
    return {n for s in manifest.segments for n in (s.index_name, s.ids_name)}


# --- basics ------------------------------------------------------------------------------


def test_add_search_roundtrip(make_writer: WriterFactory, make_reader: ReaderFactory) -> None:
    writer = make_writer()
    data = vecs(30)
    result = writer.add(ids("f", 30), data, MODEL)
    assert (result.added, result.already_live) == (30, 0)
    reader = make_reader()
    hits = reader.search(data[:5] * 3.0, k=3, exact=True)  # scale: vectors are normalised
    assert [h[0].face_id for h in hits] == ids("f", 5)
    assert all(abs(h[0].similarity - 1.0) < 1e-5 for h in hits)
    assert all(h[0].similarity >= h[1].similarity >= h[2].similarity for h in hits)


def test_empty_index(make_reader: ReaderFactory) -> None:
    reader = make_reader()
    assert reader.manifest is None and reader.live_count == 0
    assert reader.search(vecs(2), k=5) == [[], []]


def test_redelivered_add_is_a_noop_across_segments(
    make_writer: WriterFactory, make_reader: ReaderFactory
) -> None:
    writer = make_writer()
    writer.add(ids("a", 10), vecs(10, 1), MODEL)
    writer.add(ids("b", 10), vecs(10, 2), MODEL)
    again = writer.add(ids("a", 10)[3:] + ids("b", 10)[:4] + ["c0"], vecs(12, 3), MODEL)
    assert (again.added, again.already_live) == (1, 11)
    # the redelivered vectors did not replace the originals
    reader = make_reader()
    top = reader.search_one(vecs(10, 1)[5], k=1, exact=True)[0]
    assert top.face_id == "a5" and top.similarity > 0.9999
    assert live_ids(reader) == sorted([*ids("a", 10), *ids("b", 10), "c0"])


def test_duplicate_ids_within_a_batch_keep_the_first(
    make_writer: WriterFactory, make_reader: ReaderFactory
) -> None:
    writer = make_writer()
    data = vecs(3)
    result = writer.add(["x", "y", "x"], data, MODEL)
    assert result.added == 2
    hit = make_reader().search_one(data[0], k=1, exact=True)[0]
    assert hit.face_id == "x" and hit.similarity > 0.9999


def test_delete_then_readd_is_live_even_after_compaction(
    make_writer: WriterFactory, make_reader: ReaderFactory
) -> None:
    writer = make_writer()
    first, second = vecs(5, 1), vecs(5, 2)
    writer.add(ids("f", 5), first, MODEL)
    assert writer.delete(["f1", "f2", "missing"]).deleted == 2
    assert writer.delete(["f1"]).deleted == 0  # idempotent
    writer.add(["f1"], second[:1], MODEL)  # re-add with a new vector, same key
    reader = make_reader()
    assert live_ids(reader) == ["f0", "f1", "f3", "f4"]
    for full in (False, True):
        writer.compact(full=full)
        assert live_ids(reader) == ["f0", "f1", "f3", "f4"]
        hit = reader.search_one(second[0], k=1, exact=True)[0]
        assert hit.face_id == "f1" and hit.similarity > 0.9999
        assert "f2" not in {h.face_id for h in reader.search_one(first[2], k=5, exact=True)}
    manifest, _ = writer.read_manifest()
    assert manifest is not None and len(manifest.segments) == 1
    assert manifest.tombstone_count == 0 and manifest.live_count == 4


def test_tombstones_do_not_hide_live_results(
    make_writer: WriterFactory, make_reader: ReaderFactory
) -> None:
    """k live hits come back even when every nearest vector is deleted."""
    writer = make_writer()
    base = vecs(1)[0]
    near = base + 0.01 * vecs(8, 5)  # 8 near-duplicates of the query
    far = vecs(20, 6)
    writer.add(ids("near", 8) + ids("far", 20), np.vstack([near, far]), MODEL)
    writer.delete(ids("near", 8)[:7])
    for exact in (True, False):
        hits = make_reader().search_one(base, k=5, exact=exact)
        assert len(hits) == 5
        assert hits[0].face_id == "near7"
        assert not {h.face_id for h in hits} & set(ids("near", 8)[:7])


def test_size_tiered_auto_compaction_bounds_segments(
    make_writer: WriterFactory, make_reader: ReaderFactory
) -> None:
    params = IndexParams(
        dtype="f32", build_threads=1, compact_min_segment=8, compact_fanout=3, auto_compact=True
    )
    writer = make_writer(params)
    for batch in range(20):
        writer.add(ids(f"b{batch}-", 4), vecs(4, batch), MODEL)
    manifest, _ = writer.read_manifest()
    assert manifest is not None and manifest.live_count == 80
    # tiers: <8, 8-23, 24-71, 72-215 -> at most (fanout-1) per tier
    assert len(manifest.segments) <= 2 * 4
    assert len(live_ids(make_reader())) == 80


def test_dtype_i8_and_f16_roundtrip_and_compaction(
    make_writer: WriterFactory, make_reader: ReaderFactory, tmp_path: Path
) -> None:
    for dtype in ("f16", "i8"):
        store = LocalBlobStore(tmp_path / f"b-{dtype}")
        params = IndexParams(dtype=dtype, build_threads=1, auto_compact=False)
        writer = IndexWriter(store, cache_dir=tmp_path / f"c-{dtype}", params=params)
        data = vecs(40, 9)
        writer.add(ids("f", 20), data[:20], MODEL)
        writer.add(ids("f", 40)[20:], data[20:], MODEL)
        reader = IndexReader(store, cache_dir=tmp_path / f"r-{dtype}", params=params)
        before = [h[0] for h in reader.search(data, k=1, exact=True)]
        writer.compact(full=True)
        reader.refresh()
        after = [h[0] for h in reader.search(data, k=1, exact=True)]
        assert [h.face_id for h in before] == ids("f", 40) == [h.face_id for h in after]
        # stored vectors are copied, not re-quantised: compaction changes no similarity
        assert [h.similarity for h in before] == [h.similarity for h in after]
        assert min(h.similarity for h in after) > (0.999 if dtype == "f16" else 0.99)


# --- validation ---------------------------------------------------------------------------


def test_model_and_dims_are_enforced(
    make_writer: WriterFactory, make_reader: ReaderFactory
) -> None:
    writer = make_writer()
    writer.add(["a"], vecs(1), MODEL)
    with pytest.raises(ModelMismatch, match="test-embedder@1"):
        writer.add(["b"], vecs(1), "other-model@1")
    with pytest.raises(ModelMismatch, match="16-d"):
        writer.add(["b"], vecs(1, dims=8), MODEL)
    with pytest.raises(ModelMismatch):
        make_reader(expected_model="test-embedder@2")
    reader = make_reader(expected_model=MODEL)
    with pytest.raises(InvalidEmbedding, match="16-d"):
        reader.search(vecs(1, dims=12))
    for bad in (np.zeros((1, DIMS)), np.full((1, DIMS), np.nan)):
        with pytest.raises(InvalidEmbedding):
            writer.add(["c"], bad, MODEL)
    with pytest.raises(ValueError):
        writer.add(["c", "d"], vecs(1), MODEL)
    with pytest.raises(ValueError):
        writer.add([""], vecs(1), MODEL)


# --- bad state ------------------------------------------------------------------------------


@pytest.fixture
def built(make_writer: WriterFactory, store: Hooked) -> Manifest:
    make_writer().add(ids("f", 20), vecs(20), MODEL)
    manifest, _ = read_manifest(store)
    assert manifest is not None
    return manifest


@pytest.mark.parametrize("part", ["index", "ids"])
def test_truncated_segment_is_a_typed_error(
    built: Manifest, store: Hooked, make_reader: ReaderFactory, part: str
) -> None:
    name = built.segments[0].index_name if part == "index" else built.segments[0].ids_name
    data, _ = store.read(name)
    store.write(name, data[: len(data) // 2])
    with pytest.raises(IndexCorrupt, match="bytes, manifest says"):
        make_reader()


def test_same_size_tampered_segment_fails_sha(
    built: Manifest, store: Hooked, make_reader: ReaderFactory
) -> None:
    name = built.segments[0].index_name
    data = bytearray(store.read(name)[0])
    data[-10] ^= 0xFF
    store.write(name, bytes(data))
    with pytest.raises(IndexCorrupt, match="sha256"):
        make_reader()


def test_missing_segment_is_a_typed_error(
    built: Manifest, store: Hooked, make_reader: ReaderFactory, make_writer: WriterFactory
) -> None:
    store.delete(built.segments[0].ids_name)
    with pytest.raises(IndexCorrupt, match="missing"):
        make_reader()
    with pytest.raises(IndexCorrupt, match="missing"):
        make_writer().add(["new"], vecs(1), MODEL)


def test_damaged_local_cache_is_refetched(
    built: Manifest, store: Hooked, make_reader: ReaderFactory, tmp_path: Path
) -> None:
    reader = make_reader()
    cached = next(reader.cache.directory.glob("*.usearch"))
    cached.write_bytes(cached.read_bytes()[:100])
    fresh = IndexReader(store, cache_dir=reader.cache.directory, params=PARAMS)
    assert len(fresh.face_ids()) == 20


def test_tampered_manifest(built: Manifest, store: Hooked, make_reader: ReaderFactory) -> None:
    raw = json.loads(store.read(MANIFEST_NAME)[0])
    raw["segments"][0]["count"] = 19
    store.write(MANIFEST_NAME, json.dumps(raw).encode())
    with pytest.raises(IndexCorrupt, match="checksum"):
        make_reader()
    store.write(MANIFEST_NAME, b'{"format": 1, "dims": ')
    with pytest.raises(IndexCorrupt, match="JSON"):
        make_reader()


def test_manifest_inconsistent_with_segment(
    built: Manifest, store: Hooked, make_reader: ReaderFactory
) -> None:
    """A manifest with a valid checksum but wrong dims/count: caught by the segment checks."""
    wrong_dims = built.model_copy(update={"dims": 32})
    store.write(MANIFEST_NAME, wrong_dims.to_bytes())
    with pytest.raises(IndexCorrupt, match="dims"):
        make_reader()
    seg = built.segments[0].model_copy(update={"tombstones": (12345,)})
    store.write(MANIFEST_NAME, built.model_copy(update={"segments": (seg,)}).to_bytes())
    with pytest.raises(IndexCorrupt, match="tombstones"):
        make_reader()


# --- races (deterministic, in-process) -------------------------------------------------------


def test_two_writers_add_same_face_concurrently(
    make_writer: WriterFactory, make_reader: ReaderFactory, store: Hooked
) -> None:
    a, b = make_writer(), make_writer()
    store.before_swap.append(lambda: b.add(["shared", "b-only"], vecs(2, 7), MODEL))
    result = a.add(["shared", "a-only"], vecs(2, 8), MODEL)
    assert result.attempts == 2 and (result.added, result.already_live) == (1, 1)
    assert live_ids(make_reader()) == ["a-only", "b-only", "shared"]
    # a's first upload (which contained "shared") was discarded, not leaked
    segment_objects = {i.name for i in store.list("segments/")}
    assert segment_objects == referenced_objects(store)


def test_lost_race_reuses_uploaded_segment(make_writer: WriterFactory, store: Hooked) -> None:
    a, b = make_writer(), make_writer()
    store.before_swap.append(lambda: b.add(ids("b", 3), vecs(3, 1), MODEL))
    uploads_before = store.calls.get("write", 0)
    result = a.add(ids("a", 3), vecs(3, 2), MODEL)
    assert result.attempts == 2 and result.added == 3
    # a: 2 segment objects + 2 manifest attempts; b: 2 segment objects + 1 manifest
    assert store.calls["write"] - uploads_before == 7


def test_lost_response_does_not_duplicate(
    make_writer: WriterFactory, make_reader: ReaderFactory, store: Hooked
) -> None:
    writer = make_writer()
    store.lose_response = 1
    result = writer.add(ids("f", 5), vecs(5), MODEL)
    assert result.added == 5 and result.attempts == 2
    reader = make_reader()
    assert live_ids(reader) == ids("f", 5)
    manifest, _ = writer.read_manifest()
    assert manifest is not None and len(manifest.segments) == 1


def test_lost_upload_response_is_not_an_error(
    make_writer: WriterFactory, make_reader: ReaderFactory, store: Hooked
) -> None:
    store.lose_upload_response = 1
    assert make_writer().add(ids("f", 4), vecs(4), MODEL).added == 4
    assert live_ids(make_reader()) == ids("f", 4)


def test_delete_racing_compaction_is_carried_over(
    make_writer: WriterFactory, make_reader: ReaderFactory, store: Hooked
) -> None:
    a = make_writer(PARAMS.model_copy(update={"compact_tombstone_ratio": 0.5}))
    b = make_writer()
    a.add(ids("x", 5), vecs(5, 1), MODEL)
    a.add(ids("y", 5), vecs(5, 2), MODEL)
    store.before_swap.append(lambda: b.delete(["x1", "y3"]))
    result = a.compact(full=True)
    assert result.merges == 1
    manifest, _ = a.read_manifest()
    assert manifest is not None and len(manifest.segments) == 1
    assert len(manifest.segments[0].tombstones) == 2  # the late deletes, on the merged segment
    expected = sorted(set(ids("x", 5) + ids("y", 5)) - {"x1", "y3"})
    assert live_ids(make_reader()) == expected
    a.compact()  # 2/10 deleted is below this writer's 0.5 ratio: kept
    manifest, _ = a.read_manifest()
    assert manifest is not None and manifest.tombstone_count == 2
    a.compact(full=True)  # the offline rewrite drops them
    manifest, _ = a.read_manifest()
    assert manifest is not None and manifest.tombstone_count == 0 and manifest.live_count == 8


def test_competing_compactions(
    make_writer: WriterFactory, make_reader: ReaderFactory, store: Hooked
) -> None:
    a, b = make_writer(), make_writer()
    for n in range(3):
        a.add(ids(f"s{n}-", 4), vecs(4, n), MODEL)
    store.before_swap.append(lambda: b.compact(full=True, gc=False))
    a.compact(full=True, gc=False)
    manifest, _ = a.read_manifest()
    assert manifest is not None and len(manifest.segments) == 1
    assert len(live_ids(make_reader())) == 12


def test_hash_collisions_are_detected_and_probed(
    make_writer: WriterFactory, make_reader: ReaderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = keys_mod.face_key

    def weak(face_id: str, probe: int = 0) -> int:  # 64 possible keys: collisions guaranteed
        return real(face_id, probe) & 0x3F

    monkeypatch.setattr(keys_mod, "face_key", weak)
    monkeypatch.setattr(live_mod, "face_key", weak)
    writer = make_writer()
    writer.add(ids("a", 20), vecs(20, 1), MODEL)
    writer.add(ids("b", 20), vecs(20, 2), MODEL)
    manifest, _ = writer.read_manifest()
    assert manifest is not None and manifest.max_probe > 0
    assert writer.add(ids("a", 20) + ids("b", 20), vecs(40, 3), MODEL).added == 0
    writer.delete(ids("a", 20)[::2])
    assert writer.add(ids("a", 20), vecs(20, 4), MODEL).added == 10
    reader = make_reader()
    everything = sorted(ids("a", 20) + ids("b", 20))
    assert live_ids(reader) == everything
    writer.compact(full=True)
    assert live_ids(reader) == everything
    hits = reader.search(vecs(20, 2), k=1, exact=True)
    assert [h[0].face_id for h in hits] == ids("b", 20)


# --- refresh & GC --------------------------------------------------------------------------------


def test_refresh_is_one_metadata_read_when_unchanged(
    make_writer: WriterFactory, make_reader: ReaderFactory, store: Hooked
) -> None:
    writer = make_writer()
    writer.add(ids("a", 5), vecs(5, 1), MODEL)
    reader = make_reader()
    store.calls.clear()
    assert reader.refresh() is False
    assert store.calls == {"stat": 1}
    writer.add(ids("b", 5), vecs(5, 2), MODEL)
    store.calls.clear()
    assert reader.refresh() is True
    # one stat, one manifest read, and only the *new* segment's two objects downloaded
    assert store.calls == {"stat": 1, "read": 1, "download": 2}


def test_gc_keeps_retired_for_grace_and_removes_orphans(
    make_writer: WriterFactory, make_reader: ReaderFactory, store: Hooked
) -> None:
    now = [time.time()]
    writer = make_writer(clock=lambda: now[0])
    writer.add(ids("a", 5), vecs(5, 1), MODEL)
    writer.add(ids("b", 5), vecs(5, 2), MODEL)
    old_manifest_bytes, _ = store.read(MANIFEST_NAME)
    old = Manifest.from_bytes(old_manifest_bytes)
    # an orphan: a writer uploaded a segment and died before its manifest swap
    store.write("segments/0000000000000-deadbeefdeadbeef.usearch", b"orphan")
    writer.compact(full=True)
    old_objects = {n for s in old.segments for n in (s.index_name, s.ids_name)}
    present = {i.name for i in store.list("segments/")}
    assert old_objects <= present  # within grace: readers of the old manifest still work
    for name in old_objects:  # a reader still on the old manifest can fetch all it lists
        store.read(name)
    now[0] += PARAMS.gc_grace_s + 1
    result = writer.gc()
    assert set(result.deleted_objects) == old_objects | {
        "segments/0000000000000-deadbeefdeadbeef.usearch"
    }
    assert result.forgotten_retired == 2
    assert {i.name for i in store.list("segments/")} == referenced_objects(store)
    manifest, _ = writer.read_manifest()
    assert manifest is not None and manifest.retired == ()
    assert live_ids(make_reader()) == sorted(ids("a", 5) + ids("b", 5))


def test_fresh_orphan_is_not_collected(make_writer: WriterFactory, store: Hooked) -> None:
    writer = make_writer()
    writer.add(["a"], vecs(1), MODEL)
    store.write("segments/9999999999999-0123456789abcdef.ids", b"in flight")
    store.write("segments/not-a-segment.txt", b"foreign")
    assert writer.gc().deleted_objects == ()
    assert writer.gc(grace_s=0).deleted_objects == ("segments/9999999999999-0123456789abcdef.ids",)
    assert store.stat("segments/not-a-segment.txt") is not None
