"""Index benchmark: our segmented USearch index vs exact numpy vs FAISS HNSW, same run.

    python -m tests.bench.index                      # default size, a few minutes here
    python -m tests.bench.index --vectors 1000000    # the product target size

Data: clustered synthetic 512-d embeddings shaped like face embeddings: many
identities, several noisy samples each (sample = centre + isotropic noise, so a
sample has cosine ~0.7 with its centre and ~0.5 with its siblings, ~0 with
strangers). Queries are *new* samples of indexed identities.

Phases (each latency phase runs in a fresh child process pinned to one core
with single-threaded BLAS/OpenMP, so numbers are one-core latencies and the
memory figure is the reader's own RSS, not the benchmark's data):

1. generate data; exact top-10 ground truth (numpy, all cores);
2. build our index through ``IndexWriter.add`` into a local-directory "bucket"
   (hashing, HNSW build on all cores, save, sha256, upload), per dtype;
3. build FAISS ``IndexHNSWFlat`` (inner product) with the same M/efConstruction;
4. children: cold open (fetch+verify+mmap vs full load), ef sweep of
   single-query latency and recall@10, RSS; exact brute force latency; FAISS.

Prints a table, writes bench-results/index.json, last line = one-line JSON summary.
Cold open here copies from a local directory; from GCS add the download time.
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

MODEL = "bench-synthetic@1"
DEFAULT_VECTORS = 100_000
EF_SWEEP = (16, 24, 32, 48, 64, 96, 128, 192, 256)
RECALL_TARGETS = (0.95, 0.98, 0.99)
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- data ----------------------------------------------------------------------------------------


def make_data(
    n: int, *, dims: int, per_identity: int, queries: int, seed: int, latent_dims: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Base vectors, queries and the identity of each (unit float32 vectors, made in chunks).

    Identity centres live mostly in a ``latent_dims``-dimensional subspace plus a
    full-rank residual; a sample is its centre plus isotropic noise. The constants
    are set from the published shape of ArcFace-class similarity distributions,
    not from recall: two samples of one person have cosine ~0.6, strangers
    ~0 +- 0.06. ``latent_dims=0`` makes centres isotropic in all 512 dimensions,
    the worst case for any graph index (every stranger equally far).
    """
    rng = np.random.default_rng(seed)
    identities = max(1, n // per_identity)

    def isotropic(rows: int) -> np.ndarray:
        return rng.standard_normal((rows, dims), dtype=np.float32) / np.float32(np.sqrt(dims))

    if latent_dims:
        basis, _ = np.linalg.qr(rng.standard_normal((dims, latent_dims)))
        z = rng.standard_normal((identities, latent_dims), dtype=np.float32)
        centres = (z / np.float32(np.sqrt(latent_dims))) @ basis.T.astype(np.float32)
        centres += 0.5 * isotropic(identities)
    else:
        centres = isotropic(identities)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = 0.82  # 1 / (1 + 0.82**2) = 0.6: cosine between two samples of one identity

    def samples(owner: np.ndarray) -> np.ndarray:
        out = centres[owner] + noise * isotropic(len(owner))
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    base = np.empty((n, dims), dtype=np.float32)
    owners = np.arange(n) % identities
    rng.shuffle(owners)
    for start in range(0, n, 100_000):
        base[start : start + 100_000] = samples(owners[start : start + 100_000])
    query_owners = rng.integers(0, identities, size=queries)
    return base, samples(query_owners), owners, query_owners


def data_shape(base: np.ndarray, seed: int) -> dict[str, float]:
    """Cosine statistics of the generated data, printed so the data is not a black box."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(base), 5000), rng.integers(0, len(base), 5000)
    sims = np.sum(base[a] * base[b], axis=1)
    return {"stranger_cos_mean": float(sims.mean()), "stranger_cos_std": float(sims.std())}


def genuine_cosine(base: np.ndarray, owners: np.ndarray) -> float:
    """Mean cosine between two samples of the same identity."""
    order = np.argsort(owners, kind="stable")
    same = owners[order][1:] == owners[order][:-1]
    first, second = order[:-1][same][:5000], order[1:][same][:5000]
    return float(np.mean(np.sum(base[first] * base[second], axis=1)))


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k by inner product (= cosine on unit vectors), chunked over the base."""
    best_sim = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_idx = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(base), 200_000):
        sims = queries @ base[start : start + 200_000].T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        cand_sim = np.concatenate([best_sim, np.take_along_axis(sims, idx, axis=1)], axis=1)
        cand_idx = np.concatenate([best_idx, idx + start], axis=1)
        keep = np.argsort(-cand_sim, axis=1)[:, :k]
        best_sim = np.take_along_axis(cand_sim, keep, axis=1)
        best_idx = np.take_along_axis(cand_idx, keep, axis=1)
    return best_idx


def recall_at_k(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    hits = sum(len(set(f[:k]) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (k * len(truth))


def identity_recall(found: list[list[int]], work: Path, k: int) -> float:
    """Share of the query person's indexed samples found in the top k (what users feel)."""
    owners = np.load(work / "owners.npy")
    query_owners = np.load(work / "query_owners.npy")
    per_identity = np.bincount(owners)
    got = [
        np.sum(owners[np.asarray(f[:k], dtype=np.int64)] == who) / min(k, per_identity[who])
        for f, who in zip(found, query_owners, strict=True)
    ]
    return float(np.mean(got))


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


# --- children (one core each) -----------------------------------------------------------------


def pin_to_one_core() -> int:
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def rss_mb() -> tuple[float, float]:
    import psutil

    from tests.bench.common import peak_rss_mb

    return psutil.Process().memory_info().rss / 2**20, peak_rss_mb()


def child_ours(work: Path, dtype: str, view: bool, efs: tuple[int, ...], k: int) -> dict[str, Any]:
    from facesearch.index.params import IndexParams
    from facesearch.index.reader import IndexReader
    from facesearch.storage.local.blob import LocalBlobStore

    pin_to_one_core()
    queries = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    cache = work / f"cache-{dtype}-{'view' if view else 'load'}"
    shutil.rmtree(cache, ignore_errors=True)
    store = LocalBlobStore(work / f"bucket-{dtype}")
    rss_before, _ = rss_mb()
    started = time.perf_counter()
    reader = IndexReader(store, cache_dir=cache, params=IndexParams(search_threads=1), view=view)
    cold_open_s = time.perf_counter() - started
    rss_open, _ = rss_mb()
    # a second open from the warm local cache: what a restarted instance with a disk pays
    started = time.perf_counter()
    IndexReader(store, cache_dir=cache, params=IndexParams(search_threads=1), view=view)
    warm_open_s = time.perf_counter() - started
    snapshot = reader._snapshot  # the raw usearch index, to separate our overhead
    raw_index = snapshot.segments[0].index
    result: dict[str, Any] = {
        "cold_open_s": cold_open_s,
        "warm_open_s": warm_open_s,
        "rss_after_open_mb": rss_open - rss_before,
        "segments": len(snapshot.segments),
        "sweep": [],
    }
    for ef in efs:
        for seg in snapshot.segments:
            seg.index.expansion_search = ef
        for q in queries[:50]:  # warm-up: page in the hot part of the graph
            reader.search_one(q, k)
        latencies, found = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = reader.search_one(q, k)
            latencies.append(time.perf_counter() - t0)
            found.append([int(h.face_id[1:]) for h in hits])
        raw = []
        for q in queries[:300]:
            t0 = time.perf_counter()
            raw_index.search(q, k, threads=1)
            raw.append(time.perf_counter() - t0)
        result["sweep"].append(
            {
                "ef": ef,
                "recall_at_10": recall_at_k(found, truth, k),
                "identity_recall": identity_recall(found, work, k),
                **percentiles(latencies),
                "usearch_raw_p50_ms": percentiles(raw)["p50_ms"],
            }
        )
    result["rss_mb"], result["peak_rss_mb"] = rss_mb()
    result["rss_mb"] -= rss_before
    return result


def child_exact(work: Path, k: int) -> dict[str, Any]:
    pin_to_one_core()
    base = np.load(work / "base.npy")
    queries = np.load(work / "queries.npy")
    latencies = []
    for q in queries[:30]:
        t0 = time.perf_counter()
        sims = base @ q
        top = np.argpartition(-sims, k)[:k]
        top[np.argsort(-sims[top])]
        latencies.append(time.perf_counter() - t0)
    return percentiles(latencies)


def child_faiss(work: Path, k: int) -> dict[str, Any]:
    import faiss

    pin_to_one_core()
    faiss.omp_set_num_threads(1)
    queries = np.load(work / "queries.npy")
    truth = np.load(work / "truth.npy")
    rss_before, _ = rss_mb()
    started = time.perf_counter()
    index = faiss.read_index(str(work / "faiss.index"))
    open_s = time.perf_counter() - started
    result: dict[str, Any] = {"open_s": open_s, "sweep": []}
    for ef in EF_SWEEP:
        index.hnsw.efSearch = ef
        for q in queries[:50]:
            index.search(q[None, :], k)
        latencies, found = [], []
        for q in queries:
            t0 = time.perf_counter()
            _, ids = index.search(q[None, :], k)
            latencies.append(time.perf_counter() - t0)
            found.append(ids[0].tolist())
        result["sweep"].append(
            {
                "ef": ef,
                "recall_at_10": recall_at_k(found, truth, k),
                "identity_recall": identity_recall(found, work, k),
                **percentiles(latencies),
            }
        )
    result["rss_mb"] = rss_mb()[0] - rss_before
    return result


def run_child(work: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, **SINGLE_THREAD_ENV}
    cmd = [sys.executable, "-m", "tests.bench.index", "--child", *args, "--workdir", str(work)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


# --- builds (all cores) --------------------------------------------------------------------------


def build_ours(work: Path, base: np.ndarray, dtype: str, m: int, ef_add: int) -> dict[str, Any]:
    from facesearch.index.params import IndexParams
    from facesearch.index.writer import IndexWriter
    from facesearch.storage.local.blob import LocalBlobStore

    bucket = work / f"bucket-{dtype}"
    shutil.rmtree(bucket, ignore_errors=True)
    params = IndexParams(
        dtype=dtype,  # type: ignore[arg-type]
        connectivity=m,
        expansion_add=ef_add,
        build_threads=0,
        auto_compact=False,
    )
    writer = IndexWriter(LocalBlobStore(bucket), cache_dir=work / f"wcache-{dtype}", params=params)
    face_ids = [f"f{i}" for i in range(len(base))]
    started = time.perf_counter()
    writer.add(face_ids, base, MODEL)
    seconds = time.perf_counter() - started
    manifest, _ = writer.read_manifest()
    assert manifest is not None
    return {
        "build_s": seconds,
        "build_vectors_per_s": len(base) / seconds,
        "index_file_mb": manifest.segments[0].index_bytes / 2**20,
        "sidecar_mb": manifest.segments[0].ids_bytes / 2**20,
    }


def build_faiss(work: Path, base: np.ndarray, m: int, ef_add: int) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_add
    started = time.perf_counter()
    index.add(base)
    seconds = time.perf_counter() - started
    faiss.write_index(index, str(work / "faiss.index"))
    return {
        "build_s": seconds,
        "build_vectors_per_s": len(base) / seconds,
        "index_file_mb": (work / "faiss.index").stat().st_size / 2**20,
    }


# --- summary -------------------------------------------------------------------------------------


def at_ef(sweep: list[dict[str, Any]], ef: int) -> dict[str, Any]:
    return next(row for row in sweep if row["ef"] == ef)


def fastest_reaching(sweep: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    ok = [row for row in sweep if row["recall_at_10"] >= target]
    return min(ok, key=lambda row: row["p50_ms"]) if ok else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=int, default=DEFAULT_VECTORS)
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--per-identity", type=int, default=5)
    parser.add_argument(
        "--latent-dims", type=int, default=64, help="identity subspace (0 = isotropic worst case)"
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--dtypes", default=None, help="comma list, first is the headline (default: settings)"
    )
    parser.add_argument("--connectivity", type=int, default=None, help="[M] (default: settings)")
    parser.add_argument(
        "--expansion-add", type=int, default=None, help="[efConstruction] (default: settings)"
    )
    parser.add_argument("--ef", type=int, default=None, help="headline ef (default: settings)")
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    k = 10

    if args.child:
        mode, *rest = args.child
        if mode == "ours":
            efs = EF_SWEEP if rest[2] == "sweep" else (int(rest[2]),)
            out = child_ours(args.workdir, rest[0], rest[1] == "view", efs, k)
        elif mode == "exact":
            out = child_exact(args.workdir, k)
        else:
            out = child_faiss(args.workdir, k)
        print(json.dumps(out))
        return 0

    from facesearch.config import load_settings

    settings = load_settings()
    default_ef = args.ef or settings.index.expansion_search
    args.connectivity = args.connectivity or settings.index.connectivity
    args.expansion_add = args.expansion_add or settings.index.expansion_add
    if default_ef not in EF_SWEEP:
        raise SystemExit(f"--ef must be one of {EF_SWEEP}")
    dtypes = (args.dtypes or settings.index.dtype).split(",")
    load_start = os.getloadavg()[0]
    owned = args.workdir is None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
        log(f"generating {args.vectors:,} x {args.dims} clustered vectors in {work}")
        base, queries, owners, query_owners = make_data(
            args.vectors,
            dims=args.dims,
            per_identity=args.per_identity,
            queries=args.queries,
            seed=args.seed,
            latent_dims=args.latent_dims,
        )
        shape = data_shape(base, args.seed)
        shape["genuine_cos_mean"] = genuine_cosine(base, owners)
        log(
            f"stranger cosine {shape['stranger_cos_mean']:.3f} +- {shape['stranger_cos_std']:.3f}"
            f", same identity {shape['genuine_cos_mean']:.3f}"
        )
        np.save(work / "base.npy", base)
        np.save(work / "queries.npy", queries)
        np.save(work / "owners.npy", owners)
        np.save(work / "query_owners.npy", query_owners)
        log("exact ground truth")
        started = time.perf_counter()
        truth = exact_topk(base, queries, k)
        truth_s = time.perf_counter() - started
        np.save(work / "truth.npy", truth)
        exact_identity = identity_recall(truth.tolist(), work, k)

        ours: dict[str, dict[str, Any]] = {}
        for dtype in dtypes:
            log(f"building ours ({dtype}, M={args.connectivity}, efC={args.expansion_add})")
            build = build_ours(work, base, dtype, args.connectivity, args.expansion_add)
            log(f"  {build['build_vectors_per_s']:,.0f} vectors/s; querying (mmap view)")
            viewed = run_child(work, "ours", dtype, "view", "sweep")
            log("  full-load open")
            loaded = run_child(work, "ours", dtype, "load", str(default_ef))
            ours[dtype] = {"build": build, "view": viewed, "load": loaded}
            shutil.rmtree(work / f"wcache-{dtype}", ignore_errors=True)
        del base
        log("exact brute force (one core)")
        exact = run_child(work, "exact")
        faiss_result: dict[str, Any] | None = None
        if not args.no_faiss:
            log("building FAISS HNSWFlat")
            faiss_build = build_faiss(
                work, np.load(work / "base.npy"), args.connectivity, args.expansion_add
            )
            log("querying FAISS (one core)")
            faiss_result = {"build": faiss_build, **run_child(work, "faiss")}
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)

    headline = ours[dtypes[0]]
    head = at_ef(headline["view"]["sweep"], default_ef)
    summary: dict[str, Any] = {
        "vectors": args.vectors,
        "dims": args.dims,
        "latent_dims": args.latent_dims,
        "dtype": dtypes[0],
        "connectivity": args.connectivity,
        "expansion_add": args.expansion_add,
        "expansion_search": default_ef,
        "recall_at_10": round(head["recall_at_10"], 4),
        "identity_recall_at_10": round(head["identity_recall"], 4),
        "p50_ms": round(head["p50_ms"], 3),
        "p99_ms": round(head["p99_ms"], 3),
        "build_vectors_per_s": round(headline["build"]["build_vectors_per_s"]),
        "rss_mb": round(headline["view"]["rss_mb"], 1),
        "rss_full_load_mb": round(headline["load"]["rss_mb"], 1),
        "cold_open_s": round(headline["view"]["cold_open_s"], 3),
        "cold_open_full_load_s": round(headline["load"]["cold_open_s"], 3),
        "exact_p50_ms": round(exact["p50_ms"], 2),
        "exact_identity_recall_at_10": round(exact_identity, 4),
    }
    if faiss_result is not None:
        f_head = at_ef(faiss_result["sweep"], default_ef)
        summary.update(
            {
                "faiss_p50_ms": round(f_head["p50_ms"], 3),
                "faiss_p99_ms": round(f_head["p99_ms"], 3),
                "faiss_recall_at_10": round(f_head["recall_at_10"], 4),
                "faiss_build_vectors_per_s": round(faiss_result["build"]["build_vectors_per_s"]),
                "faiss_rss_mb": round(faiss_result["rss_mb"], 1),
            }
        )
    equal_recall = {}
    for target in RECALL_TARGETS:
        row: dict[str, Any] = {}
        for name, sweep in [(f"ours_{d}", ours[d]["view"]["sweep"]) for d in dtypes] + (
            [("faiss", faiss_result["sweep"])] if faiss_result else []
        ):
            best = fastest_reaching(sweep, target)
            row[name] = (
                None if best is None else {"ef": best["ef"], "p50_ms": round(best["p50_ms"], 3)}
            )
        equal_recall[str(target)] = row
    summary["load_avg_1m"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]

    print_table(args, dtypes, ours, exact, faiss_result, default_ef, truth_s, equal_recall)
    details = {
        "ours": ours,
        "exact": exact,
        "faiss": faiss_result,
        "equal_recall": equal_recall,
        "ground_truth_s": truth_s,
        "data": {
            "per_identity": args.per_identity,
            "latent_dims": args.latent_dims,
            "queries": args.queries,
            "seed": args.seed,
            **shape,
        },
    }
    write_result("index", summary, details)
    return 0


def print_table(  # noqa: PLR0917 - one call site, a report printer
    args: argparse.Namespace,
    dtypes: list[str],
    ours: dict[str, dict[str, Any]],
    exact: dict[str, Any],
    faiss_result: dict[str, Any] | None,
    ef: int,
    truth_s: float,
    equal_recall: dict[str, Any],
) -> None:
    out = sys.stderr
    print(
        f"\n{args.vectors:,} x {args.dims}-d, M={args.connectivity}, efConstruction="
        f"{args.expansion_add}, ef={ef}, k=10, {args.queries} queries, one core per query",
        file=out,
    )
    columns = ("build v/s", 11), ("recall@10", 10), ("p50 ms", 9), ("p99 ms", 9), ("RSS MB", 9)
    header = f"{'system':<18}" + "".join(f"{name:>{width}}" for name, width in columns)
    print(header + f"{'open s':>9}", file=out)
    for dtype in dtypes:
        row = at_ef(ours[dtype]["view"]["sweep"], ef)
        v = ours[dtype]
        print(
            f"{'ours ' + dtype + ' mmap':<18}{v['build']['build_vectors_per_s']:>11,.0f}"
            f"{row['recall_at_10']:>10.4f}{row['p50_ms']:>9.3f}{row['p99_ms']:>9.3f}"
            f"{v['view']['rss_mb']:>9.0f}{v['view']['cold_open_s']:>9.2f}",
            file=out,
        )
        lrow = at_ef(v["load"]["sweep"], ef)
        print(
            f"{'ours ' + dtype + ' loaded':<18}{'':>11}{lrow['recall_at_10']:>10.4f}"
            f"{lrow['p50_ms']:>9.3f}{lrow['p99_ms']:>9.3f}{v['load']['rss_mb']:>9.0f}"
            f"{v['load']['cold_open_s']:>9.2f}",
            file=out,
        )
    if faiss_result:
        row = at_ef(faiss_result["sweep"], ef)
        print(
            f"{'faiss HNSWFlat':<18}{faiss_result['build']['build_vectors_per_s']:>11,.0f}"
            f"{row['recall_at_10']:>10.4f}{row['p50_ms']:>9.3f}{row['p99_ms']:>9.3f}"
            f"{faiss_result['rss_mb']:>9.0f}{faiss_result['open_s']:>9.2f}",
            file=out,
        )
    print(
        f"{'exact numpy':<18}{'':>11}{1.0:>10.4f}{exact['p50_ms']:>9.3f}{exact['p99_ms']:>9.3f}"
        f"   (ground truth on all cores took {truth_s:.1f}s)",
        file=out,
    )
    print("\nfastest ef reaching recall@10 target (p50 ms):", file=out)
    for target, row in equal_recall.items():
        cells = ", ".join(
            f"{name}: " + ("not reached" if v is None else f"{v['p50_ms']:.3f} (ef={v['ef']})")
            for name, v in row.items()
        )
        print(f"  >= {target}: {cells}", file=out)
    print("\nef sweep (ef: recall@10 vs exact / same-identity recall / p50 ms):", file=out)
    for dtype in dtypes:
        cells = " ".join(
            f"{r['ef']}:{r['recall_at_10']:.3f}/{r['identity_recall']:.3f}/{r['p50_ms']:.2f}"
            for r in ours[dtype]["view"]["sweep"]
        )
        print(f"  ours {dtype}: {cells}", file=out)
    if faiss_result:
        cells = " ".join(
            f"{r['ef']}:{r['recall_at_10']:.3f}/{r['identity_recall']:.3f}/{r['p50_ms']:.2f}"
            for r in faiss_result["sweep"]
        )
        print(f"  faiss:    {cells}", file=out)


if __name__ == "__main__":
    sys.exit(main())
