"""The blob contract and the index scenarios against the GCS emulator (official client).

Same checks as the local-adapter unit tests, so both adapters are held to one
behaviour: compare-and-swap across processes, racing writer processes, writers
killed mid-flight, corrupt objects, and transient errors surfacing as typed errors.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from facesearch.backends import open_blob_store
from facesearch.errors import IndexCorrupt, TransientError
from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader
from facesearch.index.writer import IndexWriter, read_manifest
from facesearch.storage.blob import RetryPolicy
from facesearch.storage.gcp.blob import GcsBlobStore
from tests.support import emulators
from tests.unit.index.test_concurrency import run_crash_loop, run_parallel_writers

pytestmark = pytest.mark.integration

PARAMS = IndexParams(dtype="f16", build_threads=1, compact_min_segment=8, compact_fanout=3)


def test_index_lifecycle_on_gcs(gcs_bucket: str, tmp_path: Path) -> None:
    store = open_blob_store(gcs_bucket)
    writer = IndexWriter(store, cache_dir=tmp_path / "w", params=PARAMS)
    data = np.random.default_rng(0).standard_normal((60, 32)).astype(np.float32)
    face_ids = [f"img{i // 3}:{i % 3}" for i in range(60)]
    for start in range(0, 60, 10):
        writer.add(face_ids[start : start + 10], data[start : start + 10], "m@1")
    assert writer.add(face_ids[:10], data[:10], "m@1").added == 0
    writer.delete(face_ids[:5])
    writer.compact(full=True)
    reader = IndexReader(store, cache_dir=tmp_path / "r", params=PARAMS)
    assert sorted(reader.face_ids()) == sorted(face_ids[5:])
    hits = reader.search(data[5:], k=1)
    assert [h[0].face_id for h in hits] == face_ids[5:]
    assert reader.refresh() is False


def test_parallel_writer_processes_gcs(gcs_bucket: str, tmp_path: Path) -> None:
    run_parallel_writers(gcs_bucket, tmp_path, writers=3, batches=5)


def test_writer_killed_at_random_points_gcs(gcs_bucket: str, tmp_path: Path) -> None:
    seed = int(time.time())
    print(f"crash loop seed: {seed}")
    run_crash_loop(gcs_bucket, tmp_path, kills=6, seed=seed)


def test_truncated_segment_on_gcs(gcs_bucket: str, tmp_path: Path) -> None:
    store = open_blob_store(gcs_bucket)
    writer = IndexWriter(store, cache_dir=tmp_path / "w", params=PARAMS)
    writer.add(["a", "b"], np.eye(2, 32, dtype=np.float32), "m@1")
    manifest, _ = read_manifest(store)
    assert manifest is not None
    name = manifest.segments[0].index_name
    store.write(name, store.read(name)[0][:-7])
    with pytest.raises(IndexCorrupt, match="truncated"):
        IndexReader(store, cache_dir=tmp_path / "r", params=PARAMS)


def test_unreachable_backend_is_a_transient_error(
    gcs_emulator: emulators.Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{emulators.free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", dead)
    client = storage.Client(project="p", credentials=AnonymousCredentials())
    store = GcsBlobStore(
        "bucket", "x", client=lambda: client, retry=RetryPolicy(attempts=3, base_delay_s=0.01)
    )
    started = time.monotonic()
    with pytest.raises(TransientError, match="after 3 attempts"):
        store.read("manifest.json")
    with pytest.raises(TransientError):
        store.write("manifest.json", b"{}", if_generation_match=0)
    assert time.monotonic() - started < 10  # bounded, not the client's 120 s default


def test_missing_emulator_is_reported_clearly(tmp_path: Path) -> None:
    launcher = emulators.gcs_emulator(tmp_path, binary=tmp_path / "no-such-binary")
    with pytest.raises(emulators.EmulatorMissing, match="missing or not executable"):
        launcher.__enter__()
