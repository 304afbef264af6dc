"""Real processes racing on one index, and writers killed with SIGKILL mid-flight.

Run against the local adapter here; tests/integration/test_index_gcs.py runs the
same scenarios against the GCS emulator. Workers are this file run as a script
(``python test_index_concurrency.py worker ...``) so they are genuinely separate
processes with their own caches, like Cloud Run instances.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facesearch.backends import open_blob_store
from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader
from facesearch.index.writer import IndexWriter, read_manifest

MODEL = "concurrency-test@1"
DIMS = 16
WORKER_PARAMS = IndexParams(
    dtype="f32",
    build_threads=1,
    compact_min_segment=16,
    compact_fanout=3,
    auto_compact=True,
    commit_attempts=200,
)


def batch_ids(prefix: str, batch: int, size: int) -> list[str]:
    return [f"{prefix}{batch}-{j}" for j in range(size)]


def vectors_for(face_ids: list[str]) -> np.ndarray:
    """Deterministic per face id, so a redelivered batch carries identical vectors."""
    rows = []
    for face_id in face_ids:
        seed = int.from_bytes(hashlib.sha256(face_id.encode()).digest()[:8], "little")
        rows.append(np.random.default_rng(seed).standard_normal(DIMS))
    return np.asarray(rows, dtype=np.float32)


# --- the worker process ----------------------------------------------------------------------


def worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--shared", type=int, default=0, help="ids every worker also adds")
    args = parser.parse_args(argv)
    writer = IndexWriter(
        open_blob_store(args.url), cache_dir=Path(args.cache), params=WORKER_PARAMS
    )
    print("ready", flush=True)
    for batch in range(args.start, args.start + args.batches):
        face_ids = batch_ids(args.prefix, batch, args.size)
        face_ids += batch_ids("shared-", batch, args.shared)
        writer.add(face_ids, vectors_for(face_ids), MODEL)
        print(f"ok {batch}", flush=True)  # only after add() returned: the ack
    return 0


def start_worker(
    url: str, cache: Path, prefix: str, *, start: int, batches: int, **kw: int
) -> subprocess.Popen[str]:
    extra = [f"--{k}={v}" for k, v in kw.items()]
    cmd = [sys.executable, __file__, "worker", f"--url={url}", f"--cache={cache}"]
    cmd += [f"--prefix={prefix}", f"--start={start}", f"--batches={batches}", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ})


def live_face_ids(url: str, cache: Path) -> list[str]:
    reader = IndexReader(open_blob_store(url), cache_dir=cache, params=WORKER_PARAMS)
    return list(reader.face_ids())


# --- scenarios (shared with the GCS integration tests) -----------------------------------------


def run_parallel_writers(url: str, tmp_path: Path, *, writers: int = 3, batches: int = 6) -> None:
    """Disjoint batches plus ids that every writer adds at the same time."""
    size, shared = 8, 4
    procs = [
        start_worker(
            url,
            tmp_path / f"cache{w}",
            f"w{w}-",
            start=0,
            batches=batches,
            size=size,
            shared=shared,
        )
        for w in range(writers)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        assert out.split().count("ok") == batches
    live = live_face_ids(url, tmp_path / "reader")
    expected = [
        f for w in range(writers) for b in range(batches) for f in batch_ids(f"w{w}-", b, size)
    ]
    expected += [f for b in range(batches) for f in batch_ids("shared-", b, shared)]
    duplicates = [f for f, n in Counter(live).items() if n > 1]
    assert not duplicates, f"faces live more than once: {duplicates[:10]}"
    assert sorted(live) == sorted(expected)


def run_crash_loop(url: str, tmp_path: Path, *, kills: int, seed: int) -> None:
    """SIGKILL a writer at random moments, redeliver the unacknowledged batch, repeat."""
    rng = random.Random(seed)
    size = 5
    acked: set[int] = set()
    next_batch = 0
    store = open_blob_store(url)
    reader = IndexReader(store, cache_dir=tmp_path / "reader", params=WORKER_PARAMS)
    for round_number in range(kills):
        proc = start_worker(
            url, tmp_path / "wcache", "c-", start=next_batch, batches=10_000, size=size
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        if not acked and round_number == kills - 1:
            # On a loaded machine every random kill may land before the first commit;
            # the last round then waits for one acknowledged add, so the loop always
            # tests recovery of committed work, not just of an empty index.
            first = proc.stdout.readline().strip()
            assert first.startswith("ok "), f"worker said {first!r}"
            acked.add(int(first.split()[1]))
        time.sleep(rng.uniform(0.0, 0.5))
        proc.kill()
        out, _ = proc.communicate(timeout=60)
        acked.update(int(line.split()[1]) for line in out.splitlines() if line.startswith("ok "))
        next_batch = max(acked) + 1 if acked else 0
        reader.refresh()  # the manifest always loads, segments verify
        live = reader.face_ids()
        assert len(live) == len(set(live)), "a face is live twice after a crash"
        must = {f for b in acked for f in batch_ids("c-", b, size)}
        may = must | set(batch_ids("c-", next_batch, size))  # in flight when killed
        assert must <= set(live), f"acknowledged faces lost: {sorted(must - set(live))[:5]}"
        assert set(live) <= may
    assert acked, "no add ever completed: the kill window is too short to test anything"
    # clean up after the dead: orphans from kills between upload and swap go with GC
    writer = IndexWriter(store, cache_dir=tmp_path / "gc", params=WORKER_PARAMS)
    writer.gc(grace_s=0)
    manifest, _ = read_manifest(store)
    assert manifest is not None
    referenced = {n for s in manifest.segments for n in (s.index_name, s.ids_name)}
    assert {i.name for i in store.list("segments/")} == referenced
    cold = live_face_ids(url, tmp_path / "cold")
    assert sorted(cold) == sorted(reader.face_ids())


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_parallel_writer_processes_local(tmp_path: Path) -> None:
    run_parallel_writers((tmp_path / "bucket").as_uri(), tmp_path)


@pytest.mark.slow
def test_writer_killed_at_random_points_local(tmp_path: Path) -> None:
    seed = int(time.time())
    print(f"crash loop seed: {seed}")  # shown on failure, to replay the kill timings
    run_crash_loop((tmp_path / "bucket").as_uri(), tmp_path, kills=10, seed=seed)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    sys.exit(worker_main(sys.argv[2:]))
