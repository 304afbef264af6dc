"""Collections benchmark: many small collections vs one big one, same faces, same run.

    python -m tests.bench.collections                          # 100 x 10k vs 1 x 1M
    python -m tests.bench.collections --collections 20 --per-collection 5000   # quick

Both layouts hold the same synthetic 128-d face embeddings (the shape of
``tests.bench.index``'s data: identities with several noisy samples each),
built through ``IndexWriter.add`` into the embedded (local directory) index
store, exactly as the indexer writes them, one index per collection.

Measured, each in a fresh child process pinned to single-threaded BLAS/OpenMP
(so latencies are one-core numbers and memory is the query process's own):

* ``p50_ms`` / ``p99_ms`` — top-10 search latency through the query service's
  per-collection hub (``QueryService.collection(id).index``) with every
  collection hot, queries spread over random collections; ``single_*`` the same
  queries against the one 1M-face collection;
* ``cold_open_s`` — median time of a collection's first search after it was
  evicted (manifest read, segments copied from the store, verified, mmapped);
* ``rss_mb`` — peak RSS of a query process that searches every collection
  round-robin with ``open_index_budget_mb`` set to a quarter of the total index
  size (the LRU evicts), beside ``rss_mb_unbounded`` with all of them kept open;
* ``cross_collection_leaks`` — hits, over every query, whose face belongs to
  another collection than the one searched (index level), plus leaks through the
  signed HTTP API on collections that also hold records;
* ``erase_leftovers`` — after erasing ``--erase`` collections through
  ``EraseJob`` (the path ``DELETE /v1/collections/{id}`` takes), what an
  independent scan still finds: metadata records, index files, crops, cache files.

Prints a table, writes bench-results/collections.json; the last line is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.common import write_result
from tests.bench.index import SINGLE_THREAD_ENV, make_data

DIMS = 128
PER_IDENTITY = 5
K = 10


def _settings(data_dir: Path, **overrides: Any) -> Any:
    from facesearch.config import load_settings

    return load_settings(
        data_dir=data_dir,
        index_auto_compact=False,
        index_refresh_interval_s=3600.0,
        **overrides,
    )


def _collection_ids(n: int) -> list[str]:
    return [f"c{i:03d}" for i in range(n)]


# --- build ---------------------------------------------------------------------------------------


def build(work: Path, *, collections: int, per_collection: int, queries: int, seed: int) -> dict:
    """Both layouts on disk; returns build timings. Face ids are ``<collection>-<row>``."""
    from facesearch.backends.local import LocalBackend
    from facesearch.storage.catalog import CollectionRecord

    total = collections * per_collection
    base, query_vectors, owners, query_owners = make_data(
        total, dims=DIMS, per_identity=PER_IDENTITY, queries=queries, seed=seed, latent_dims=64
    )
    np.save(work / "queries.npy", query_vectors)
    ids = _collection_ids(collections)
    model = _model_id()
    timings: dict[str, float] = {}

    many = LocalBackend(_settings(work / "many"))
    catalog = many.catalog()
    start = time.perf_counter()
    for n, cid in enumerate(ids):
        catalog.create_collection(CollectionRecord(cid))
        rows = slice(n * per_collection, (n + 1) * per_collection)
        face_ids = [f"{cid}-{r}" for r in range(rows.start, rows.stop)]
        many.index_writer(collection_id=cid).add(face_ids, base[rows], model)
        _progress("build many", n + 1, collections)
    timings["build_many_s"] = time.perf_counter() - start

    one = LocalBackend(_settings(work / "one"))
    start = time.perf_counter()
    writer = one.index_writer()
    for chunk in range(0, total, 100_000):
        rows = slice(chunk, min(total, chunk + 100_000))
        writer.add([f"default-{r}" for r in range(rows.start, rows.stop)], base[rows], model)
        _progress("build one", rows.stop, total)
    timings["build_one_s"] = time.perf_counter() - start
    del owners, query_owners
    return timings


def _model_id() -> str:
    """The deployment's embedder id: the query service opens indexes of that model only."""
    from facesearch.config import load_settings
    from facesearch.vision.pipeline import FacePipeline

    return str(FacePipeline(load_settings()).embedder.model_id)


def _progress(what: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{what}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr)
    elif done == total or done % max(1, total // 10) == 0:
        print(f"{what}: {done}/{total}", file=sys.stderr)


# --- children (one measurement each, fresh process) ---------------------------------------------


def _query_service(data_dir: Path, **overrides: Any) -> Any:
    from facesearch.backends.local import LocalBackend
    from facesearch.backends.services import query_service

    return query_service(LocalBackend(_settings(data_dir, **overrides)))


def child_latency(work: Path, layout: str, collections: int, rounds: int) -> dict[str, Any]:
    """All collections opened first (hot), then timed queries over random collections."""
    queries = np.load(work / "queries.npy")
    ids = _collection_ids(collections) if layout == "many" else ["default"]
    service = _query_service(
        work / layout, open_collections_max=max(1, len(ids)), open_index_budget_mb=1_000_000
    )
    for cid in ids:
        service.collection(cid).index.reader.search(queries[:1], K)
    rng = np.random.default_rng(7)
    picks = rng.integers(0, len(ids), size=len(queries) * rounds)
    times: list[float] = []
    leaks = 0
    for n, pick in enumerate(picks):
        cid = ids[pick]
        q = queries[n % len(queries)][None, :]
        t = time.perf_counter()
        hits = service.collection(cid).index.reader.search(q, K)[0]
        times.append(time.perf_counter() - t)
        prefix = f"{cid}-"
        leaks += sum(1 for h in hits if not h.face_id.startswith(prefix))
    ms = np.asarray(times) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "queries": len(times),
        "leaks": leaks,
    }


def child_cold(work: Path, collections: int, samples: int) -> dict[str, Any]:
    """First search of a collection that is not open: open + map + search."""
    queries = np.load(work / "queries.npy")
    ids = _collection_ids(collections)[:samples]
    service = _query_service(work / "many", open_collections_max=1)
    service.collection("default")  # something else open, so each id below is evicted first
    opens = []
    for cid in ids:
        t = time.perf_counter()
        service.collection(cid).index.reader.search(queries[:1], K)
        opens.append(time.perf_counter() - t)
    return {"cold_open_s": float(np.median(opens)), "cold_open_max_s": float(np.max(opens))}


def child_rss(work: Path, collections: int, budget_mb: int | None) -> dict[str, Any]:
    """Round-robin over every collection; peak RSS with or without an index budget."""
    from tests.bench.common import peak_rss_mb

    queries = np.load(work / "queries.npy")
    index_root = work / "many" / "index" / "collections"
    # collections with an index (a rerun on kept data skips those the erase check removed)
    ids = [c for c in _collection_ids(collections) if (index_root / c / "manifest.json").exists()]
    overrides: dict[str, Any] = {"open_collections_max": len(ids)}
    overrides["open_index_budget_mb"] = budget_mb if budget_mb is not None else 1_000_000
    service = _query_service(work / "many", **overrides)
    baseline = peak_rss_mb()
    for n in range(len(ids) * 3):
        service.collection(ids[n % len(ids)]).index.reader.search(queries[n % len(queries)], K)
    return {
        "rss_mb": peak_rss_mb(),
        "rss_before_mb": baseline,
        "open_at_end": len(service.open_collections()),
    }


def run_child(work: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, **SINGLE_THREAD_ENV}
    out = subprocess.run(
        [sys.executable, "-m", "tests.bench.collections", "--child", str(work), *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- isolation through the API and erase ---------------------------------------------------------


def api_leaks(work: Path, collections: list[str], faces_each: int) -> dict[str, int]:
    """Records + index in a few collections; signed searches in each must stay inside it."""
    from facesearch.auth.keys import StaticKeyRing
    from facesearch.backends.local import LocalBackend
    from facesearch.backends.services import query_app
    from facesearch.storage.catalog import CollectionRecord
    from facesearch.storage.metadata import FaceRecord, ImageRecord, ImageStatus, embedding_bytes
    from tests.support.api import KEY, SignedClient

    backend = LocalBackend(_settings(work / "api")).override(
        keyring=StaticKeyRing({KEY.key_id: KEY.secret})
    )
    model = _model_id()
    rng = np.random.default_rng(11)
    for cid in collections:
        backend.catalog().create_collection(CollectionRecord(cid))
        store = backend.metadata(cid)
        vectors = rng.standard_normal((faces_each, DIMS)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = []
        for n, vector in enumerate(vectors):
            image_id = f"{cid}-img{n}"
            store.put_image(
                ImageRecord(image_id, f"bench://{image_id}", status=ImageStatus.DONE, model=model)
            )
            face = FaceRecord(
                face_id=f"{image_id}-0",
                image_id=image_id,
                face_index=0,
                bbox=(0.0, 0.0, 1.0, 1.0),
                landmarks=((0.0, 0.0),) * 5,
                det_score=1.0,
                embedding=embedding_bytes(vector),
                model=model,
            )
            store.put_faces(image_id, [face])
            ids.append(face.face_id)
        backend.index_writer(collection_id=cid).add(ids, vectors, model)
    client = SignedClient(query_app(backend))
    leaks = searches = 0
    probes = rng.standard_normal((20, DIMS)).astype(np.float32)
    for cid in collections:
        for probe in probes:
            body = {"embedding": probe.tolist(), "k": 50, "threshold": -1}
            response = client.post(f"/v1/collections/{cid}/search", json_body=body)
            assert response.status_code == 200, response.get_data(as_text=True)
            matches = response.get_json()["faces"][0]["matches"]
            leaks += sum(1 for m in matches if not m["face_id"].startswith(f"{cid}-"))
            searches += 1
    return {"api_leaks": leaks, "api_searches": searches}


def erase_check(work: Path, collections: list[str]) -> dict[str, Any]:
    """Erase through EraseJob, then scan the store, the index files and the caches ourselves."""
    from facesearch.backends.local import LocalBackend
    from facesearch.storage.metadata import collection_prefix

    backend = LocalBackend(_settings(work / "many"))
    reports = []
    start = time.perf_counter()
    for cid in collections:
        # open it first, so the erase has a cached copy of its segments to remove as well
        backend.index_reader(collection_id=cid)
        reports.append(backend.erase_job().run(cid))
    seconds = time.perf_counter() - start
    leftovers = 0
    for cid in collections:
        counts = backend.metadata(cid).counts()
        leftovers += counts.images + counts.faces + backend.people(cid).counts().records
        for root in (
            Path(backend.index_location(cid)),
            backend.index_cache_dir(cid),
            backend.settings.data_dir / "crops" / collection_prefix(cid),
        ):
            if root.exists():
                leftovers += sum(
                    1 for p in root.rglob("*") if p.is_file() and ".blobstore" not in p.parts
                )
    return {
        "erased": len(collections),
        "erase_leftovers": leftovers,
        "erase_s_each": seconds / max(1, len(collections)),
        "job_reported_leftovers": sum(sum(r["leftovers"].values()) for r in reports),
        "removed_index_objects": sum(r["removed"]["index_objects"] for r in reports),
    }


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collections", type=int, default=100)
    parser.add_argument("--per-collection", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the queries")
    parser.add_argument("--cold-samples", type=int, default=10)
    parser.add_argument("--erase", type=int, default=5, help="collections erased and scanned")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, help="keep the data here (default: a temp dir)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--what", help=argparse.SUPPRESS)
    parser.add_argument("--budget-mb", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        if args.what in ("many", "one"):
            result = child_latency(args.child, args.what, args.collections, args.rounds)
        elif args.what == "cold":
            result = child_cold(args.child, args.collections, args.cold_samples)
        else:
            result = child_rss(args.child, args.collections, args.budget_mb)
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-collections-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        common = ["--collections", str(args.collections), "--rounds", str(args.rounds)]
        timings = build(
            work,
            collections=args.collections,
            per_collection=args.per_collection,
            queries=args.queries,
            seed=args.seed,
        )
        many = run_child(work, "--what", "many", *common)
        one = run_child(work, "--what", "one", *common)
        cold = run_child(work, "--what", "cold", *common, "--cold-samples", str(args.cold_samples))
        index_mb = sum(p.stat().st_size for p in (work / "many" / "index").rglob("*.usearch")) / (
            1024 * 1024
        )
        budget = max(1, int(index_mb / 4))
        bounded = run_child(work, "--what", "rss", *common, "--budget-mb", str(budget))
        unbounded = run_child(work, "--what", "rss", *common)
        api = api_leaks(work, ["api-a", "api-b", "api-c"], faces_each=200)
        erased = erase_check(work, _collection_ids(args.collections)[: args.erase])

    summary = {
        "collections": args.collections,
        "faces": args.collections * args.per_collection,
        "p50_ms": round(many["p50_ms"], 3),
        "p99_ms": round(many["p99_ms"], 3),
        "single_p50_ms": round(one["p50_ms"], 3),
        "single_p99_ms": round(one["p99_ms"], 3),
        "cold_open_s": round(cold["cold_open_s"], 4),
        "rss_mb": round(bounded["rss_mb"], 1),
        "rss_mb_unbounded": round(unbounded["rss_mb"], 1),
        "index_budget_mb": budget,
        "index_mb": round(index_mb, 1),
        "cross_collection_leaks": many["leaks"] + one["leaks"] + api["api_leaks"],
        "erase_leftovers": erased["erase_leftovers"],
    }
    details = {
        "many": many,
        "one": one,
        "cold": cold,
        "rss_bounded": bounded,
        "rss_unbounded": unbounded,
        "api": api,
        "erase": erased,
        "build": timings,
        "per_collection": args.per_collection,
        "queries": args.queries,
    }
    rows = [
        ("layout", "p50 ms", "p99 ms"),
        (
            f"{args.collections} x {args.per_collection}",
            f"{many['p50_ms']:.3f}",
            f"{many['p99_ms']:.3f}",
        ),
        (f"1 x {summary['faces']}", f"{one['p50_ms']:.3f}", f"{one['p99_ms']:.3f}"),
    ]
    for row in rows:
        print(f"{row[0]:<20} {row[1]:>10} {row[2]:>10}", file=sys.stderr)
    print(
        f"cold open {cold['cold_open_s']:.3f} s; RSS {bounded['rss_mb']:.0f} MB with a"
        f" {budget} MB budget ({bounded['open_at_end']} open) vs {unbounded['rss_mb']:.0f} MB"
        f" unbounded; leaks {summary['cross_collection_leaks']}; erase leftovers"
        f" {erased['erase_leftovers']}",
        file=sys.stderr,
    )
    write_result("collections", summary, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
