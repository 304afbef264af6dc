"""Index at scale: build, open, search, compact up to 1M faces; ours vs FAISS in the same run.

    python -m tests.bench.scale                                  # 100k x 128, a few minutes
    python -m tests.bench.scale --faces 1000000 [--dims 128|512] [--workers N] [--no-compact]

Data: the index benchmark's face-like synthetic vectors (identity clusters, 5
samples per identity; queries are new samples of indexed identities), exact
top-10 ground truth by brute force.

Phases:

1. build ours through ``IndexWriter.add`` into a local-directory "bucket" (one
   call, as a rebuild job makes it): normalise, keys, the HNSW build of every
   part (``--segment-max`` / ``--workers``: parts built by worker processes),
   sidecars, sha256, upload, one manifest swap;
2. build FAISS ``IndexHNSWFlat`` (inner product, same M/efConstruction) on all cores;
3. child process: cold open (empty cache: fetch + sha256 + mmap), RSS after
   open and after the queries (the reader's own growth, not the benchmark's);
4. child process holding both indexes: ef sweep, ours and FAISS *interleaved*
   round by round so load on this shared machine hits both alike; wall-clock
   p50/p99 and CPU time per query; raw usearch vs our reader (wrapper overhead);
5. delete ``compact_tombstone_ratio`` of the largest segment, measure search
   with those tombstones, then the compaction that rewrites it (``--no-compact``
   skips this).

``recall_at_10`` is against exact brute force, including the stranger ranks
after the query person's own samples (on this data those are near-ties of
noise: the hard part); ``identity_recall_at_10`` is the share of the query
person's indexed samples found in the top 10 (what a user of face search sees).

Latency children search one query at a time with single-threaded BLAS; our
reader fans out over segments with ``FACESEARCH_INDEX_FANOUT_THREADS`` threads
(FAISS has one graph and one thread). The JSON summary is the last line and
``bench-results/scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.common import write_result
from tests.bench.index import (
    SINGLE_THREAD_ENV,
    data_shape,
    exact_topk,
    fastest_reaching,
    genuine_cosine,
    identity_recall,
    make_data,
    recall_at_k,
)

MODEL = "bench-synthetic@1"
K = 10
EF_SWEEP = (32, 48, 64, 96, 128, 192, 256, 384)
RECALL_TARGETS = (0.95, 0.98, 0.99)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss / 2**20)


def face_id(i: int) -> str:
    return f"face-{i:09d}"


def params_from(args: argparse.Namespace) -> Any:
    from facesearch.config import load_settings

    index = load_settings().index
    update: dict[str, Any] = {"auto_compact": False}
    for name in ("connectivity", "expansion_add", "segment_max", "workers", "fanout"):
        value = getattr(args, name, None)
        if value is not None:
            field = {
                "segment_max": "segment_max_vectors",
                "workers": "build_workers",
                "fanout": "fanout_threads",
            }.get(name, name)
            update[field] = value
    return index.model_copy(update=update)


# --- builds --------------------------------------------------------------------------------------


def build_ours(work: Path, base: np.ndarray, params: Any) -> dict[str, Any]:
    from facesearch.index.writer import IndexWriter
    from facesearch.storage.local.blob import LocalBlobStore

    writer = IndexWriter(LocalBlobStore(work / "bucket"), cache_dir=work / "wcache", params=params)
    ids = [face_id(i) for i in range(len(base))]
    started, cpu = time.perf_counter(), _children_cpu()
    result = writer.add(ids, base, MODEL)
    seconds = time.perf_counter() - started
    manifest, _ = writer.read_manifest()
    assert manifest is not None and manifest.live_count == len(base)
    shutil.rmtree(work / "wcache", ignore_errors=True)  # readers start cold
    return {
        "build_s": seconds,
        "build_cpu_s": _children_cpu() - cpu,
        "build_vectors_per_s": len(base) / seconds,
        "segments": len(result.segment_ids),
        "segment_sizes": [s.count for s in manifest.segments],
        "index_file_mb": sum(s.index_bytes for s in manifest.segments) / 2**20,
        "sidecar_mb": sum(s.ids_bytes for s in manifest.segments) / 2**20,
    }


def _children_cpu() -> float:
    """CPU seconds of this process and its finished children (worker processes)."""
    usage = os.times()
    return usage.user + usage.system + usage.children_user + usage.children_system


def build_faiss(work: Path, base: np.ndarray, m: int, ef_add: int) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_add
    started, cpu = time.perf_counter(), time.process_time()
    index.add(base)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    faiss.write_index(index, str(work / "faiss.index"))
    return {"build_s": seconds, "build_cpu_s": cpu, "build_vectors_per_s": len(base) / seconds}


# --- children ------------------------------------------------------------------------------------


def open_reader(work: Path, cache: Path, view: bool, params: Any) -> Any:
    from facesearch.index.reader import IndexReader
    from facesearch.storage.local.blob import LocalBlobStore

    shutil.rmtree(cache, ignore_errors=True)
    return IndexReader(LocalBlobStore(work / "bucket"), cache_dir=cache, params=params, view=view)


def child_open(work: Path, params: Any) -> dict[str, Any]:
    """Cold open from an empty cache, view vs full load, and the reader's RSS."""
    queries = np.load(work / "queries.npy")
    for path in (work / "bucket").rglob("*"):  # same starting point for both modes:
        if path.is_file():  # the "bucket" in the page cache, as a GCS download is in RAM
            with path.open("rb") as handle:
                while handle.read(1 << 24):
                    pass
    out: dict[str, Any] = {}
    for mode in ("view", "load"):
        before = rss_mb()
        started = time.perf_counter()
        reader = open_reader(work, work / f"cache-{mode}", mode == "view", params)
        out[f"{mode}_cold_open_s"] = time.perf_counter() - started
        out[f"{mode}_rss_open_mb"] = rss_mb() - before
        started = time.perf_counter()  # warm: files already in the cache, only open + map
        from facesearch.index.reader import IndexReader
        from facesearch.storage.local.blob import LocalBlobStore

        IndexReader(
            LocalBlobStore(work / "bucket"),
            cache_dir=work / f"cache-{mode}",
            params=params,
            view=mode == "view",
        )
        out[f"{mode}_warm_open_s"] = time.perf_counter() - started
        for q in queries:
            reader.search_one(q, K)
        out[f"{mode}_rss_mb"] = rss_mb() - before
        del reader
        shutil.rmtree(work / f"cache-{mode}", ignore_errors=True)
    return out


def child_latency(work: Path, params: Any, rounds: int, with_faiss: bool) -> dict[str, Any]:
    """ef sweep, ours and FAISS interleaved; wall and CPU time per query."""
    from facesearch.native import search_many

    queries = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    from facesearch.native import MetricKind

    reader = open_reader(work, work / "cache-latency", True, params)
    segments = reader._snapshot.segments  # to set ef and time the raw usearch call
    # "before": the same files searched with usearch's cos kernel, as the index did until now
    before = open_reader(work, work / "cache-latency-cos", True, params)
    for seg in before._snapshot.segments:
        seg.index.metric = MetricKind.Cos
    findex = None
    if with_faiss:
        import faiss

        faiss.omp_set_num_threads(1)
        findex = faiss.read_index(str(work / "faiss.index"))
    timings: dict[str, dict[int, dict[str, list[float]]]] = {
        "ours": {},
        "ours_cos_kernel": {},
        "faiss": {},
        "raw": {},
    }
    found: dict[str, dict[int, list[list[int]]]] = {"ours": {}, "ours_cos_kernel": {}, "faiss": {}}
    for _ in range(rounds):
        for ef in EF_SWEEP:
            for name, which in (("ours", reader), ("ours_cos_kernel", before)):
                for seg in which._snapshot.segments:
                    seg.index.expansion_search = ef
                for q in queries[:30]:  # warm the pages this ef touches
                    which.search_one(q, K)
                walls, cpus, hits = _time(lambda q, r=which: r.search_one(q, K), queries)
                _record(timings[name], ef, walls, cpus)
                found[name][ef] = [[int(h.face_id[5:]) for h in row] for row in hits]
            if len(segments) == 1:
                seg = segments[0]
                walls, cpus, _ = _time(
                    lambda q, s=seg: search_many(s.index, q[None, :], K, exact=False, threads=1),
                    queries[:300],
                )
                _record(timings["raw"], ef, walls, cpus)
            if findex is not None:
                findex.hnsw.efSearch = ef
                walls, cpus, rows = _time(lambda q: findex.search(q[None, :], K)[1][0], queries)
                _record(timings["faiss"], ef, walls, cpus)
                found["faiss"][ef] = [row.tolist() for row in rows]
    out: dict[str, Any] = {"segments": len(segments)}
    identity = {
        system: {ef: identity_recall(rows, work, K) for ef, rows in by_ef.items()}
        for system, by_ef in found.items()
    }
    for system in ("ours", "ours_cos_kernel", "faiss", "raw"):
        if not timings[system]:
            continue
        out[system] = [
            {
                "ef": ef,
                **_stats(t),
                **(
                    {
                        "recall_at_10": recall_at_k(found[system][ef], truth, K),
                        "identity_recall_at_10": identity[system][ef],
                    }
                    if system in found and ef in found[system]
                    else {}
                ),
            }
            for ef, t in sorted(timings[system].items())
        ]
    return out


def _time(fn: Any, queries: np.ndarray) -> tuple[list[float], list[float], list[Any]]:
    walls, cpus, results = [], [], []
    for q in queries:
        w, c = time.perf_counter(), time.process_time()
        results.append(fn(q))
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return walls, cpus, results


def _record(
    table: dict[int, dict[str, list[float]]], ef: int, walls: list[float], cpus: list[float]
) -> None:
    row = table.setdefault(ef, {"wall": [], "cpu": []})
    row["wall"].extend(walls)
    row["cpu"].extend(cpus)


def _stats(t: dict[str, list[float]]) -> dict[str, float]:
    wall = np.asarray(t["wall"]) * 1000
    cpu = np.asarray(t["cpu"]) * 1000
    return {
        "p50_ms": float(np.percentile(wall, 50)),
        "p99_ms": float(np.percentile(wall, 99)),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
    }


def child_compact(work: Path, params: Any) -> dict[str, Any]:
    """Delete the tombstone-ratio share of the largest segment; search with it; compact."""
    from facesearch.index.writer import IndexWriter
    from facesearch.storage.local.blob import LocalBlobStore

    queries = np.load(work / "queries.npy")
    store = LocalBlobStore(work / "bucket")
    writer = IndexWriter(store, cache_dir=work / "ccache", params=params)
    manifest, _ = writer.read_manifest()
    assert manifest is not None
    largest = max(manifest.segments, key=lambda s: s.count)
    ids = writer.cache.ids(largest)
    share = params.compact_tombstone_ratio
    doomed = [ids.face_id(i) for i in range(0, len(ids), max(1, round(1 / share)))]
    started = time.perf_counter()
    writer.delete(doomed)
    delete_s = time.perf_counter() - started
    reader = open_reader(work, work / "cache-compact", True, params)
    walls, _, _ = _time(lambda q: reader.search_one(q, K), queries)
    started = time.perf_counter()
    result = writer.compact(gc=False)
    compact_s = time.perf_counter() - started
    reader.refresh()
    after, _, _ = _time(lambda q: reader.search_one(q, K), queries)
    return {
        "deleted": len(doomed),
        "delete_s": delete_s,
        "tombstoned_p50_ms": float(np.percentile(np.asarray(walls) * 1000, 50)),
        "compact_s": compact_s,
        "merges": result.merges,
        "vectors_dropped": result.vectors_dropped,
        "segment_rewritten": largest.count,
        "after_compact_p50_ms": float(np.percentile(np.asarray(after) * 1000, 50)),
    }


def run_child(work: Path, mode: str, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    env = {**os.environ, **SINGLE_THREAD_ENV}
    cmd = [sys.executable, "-m", "tests.bench.scale", "--child", mode, "--workdir", str(work)]
    cmd += _knob_flags(args) + list(extra)
    done = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _knob_flags(args: argparse.Namespace) -> list[str]:
    flags = []
    for name in ("connectivity", "expansion_add", "segment_max", "workers", "fanout"):
        value = getattr(args, name)
        if value is not None:
            flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latent-dims", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="build processes (settings)")
    parser.add_argument("--segment-max", type=int, default=None, help="vectors per built segment")
    parser.add_argument("--fanout", type=int, default=None, help="fan-out threads (settings)")
    parser.add_argument("--connectivity", type=int, default=None, help="[M] (settings)")
    parser.add_argument("--expansion-add", type=int, default=None, help="[efC] (settings)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved latency rounds")
    parser.add_argument(
        "--no-compact", action="store_true", help="skip the delete + compaction phase"
    )
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    params = params_from(args)

    if args.child:
        child = {
            "open": lambda: child_open(args.workdir, params),
            "latency": lambda: child_latency(args.workdir, params, args.rounds, not args.no_faiss),
            "compact": lambda: child_compact(args.workdir, params),
        }[args.child]
        print(json.dumps(child()))
        return 0

    load_start = os.getloadavg()
    owned = args.workdir is None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    started_all = time.perf_counter()
    try:
        log(f"generating {args.faces:,} x {args.dims} face-like vectors in {work}")
        base, queries, owners, query_owners = make_data(
            args.faces,
            dims=args.dims,
            per_identity=5,
            queries=args.queries,
            seed=args.seed,
            latent_dims=args.latent_dims,
        )
        shape = data_shape(base, args.seed)
        shape["genuine_cos_mean"] = genuine_cosine(base, owners)
        np.save(work / "queries.npy", queries)
        np.save(work / "owners.npy", owners)
        np.save(work / "query_owners.npy", query_owners)
        log("exact ground truth")
        truth = exact_topk(base, queries, K)
        np.save(work / "truth.npy", truth)
        log(
            f"building ours (M={params.connectivity}, efC={params.expansion_add}, "
            f"{params.dtype}, segment max {params.segment_max_vectors:,}, "
            f"workers {params.build_workers or 'one per core'})"
        )
        ours = build_ours(work, base, params)
        log(
            f"  {ours['build_s']:.1f}s ({ours['build_vectors_per_s']:,.0f} vectors/s), "
            f"{ours['segments']} segment(s)"
        )
        faiss_build = None
        if not args.no_faiss:
            log("building FAISS HNSWFlat")
            faiss_build = build_faiss(work, base, params.connectivity, params.expansion_add)
            log(f"  {faiss_build['build_s']:.1f}s")
        del base
        log("cold open + RSS (child)")
        opened = run_child(work, "open", args)
        log("latency sweep, ours and FAISS interleaved (child)")
        latency = run_child(work, "latency", args, "--rounds", str(args.rounds))
        compacted = None
        if not args.no_compact:
            log("delete + compaction (child)")
            compacted = run_child(work, "compact", args)
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)
    total_s = time.perf_counter() - started_all
    summary = summarise(args, params, ours, faiss_build, opened, latency, compacted)
    summary["bench_s"] = round(total_s, 1)
    summary["load_avg_1m"] = [round(load_start[0], 2), round(os.getloadavg()[0], 2)]
    print_table(summary, latency)
    details = {
        "ours_build": ours,
        "faiss_build": faiss_build,
        "open": opened,
        "latency": latency,
        "compact": compacted,
        "data": {"queries": args.queries, "latent_dims": args.latent_dims, **shape},
    }
    write_result("scale", summary, details)
    return 0


def summarise(  # noqa: PLR0917 - one call site
    args: argparse.Namespace,
    params: Any,
    ours: dict[str, Any],
    faiss_build: dict[str, Any] | None,
    opened: dict[str, Any],
    latency: dict[str, Any],
    compacted: dict[str, Any] | None,
) -> dict[str, Any]:
    ef = params.expansion_search
    head = next(row for row in latency["ours"] if row["ef"] == ef)
    summary: dict[str, Any] = {
        "faces": args.faces,
        "dims": args.dims,
        "dtype": params.dtype,
        "connectivity": params.connectivity,
        "expansion_add": params.expansion_add,
        "expansion_search": ef,
        "workers": params.build_workers,
        "segments": ours["segments"],
        "build_s": round(ours["build_s"], 1),
        "build_vectors_per_s": round(ours["build_vectors_per_s"]),
        "recall_at_10": round(head["recall_at_10"], 4),
        "identity_recall_at_10": round(head["identity_recall_at_10"], 4),
        "p50_ms": round(head["p50_ms"], 3),
        "p99_ms": round(head["p99_ms"], 3),
        "cpu_p50_ms": round(head["cpu_p50_ms"], 3),
        "rss_mb": round(opened["view_rss_mb"], 1),
        "cold_open_s": round(opened["view_cold_open_s"], 3),
        "cold_open_full_load_s": round(opened["load_cold_open_s"], 3),
        "warm_open_s": round(opened["view_warm_open_s"], 3),
        "warm_open_full_load_s": round(opened["load_warm_open_s"], 3),
        "rss_full_load_mb": round(opened["load_rss_mb"], 1),
        "index_file_mb": round(ours["index_file_mb"], 1),
    }
    raw = {row["ef"]: row for row in latency.get("raw", [])}
    if ef in raw:
        summary["usearch_raw_p50_ms"] = round(raw[ef]["p50_ms"], 3)
        summary["wrapper_overhead_cpu_ms"] = round(head["cpu_p50_ms"] - raw[ef]["cpu_p50_ms"], 3)
    cos = {row["ef"]: row for row in latency.get("ours_cos_kernel", [])}
    if ef in cos:
        summary["cos_kernel_p50_ms"] = round(cos[ef]["p50_ms"], 3)
        summary["cos_kernel_cpu_p50_ms"] = round(cos[ef]["cpu_p50_ms"], 3)
    if faiss_build is not None and "faiss" in latency:
        f_head = next(row for row in latency["faiss"] if row["ef"] == ef)
        summary.update(
            {
                "faiss_build_s": round(faiss_build["build_s"], 1),
                "faiss_recall_at_10": round(f_head["recall_at_10"], 4),
                "faiss_identity_recall_at_10": round(f_head["identity_recall_at_10"], 4),
                "faiss_p50_ms": round(f_head["p50_ms"], 3),
                "faiss_p99_ms": round(f_head["p99_ms"], 3),
                "faiss_cpu_p50_ms": round(f_head["cpu_p50_ms"], 3),
            }
        )
        for target in RECALL_TARGETS:
            mine = fastest_reaching(latency["ours"], target)
            theirs = fastest_reaching(latency["faiss"], target)
            key = f"equal_recall_{target}"
            summary[key] = {
                "ours": None if mine is None else _point(mine),
                "faiss": None if theirs is None else _point(theirs),
                "ratio_p50": None
                if mine is None or theirs is None
                else round(mine["p50_ms"] / theirs["p50_ms"], 2),
                "ratio_cpu_p50": None
                if mine is None or theirs is None
                else round(mine["cpu_p50_ms"] / theirs["cpu_p50_ms"], 2),
            }
    if compacted is not None:
        summary["compact_s"] = round(compacted["compact_s"], 1)
        summary["tombstoned_p50_ms"] = round(compacted["tombstoned_p50_ms"], 3)
    return summary


def _point(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "ef": row["ef"],
        "recall_at_10": round(row["recall_at_10"], 4),
        "p50_ms": round(row["p50_ms"], 3),
        "cpu_p50_ms": round(row["cpu_p50_ms"], 3),
    }


def print_table(summary: dict[str, Any], latency: dict[str, Any]) -> None:
    out = sys.stderr
    print(
        f"\n{summary['faces']:,} x {summary['dims']}-d {summary['dtype']}, "
        f"M={summary['connectivity']}, efC={summary['expansion_add']}, "
        f"{summary['segments']} segment(s); build {summary['build_s']}s; "
        f"cold open {summary['cold_open_s']}s; RSS {summary['rss_mb']} MB",
        file=out,
    )
    print("ef sweep (recall@10 / p50 ms / CPU p50 ms):", file=out)
    for system in ("ours", "ours_cos_kernel", "faiss"):
        if system in latency:
            cells = "  ".join(
                f"{r['ef']}: {r['recall_at_10']:.3f}/{r['p50_ms']:.2f}/{r['cpu_p50_ms']:.2f}"
                for r in latency[system]
            )
            print(f"  {system:15s} {cells}", file=out)
    for target in RECALL_TARGETS:
        row = summary.get(f"equal_recall_{target}")
        if row:
            print(f"  recall >= {target}: {row}", file=out)


if __name__ == "__main__":
    sys.exit(main())
