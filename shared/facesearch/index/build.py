"""Large adds: split into segments of at most ``segment_max_vectors``, built in parallel.

A backfill or rebuild hands the writer a million faces at once. Built as one
HNSW graph that is one long, mostly serial job (usearch's insert threads share
one graph and its locks), and the resulting segment can never be rebuilt in
less time again. Split into parts of at most ``segment_max_vectors``, the parts
are independent: ``build_workers`` processes build them at once, each with its
share of the cores, and a Cloud Run Job can go further by giving each task its
own part (every task is just another writer; manifest swaps keep them safe).

The parts are contiguous slices of the batch in its given order, so the same
batch always yields the same parts: a writer that lost a commit race and has to
re-decide reuses its uploaded parts when nothing changed (see
:meth:`facesearch.index.writer.IndexWriter.add`).

Workers are fresh interpreters (``python -m facesearch.index.build``; never a
``fork`` of a parent that may run threads), and read their vectors from a
memory-mapped ``.npy`` file in the work directory instead of a pipe.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesearch.index.manifest import Dtype
from facesearch.index.params import IndexParams
from facesearch.index.segment import BuiltSegment, build_segment


def plan_parts(count: int, max_vectors: int) -> list[slice]:
    """Contiguous, near-equal slices of ``count`` items, none larger than ``max_vectors``."""
    if count <= 0:
        return []
    parts = math.ceil(count / max_vectors)
    bounds = [round(i * count / parts) for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build_segments(
    keys: np.ndarray,
    vectors: np.ndarray,
    face_ids: Sequence[str],
    *,
    dims: int,
    dtype: Dtype,
    params: IndexParams,
    workdir: Path,
) -> list[BuiltSegment]:
    """One segment per part; parts built ``build_workers`` at a time (0 = one per core)."""
    parts = plan_parts(len(keys), params.segment_max_vectors)
    workers = min(len(parts), params.build_workers or cores())
    if workers <= 1:
        return [
            build_segment(
                keys[part],
                vectors[part],
                face_ids[part],
                dims=dims,
                dtype=dtype,
                params=params,
                workdir=workdir,
            )
            for part in parts
        ]
    threads = max(1, (params.build_threads or cores()) // workers)
    worker_params = params.model_copy(update={"build_threads": threads})
    workdir.mkdir(parents=True, exist_ok=True)
    shared = workdir / f".build-{uuid.uuid4().hex[:12]}.npy"
    # f16 segments get f16 rows: half the scratch file (on Cloud Run, /tmp is memory)
    np.save(shared, np.ascontiguousarray(vectors, dtype=np.float16 if dtype == "f16" else None))
    jobs = [
        _PartJob(
            shared, part, keys[part], list(face_ids[part]), dims, dtype, worker_params, workdir
        )
        for part in parts
    ]
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(_run_worker, jobs))
    finally:
        shared.unlink(missing_ok=True)


def _run_worker(job: _PartJob) -> BuiltSegment:
    """Build one part in a fresh interpreter (``python -m facesearch.index.build JOB``).

    A plain subprocess rather than multiprocessing: spawn/forkserver re-import
    the caller's ``__main__``, which breaks any script without a main guard.
    """
    job_path = job.workdir / f".part-{uuid.uuid4().hex[:12]}.job"
    out_path = job_path.with_suffix(".out")
    job_path.write_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "facesearch.index.build", str(job_path), str(out_path)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"segment build worker exited {done.returncode}: {done.stderr[-2000:]}"
            )
        built: BuiltSegment = pickle.loads(out_path.read_bytes())
        return built
    finally:
        job_path.unlink(missing_ok=True)
        out_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class _PartJob:
    """What a worker process needs to build one part (pickled; vectors stay in the file)."""

    shared: Path
    rows: slice
    keys: np.ndarray
    face_ids: list[str]
    dims: int
    dtype: Dtype
    params: IndexParams
    workdir: Path


def _build_part(job: _PartJob) -> BuiltSegment:
    """The worker's side: build from the shared vector file."""
    vectors = np.load(job.shared, mmap_mode="r")[job.rows]
    return build_segment(
        job.keys,
        vectors,
        job.face_ids,
        dims=job.dims,
        dtype=job.dtype,
        params=job.params,
        workdir=job.workdir,
    )


def same_content(built: Sequence[BuiltSegment], keys: np.ndarray, face_ids: Sequence[str]) -> bool:
    """Would building these pairs again give the same parts (so the uploads can be reused)?"""
    if sum(len(b.keys) for b in built) != len(keys):
        return False
    offset = 0
    for part in built:
        end = offset + len(part.keys)
        if not part.same_content(keys[offset:end], face_ids[offset:end]):
            return False
        offset = end
    return True


def _main(argv: list[str]) -> int:
    job_path, out_path = Path(argv[0]), Path(argv[1])
    job: _PartJob = pickle.loads(job_path.read_bytes())
    built = _build_part(job)
    tmp = out_path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
