"""Indexer: group commit, per-message outcomes, idempotence, push handling."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facesearch.config import load_settings
from facesearch.errors import TransientError
from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader
from facesearch.index.writer import IndexWriter, read_manifest
from facesearch.indexer.entry import handle_push, make_committer, topic_of
from facesearch.indexer.group_commit import GroupCommitter
from facesearch.indexer.service import Applied, IndexerService
from facesearch.storage.bus import Message
from facesearch.storage.local.blob import LocalBlobStore
from facesearch.storage.local.bus import InProcessBus
from facesearch.storage.messages import DeletionsMessage, EmbeddingsMessage, FaceEvent

MODEL = "test-embedder@1"
DIMS = 16
PARAMS = IndexParams(dtype="f32", build_threads=1, auto_compact=False)


def unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def emb(image: str, n: int, seed: int, model: str = MODEL) -> Message:
    return EmbeddingsMessage(
        image, model, [f"{image}-{i}" for i in range(n)], unit(n, seed)
    ).encode()


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.store = LocalBlobStore(tmp / "index")
        self.writer = IndexWriter(self.store, cache_dir=tmp / "cache", params=PARAMS)
        self.bus = InProcessBus()
        self.service = IndexerService(lambda collection_id: self.writer, self.bus)
        self.tmp = tmp

    def reader(self) -> IndexReader:
        return IndexReader(self.store, cache_dir=self.tmp / "rcache", params=PARAMS)

    def events(self) -> list[FaceEvent]:
        return [FaceEvent.decode(m) for m in self.bus.published.get("face-events", [])]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


# --- group commit ------------------------------------------------------------------------------


def test_group_commit_gathers_concurrent_requests() -> None:
    batches: list[list[int]] = []

    def flush(items: list[int]) -> list[int]:
        batches.append(items)
        return [i * 10 for i in items]

    committer: GroupCommitter[int, int] = GroupCommitter(flush, window_s=0.2, max_weight=1000)
    results: dict[int, int | None] = {}

    def call(i: int) -> None:
        results[i] = committer.submit(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i * 10 for i in range(20)}  # each caller gets its own result
    assert sorted(i for b in batches for i in b) == list(range(20))  # each item exactly once
    assert len(batches) <= 3  # 20 requests, a handful of commits


def test_group_commit_flushes_early_at_max_weight() -> None:
    committer: GroupCommitter[int, int] = GroupCommitter(
        lambda items: items, window_s=30.0, max_weight=1
    )
    start = time.monotonic()
    assert committer.submit(7) == 7
    assert time.monotonic() - start < 5.0


def test_group_commit_errors_reach_their_callers() -> None:
    def flush(items: list[int]) -> list[int | BaseException]:
        if 13 in items and len(items) == 1:
            raise TransientError("store down")
        return [ValueError("bad") if i == 5 else i for i in items]

    committer: GroupCommitter[int, int] = GroupCommitter(flush, window_s=0.0, max_weight=10)
    with pytest.raises(ValueError):
        committer.submit(5)
    with pytest.raises(TransientError):
        committer.submit(13)
    assert committer.submit(4) == 4


# --- service -----------------------------------------------------------------------------------


def test_batch_becomes_one_segment_and_redelivery_adds_nothing(rig: Rig) -> None:
    batch = [emb(f"img{i}", 3, seed=i) for i in range(5)]
    results = rig.service.apply(batch)
    assert all(isinstance(r, Applied) and r.poison is None for r in results)
    manifest, _ = read_manifest(rig.store)
    assert manifest is not None and len(manifest.segments) == 1 and manifest.live_count == 15
    for _ in range(10):  # every message redelivered 10 times
        assert all(isinstance(r, Applied) for r in rig.service.apply(batch))
    manifest, _ = read_manifest(rig.store)
    assert manifest is not None and manifest.live_count == 15 and len(manifest.segments) == 1
    reader = rig.reader()
    assert sorted(reader.face_ids()) == sorted(f"img{i}-{j}" for i in range(5) for j in range(3))
    hit = reader.search_one(unit(3, seed=2)[1], k=1)[0]
    assert hit.face_id == "img2-1" and hit.similarity > 0.99
    events = rig.events()
    assert events[0].event == "face_added" and len(events[0].face_ids) == 15


def test_poison_is_acknowledged_and_does_not_block_the_batch(rig: Rig) -> None:
    rig.service.apply([emb("first", 1, seed=1)])  # the index is now on MODEL
    batch = [
        Message(b"not json", {"kind": "embeddings"}, "m1"),
        emb("other-model", 2, seed=2, model="other@9"),
        emb("good", 2, seed=3),
    ]
    results = rig.service.apply(batch)
    assert isinstance(results[0], Applied) and results[0].poison == "bad-message"
    assert isinstance(results[1], Applied) and results[1].poison == "model-mismatch"
    assert isinstance(results[2], Applied) and results[2].poison is None
    assert sorted(rig.reader().face_ids()) == ["first-0", "good-0", "good-1"]


def test_deletions_remove_and_announce(rig: Rig) -> None:
    rig.service.apply([emb("img", 3, seed=4)])
    (result,) = rig.service.apply([DeletionsMessage(["img-1", "ghost"], "test").encode()])
    assert isinstance(result, Applied) and result.kind == "deletions"
    assert sorted(rig.reader().face_ids()) == ["img-0", "img-2"]
    assert rig.events()[-1].event == "face_removed"


def test_store_failure_makes_every_message_retry(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: object, **kwargs: object) -> object:
        raise TransientError("bucket unavailable")

    monkeypatch.setattr(rig.writer, "add", down)
    results = rig.service.apply([emb("a", 1, seed=1), emb("b", 1, seed=2)])
    assert all(isinstance(r, TransientError) for r in results)
    with pytest.raises(TransientError):
        rig.service.handle_batch([emb("a", 1, seed=1)])


# --- push entry point --------------------------------------------------------------------------


def push(message: Message) -> dict[str, object]:
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": "id-1",
        }
    }


def test_concurrent_pushes_are_acked_only_after_their_manifest(rig: Rig, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, indexer_commit_window_ms=150)
    committer = make_committer(rig.service, settings)
    source = "//pubsub.googleapis.com/projects/p/topics/face-embeddings"
    errors: list[BaseException] = []

    def deliver(i: int) -> None:
        try:
            result = handle_push(
                source, push(emb(f"img{i}", 2, seed=i)), committer=committer, settings=settings
            )
            assert isinstance(result, Applied) and result.poison is None
            # acknowledged => already in a stored manifest
            manifest, _ = read_manifest(rig.store)
            assert manifest is not None and manifest.version >= (result.manifest_version or 0)
            live = IndexReader(rig.store, cache_dir=tmp_path / f"r{i}", params=PARAMS).face_ids()
            assert {f"img{i}-0", f"img{i}-1"} <= set(live)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    manifest, _ = read_manifest(rig.store)
    assert manifest is not None and manifest.live_count == 24
    assert committer.flushes < 12  # grouped


def test_push_mapping(rig: Rig, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, indexer_commit_window_ms=0)
    committer = make_committer(rig.service, settings)
    assert topic_of("//pubsub.googleapis.com/projects/p/topics/face-deletions") == "face-deletions"
    # unreadable pushes are acknowledged
    assert handle_push("", {"nope": 1}, committer=committer, settings=settings) is None
    bad = {"message": {"data": "%%%", "messageId": "x"}}
    assert handle_push("", bad, committer=committer, settings=settings) is None
    # a deletions message without a kind attribute is routed by its topic
    rig.service.apply([emb("img", 2, seed=1)])
    body = DeletionsMessage(["img-0"]).encode()
    raw = {"message": {"data": base64.b64encode(body.data).decode(), "messageId": "d"}}
    result = handle_push(
        "//pubsub.googleapis.com/projects/p/topics/face-deletions",
        raw,
        committer=committer,
        settings=settings,
    )
    assert isinstance(result, Applied) and result.kind == "deletions"
    assert rig.reader().face_ids() == ["img-1"]
