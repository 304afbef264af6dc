"""Face clustering into persons: quality, order independence, scale.

    python -m tests.bench.clustering [--dataset DIR] [--faces N] [--orders K]
                                     [--arrivals M] [--incremental-faces N2] [--sweep]

**Quality** on a labelled LFW-layout folder (default: the dev set, which the
defaults were tuned on — its figures are tuning figures, not the product's
accuracy): every face of every photo is embedded with the production pipeline and
clustered; the central face of each photo carries its folder's identity and is
scored (pairwise precision/recall, BCubed). Three systems on the same faces:

* ours, event-driven: faces arrive one event at a time in ``K`` shuffled orders
  (exact k-NN; the spread across orders is reported);
* ours, full re-cluster (the batch form of the same rule);
* scikit-learn DBSCAN over all embeddings at once with the same link threshold and
  min_samples (cosine), the reference; plus DBSCAN at the eps that scores best on
  these very labels (an oracle-tuned ceiling for plain density clustering).

**Scale** on synthetic identities calibrated on the labelled set's measured
genuine/impostor similarity distributions (``tests/bench/clustering_data.py``
explains the model and the fit; the fit is printed): ``N`` faces in a USearch HNSW
index (f32, M=16, efConstruction=64, ef=64 — built on both cores, not timed as part
of the re-cluster, since production re-clusters against the index it already has),
a full re-cluster into the in-memory reference store (k-NN of every face from the
index on both cores, the batch rule, id matching, chunked conditional writes), then
``M`` new faces arriving one event at a time on one core: per-face latency p50/p99.
DBSCAN runs on the same k-NN graph (sparse, precomputed) for the scale reference.
An event-driven run from an empty store over ``N2`` synthetic faces, in two orders,
shows incremental = batch at a larger scale.

The JSON summary line is printed last and written to bench-results/clustering.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from facesearch.people.engine import PeopleEngine
from facesearch.people.memory import MemoryFaceSource, MemoryNeighbourSearch, MemoryPeopleStore
from facesearch.people.ports import Neighbour
from facesearch.people.recluster import recluster
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import FaceInput
from tests.bench.clustering_data import (
    SynthModel,
    calibrate_cached,
    describe,
    group_into_photos,
    library_sizes,
    load_dataset,
    pair_similarities,
)
from tests.bench.clustering_metrics import Quality, evaluate
from tests.bench.common import RESULTS_DIR, ROOT, peak_rss_mb, write_result


def _dev_set() -> Path:
    """``shared/datasets/faces-dev`` beside the project (or beside a parent of a worktree)."""
    for folder in ROOT.parents:
        candidate = folder / "shared" / "datasets" / "faces-dev"
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "datasets" / "faces-dev"


DEFAULT_DATASET = _dev_set()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the systems ---------------------------------------------------------------------------------


def assignment_of(store: MemoryPeopleStore) -> dict[str, str | None]:
    persons = {}
    cursor = None
    while True:
        page = store.list_persons(roots_only=False, cursor=cursor, limit=5000)
        persons.update((p.person_id, p) for p in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    out: dict[str, str | None] = {}
    cursor = None
    while True:
        faces = store.list_faces(cursor=cursor, limit=5000)
        for f in faces.items:
            if f.person_id is None:
                out[f.face_id] = None
            else:
                p = persons[f.person_id]
                out[f.face_id] = p.merged_into or p.person_id
        if faces.next_cursor is None:
            return out
        cursor = faces.next_cursor


def event_driven(
    faces: Sequence[FaceInput],
    settings: PeopleSettings,
    order_seed: int,
    *,
    progress: bool = False,
    exact: bool = True,
) -> tuple[dict[str, str | None], list[float]]:
    """Faces arrive one face_added event at a time (exact or usearch neighbour search)."""
    dims = len(faces[0].embedding)
    search: MemoryNeighbourSearch | UsearchSearch = (
        MemoryNeighbourSearch(dims) if exact else UsearchSearch(dims, threads=1)
    )
    store, source = MemoryPeopleStore(), MemoryFaceSource()
    counter = itertools.count()
    engine = PeopleEngine(store, search, source, settings, new_id=lambda: f"p{next(counter)}")
    order = list(faces)
    random.Random(order_seed).shuffle(order)
    times = []
    for version, face in enumerate(
        tqdm(order, disable=not (progress and sys.stderr.isatty()), file=sys.stderr, leave=False), 1
    ):
        source.put(face)
        search.add([face.face_id], face.embedding[None, :])
        t = time.thread_time()
        engine.face_added([face.face_id], manifest_version=version)
        times.append((time.thread_time() - t) * 1000)
    return assignment_of(store), times


def batch(
    faces: Sequence[FaceInput], settings: PeopleSettings, knn: Any = None
) -> tuple[dict[str, str | None], Any]:
    store = MemoryPeopleStore()
    report = recluster(store, settings, faces=faces, knn=knn)
    return assignment_of(store), report


def dbscan(faces: Sequence[FaceInput], eps: float, min_samples: int) -> dict[str, str | None]:
    from sklearn.cluster import DBSCAN

    x = np.stack([f.embedding for f in faces])
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit_predict(x)
    return {
        f.face_id: (None if lab < 0 else str(lab)) for f, lab in zip(faces, labels, strict=True)
    }


def dbscan_on_graph(
    ids: list[str], neighbours: np.ndarray, sims: np.ndarray, eps: float, min_samples: int
) -> dict[str, str | None]:
    """DBSCAN over a precomputed sparse k-NN distance graph (what it costs at scale)."""
    from scipy.sparse import csr_matrix
    from sklearn.cluster import DBSCAN

    n, k = neighbours.shape
    rows = np.repeat(np.arange(n), k)
    cols = neighbours.reshape(-1)
    dist = np.clip(1.0 - sims.reshape(-1).astype(np.float64), 0.0, 2.0)
    keep = (cols >= 0) & (dist <= eps)
    graph = csr_matrix((dist[keep] + 1e-12, (rows[keep], cols[keep])), shape=(n, n))
    graph = graph.maximum(graph.T)
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(graph)
    return {f: (None if lab < 0 else str(lab)) for f, lab in zip(ids, labels, strict=True)}


# --- usearch as the scale neighbour search -------------------------------------------------------


class UsearchSearch:
    """NeighbourSearch over one usearch HNSW index (keys = positions in ``ids``)."""

    def __init__(self, dims: int, *, threads: int = 2) -> None:
        from usearch.index import Index

        self.index = Index(
            ndim=dims,
            metric="cos",
            dtype="f32",
            connectivity=16,
            expansion_add=64,
            expansion_search=64,
        )
        self.ids: list[str] = []
        self.threads = threads

    def add(
        self, face_ids: Sequence[str], vectors: np.ndarray, *, threads: int | None = None
    ) -> None:
        start = len(self.ids)
        self.ids.extend(face_ids)
        keys = np.arange(start, start + len(face_ids), dtype=np.uint64)
        self.index.add(
            keys, np.ascontiguousarray(vectors, dtype=np.float32), threads=threads or self.threads
        )

    def search(self, vectors: Any, k: int) -> list[list[Neighbour]]:
        q = np.asarray(vectors, dtype=np.float32).reshape(-1, self.index.ndim)
        matches = self.index.search(q, k, threads=1)
        keys = np.asarray(matches.keys).reshape(len(q), -1)
        dist = np.asarray(matches.distances).reshape(len(q), -1)
        counts = np.asarray(getattr(matches, "counts", [keys.shape[1]] * len(q))).reshape(-1)
        out = []
        for row in range(len(q)):
            n = int(counts[row])
            out.append(
                [
                    Neighbour(self.ids[int(key)], 1.0 - float(d))
                    for key, d in zip(keys[row, :n], dist[row, :n], strict=True)
                ]
            )
        return out

    def at_least(self, version: int | None) -> None:
        return None

    def knn_positions(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k-NN of indexed rows (self dropped), as positions, on all threads."""
        n = len(vectors)
        matches = self.index.search(
            np.ascontiguousarray(vectors, dtype=np.float32), k + 1, threads=self.threads
        )
        keys = np.asarray(matches.keys, dtype=np.int64).reshape(n, -1)
        sims = (1.0 - np.asarray(matches.distances, dtype=np.float32)).reshape(n, -1)
        counts = np.asarray(matches.counts).reshape(-1)
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        keys = np.where(valid, keys, -1)
        self_hit = keys == np.arange(n)[:, None]
        # drop self (or, if the graph missed it, the last column)
        drop = np.where(self_hit.any(axis=1), self_hit.argmax(axis=1), keys.shape[1] - 1)
        mask = np.ones_like(keys, dtype=bool)
        mask[np.arange(n), drop] = False
        out_keys = keys[mask].reshape(n, -1)[:, :k]
        out_sims = np.where(out_keys >= 0, sims[mask].reshape(n, -1)[:, :k], -np.inf).astype(
            np.float32
        )
        return out_keys, out_sims


# --- helpers -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


@dataclass
class Synthetic:
    faces: list[FaceInput]
    labels: dict[str, int]


def synthesize(model: SynthModel, n: int, seed: int) -> Synthetic:
    rng = np.random.default_rng(seed)
    sizes = library_sizes(n, rng)
    x, ident = model.sample(sizes, rng)
    order = rng.permutation(n)  # arrival order of a library is not by identity
    x, ident = x[order], ident[order]
    image = group_into_photos(ident, rng)
    quality = rng.uniform(0.3, 1.0, n)
    width = len(str(n))
    faces = [
        FaceInput(f"s{i:0{width}d}", f"photo{int(image[i])}", x[i], float(quality[i]), float(i))
        for i in range(n)
    ]
    return Synthetic(faces, {f.face_id: int(ident[i]) for i, f in enumerate(faces)})


def quality_line(name: str, q: Quality) -> str:
    return (
        f"  {name:<34} P {q.pairwise_precision:.4f}  R {q.pairwise_recall:.4f}  "
        f"BCubed F1 {q.bcubed_f1:.4f}  persons {q.persons:>6}  identities {q.identities:>6}  "
        f"unassigned {q.unassigned}"
    )


# --- the sweep that chose the defaults -----------------------------------------------------------


SWEEP_GRID: dict[str, list[Any]] = {
    "link_similarity": [0.92, 0.93, 0.94],
    "join_similarity": [0.945, 0.95, 0.955],
    "merge_similarity": [0.955, 0.96, 0.965],
    "width_min_similarity": [0.96],
}


def sweep(
    dataset_faces: list[FaceInput],
    dataset_labels: dict[str, str],
    synthetic: Synthetic,
    knn: Callable[..., Any],
    base: PeopleSettings,
) -> list[dict[str, Any]]:
    from facesearch.people.batch import BatchFaces, cluster, knn_exact
    from facesearch.people.representative import face_weight

    def run(
        faces: list[FaceInput], labels: dict[str, Any], neighbours: Any, s: PeopleSettings
    ) -> Quality:
        codes: dict[str, int] = {}
        images = np.array([codes.setdefault(f.image_id, len(codes)) for f in faces], dtype=np.int64)
        x = np.stack([f.embedding for f in faces])
        w = np.array([face_weight(f.quality, s) for f in faces])
        result = cluster(BatchFaces(x, images, w), neighbours[0], neighbours[1], s)
        return evaluate(
            {
                f.face_id: (None if lab < 0 else int(lab))
                for f, lab in zip(faces, result.labels, strict=True)
            },
            labels,
        )

    dev_x = np.stack([f.embedding for f in dataset_faces])
    dev_knn = knn_exact(dev_x, base.neighbours_k)
    syn_knn = knn(np.stack([f.embedding for f in synthetic.faces]), base.neighbours_k)
    rows = []
    keys = list(SWEEP_GRID)
    for values in itertools.product(*SWEEP_GRID.values()):
        s = base.model_copy(update=dict(zip(keys, values, strict=True)))
        dev = run(dataset_faces, dataset_labels, dev_knn, s)
        syn = run(synthetic.faces, synthetic.labels, syn_knn, s)
        row = {
            **dict(zip(keys, values, strict=True)),
            "dev": dev.as_dict(),
            "synthetic": syn.as_dict(),
        }
        rows.append(row)
        log(
            "  "
            + " ".join(f"{k[:5]}={v}" for k, v in zip(keys, values, strict=True))
            + f" | dev P {dev.pairwise_precision:.4f} R {dev.pairwise_recall:.4f}"
            + f" F {dev.bcubed_f1:.4f} | synthetic P {syn.pairwise_precision:.4f}"
            + f" R {syn.pairwise_recall:.4f} F {syn.bcubed_f1:.4f}"
        )
    return rows


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", type=Path, default=DEFAULT_DATASET, help="LFW-layout folder (identity/photo)"
    )
    parser.add_argument(
        "--faces", type=int, default=100_000, help="synthetic faces for the scale run"
    )
    parser.add_argument(
        "--orders", type=int, default=5, help="shuffled arrival orders for the quality run"
    )
    parser.add_argument(
        "--arrivals", type=int, default=2000, help="faces timed one event at a time"
    )
    parser.add_argument(
        "--incremental-faces",
        type=int,
        default=20_000,
        help="synthetic event-driven run size (0 = skip)",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="also run the parameter sweep behind the defaults"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    settings = PeopleSettings()
    details: dict[str, Any] = {"settings": settings.model_dump()}
    log(f"settings: {settings.model_dump()}")

    # --- quality on labelled photos --------------------------------------------------------------
    t0 = time.perf_counter()
    data = load_dataset(args.dataset)
    log(
        f"{args.dataset}: {data.photos} photos, {len(data.faces)} faces, {len(data.labels)}"
        f" labelled, model {data.model}, undetected {len(data.undetected)}"
        f" ({time.perf_counter() - t0:.1f} s)"
    )
    labelled = [f for f in data.faces if f.face_id in data.labels]
    gen, imp = pair_similarities(
        np.stack([f.embedding for f in labelled]).astype(np.float64),
        [data.labels[f.face_id] for f in labelled],
    )
    details["dataset"] = {
        "path": str(args.dataset),
        "photos": data.photos,
        "faces": len(data.faces),
        "labelled": len(data.labels),
        "undetected_photos": data.undetected,
        "model": data.model,
        "genuine": describe(gen),
        "impostor": describe(imp),
    }
    log("quality (labelled faces only):")
    runs = []
    for k in range(args.orders):
        assignment, _ = event_driven(data.faces, settings, args.seed * 1000 + k)
        runs.append((assignment, evaluate(assignment, data.labels)))
        log(quality_line(f"ours, event-driven, order {k + 1}", runs[-1][1]))
    partitions = {
        frozenset(
            frozenset(f for f, p in a.items() if p == person)
            for person in set(a.values())
            if person is not None
        )
        for a, _ in runs
    }
    qs = [q for _, q in runs]
    mean = {
        key: float(np.mean([getattr(q, key) for q in qs]))
        for key in ("pairwise_precision", "pairwise_recall", "bcubed_f1", "persons", "unassigned")
    }
    spread = {
        key: float(max(getattr(q, key) for q in qs) - min(getattr(q, key) for q in qs))
        for key in ("pairwise_precision", "pairwise_recall", "bcubed_f1", "persons", "unassigned")
    }
    batch_assignment, _ = batch(data.faces, settings)
    q_batch = evaluate(batch_assignment, data.labels)
    log(quality_line("ours, full re-cluster", q_batch))
    q_db = evaluate(
        dbscan(data.faces, 1.0 - settings.link_similarity, settings.min_samples), data.labels
    )
    log(
        quality_line(
            f"DBSCAN eps={1 - settings.link_similarity:.3f} ms={settings.min_samples}", q_db
        )
    )
    best_eps, best_q = 0.0, None
    for eps in np.arange(0.02, 0.2001, 0.005):
        q = evaluate(dbscan(data.faces, float(eps), settings.min_samples), data.labels)
        if best_q is None or q.bcubed_f1 > best_q.bcubed_f1:
            best_eps, best_q = float(eps), q
    assert best_q is not None
    log(quality_line(f"DBSCAN oracle eps={best_eps:.3f}", best_q))
    details["quality"] = {
        "event_driven": [q.as_dict() for q in qs],
        "event_driven_mean": mean,
        "order_spread": spread,
        "distinct_partitions_across_orders": len(partitions),
        "recluster": q_batch.as_dict(),
        "dbscan": q_db.as_dict(),
        "dbscan_oracle": {"eps": best_eps, **best_q.as_dict()},
    }

    # --- synthetic identities --------------------------------------------------------------------
    t0 = time.perf_counter()
    model, fit = calibrate_cached(gen, imp, dims=len(data.faces[0].embedding), seed=args.seed)
    details["synthetic_model"] = fit
    log(f"synthetic model {fit['model']} fitted in {time.perf_counter() - t0:.1f} s:")
    for kind in ("genuine", "impostor"):
        m, s = fit["measured"][kind], fit["synthetic"][kind]  # type: ignore[index]
        log(
            f"  {kind:<8} measured mean {m['mean']} std {m['std']} q01 {m['q01']} q99 {m['q99']}"
            f" | synthetic mean {s['mean']} std {s['std']} q01 {s['q01']} q99 {s['q99']}"
        )

    n = args.faces
    total = n + args.arrivals
    synthetic = synthesize(model, total, args.seed)
    base_faces, arrivals = synthetic.faces[:n], synthetic.faces[n:]
    base_labels = {f.face_id: synthetic.labels[f.face_id] for f in base_faces}
    identities = len(set(base_labels.values()))
    log(f"scale: {n} faces of {identities} synthetic identities, {args.arrivals} arrivals")
    dims = len(base_faces[0].embedding)
    search = UsearchSearch(dims)
    t0 = time.perf_counter()
    search.add([f.face_id for f in base_faces], np.stack([f.embedding for f in base_faces]))
    build_s = time.perf_counter() - t0
    log(f"  usearch index of {n}: {build_s:.1f} s (2 threads)")
    knn_cache: dict[str, Any] = {}

    def knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert len(x) == n, "re-cluster order must be the index order"
        result = search.knn_positions(x, k)
        knn_cache["graph"] = result
        return result

    store = MemoryPeopleStore()
    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    report = recluster(store, settings, faces=base_faces, knn=knn)
    recluster_s = time.perf_counter() - t0
    recluster_cpu_s = time.process_time() - c0
    load_after = os.getloadavg()
    assignment = assignment_of(store)
    q_scale = evaluate(assignment, base_labels)
    log(
        f"  re-cluster {recluster_s:.1f} s, CPU {recluster_cpu_s:.1f} s (all threads)"
        f" ({', '.join(f'{k} {v:.1f}' for k, v in report.seconds.items())}),"
        f" load average {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    log(quality_line("ours, full re-cluster (synthetic)", q_scale))
    neighbours, sims = knn_cache["graph"]
    t0 = time.perf_counter()
    q_scale_db = evaluate(
        dbscan_on_graph(
            [f.face_id for f in base_faces],
            neighbours,
            sims,
            1.0 - settings.link_similarity,
            settings.min_samples,
        ),
        base_labels,
    )
    log(
        quality_line("DBSCAN on the same k-NN graph", q_scale_db)
        + f"  ({time.perf_counter() - t0:.1f} s)"
    )

    source = MemoryFaceSource(base_faces)
    engine = PeopleEngine(store, search, source, settings)
    latencies = []
    cpu_latencies = []
    actions: dict[str, int] = {}
    for face in tqdm(
        arrivals, desc="arrivals", file=sys.stderr, leave=False, disable=not sys.stderr.isatty()
    ):
        source.put(face)
        search.add([face.face_id], face.embedding[None, :], threads=1)
        t, c = time.perf_counter(), time.thread_time()
        outcomes = engine.face_added([face.face_id])
        latencies.append((time.perf_counter() - t) * 1000)
        cpu_latencies.append((time.thread_time() - c) * 1000)
        actions[outcomes[0].action] = actions.get(outcomes[0].action, 0) + 1
    arrival_labels = {f.face_id: synthetic.labels[f.face_id] for f in synthetic.faces}
    q_after = evaluate(assignment_of(store), arrival_labels)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    cpu50, cpu99 = percentile(cpu_latencies, 50), percentile(cpu_latencies, 99)
    log(
        f"  per-face assignment at {n}: p50 {p50:.2f} ms, p99 {p99:.2f} ms,"
        f" mean {np.mean(latencies):.2f} ms; CPU p50 {cpu50:.2f} ms, p99 {cpu99:.2f} ms ({actions})"
    )
    log(quality_line("after the arrivals (all faces)", q_after))
    details["scale"] = {
        "faces": n,
        "identities": identities,
        "index": {
            "kind": "usearch HNSW f32 M=16 efC=64 ef=64",
            "build_s": round(build_s, 2),
            "build_threads": 2,
        },
        "recluster_s": round(recluster_s, 2),
        "recluster_cpu_s": round(recluster_cpu_s, 2),
        "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
        "recluster_phases_s": {k: round(v, 2) for k, v in report.seconds.items()},
        "recluster": q_scale.as_dict(),
        "dbscan_same_graph": q_scale_db.as_dict(),
        "arrivals": len(arrivals),
        "assign_cpu_ms": {"p50": round(cpu50, 3), "p99": round(cpu99, 3)},
        "assign_ms": {
            "p50": round(p50, 3),
            "p99": round(p99, 3),
            "mean": round(float(np.mean(latencies)), 3),
            "max": round(max(latencies), 3),
        },
        "arrival_actions": actions,
        "after_arrivals": q_after.as_dict(),
    }

    # --- event-driven from scratch at a larger scale ---------------------------------------------
    incremental: dict[str, Any] = {}
    if args.incremental_faces:
        m = args.incremental_faces
        small = synthesize(model, m, args.seed + 7)
        results = []
        for order in range(2):
            t0 = time.perf_counter()
            a, times = event_driven(small.faces, settings, order, progress=True, exact=False)
            q = evaluate(a, small.labels)
            results.append((a, q, times))
            log(
                quality_line(f"ours, event-driven {m} (order {order + 1})", q)
                + f"  ({time.perf_counter() - t0:.0f} s, CPU p50 {percentile(times, 50):.2f} ms)"
            )
        b, _ = batch(small.faces, settings)
        qb = evaluate(b, small.labels)
        log(quality_line(f"ours, re-cluster {m}", qb))
        incremental = {
            "faces": m,
            "orders": [q.as_dict() for _, q, _ in results],
            "bcubed_f1_spread": round(abs(results[0][1].bcubed_f1 - results[1][1].bcubed_f1), 4),
            "recluster": qb.as_dict(),
            "assign_ms_p50": round(percentile(results[0][2], 50), 3),
        }
        details["synthetic_event_driven"] = incremental

    if args.sweep:
        log("sweep (batch rule; dev set and the synthetic scale set):")
        details["sweep"] = sweep(
            data.faces,
            data.labels,
            Synthetic(base_faces, base_labels),
            lambda x, k: knn_cache["graph"],
            settings,
        )
        (RESULTS_DIR / "clustering-sweep.json").write_text(json.dumps(details["sweep"], indent=1))

    rss = peak_rss_mb()
    summary = {
        "pairwise_precision": round(mean["pairwise_precision"], 4),
        "pairwise_recall": round(mean["pairwise_recall"], 4),
        "bcubed_f1": round(mean["bcubed_f1"], 4),
        "persons": round(mean["persons"], 1),
        "identities": qs[0].identities,
        "unassigned": round(mean["unassigned"], 1),
        "order_spread": round(spread["bcubed_f1"], 4),
        "order_spread_persons": spread["persons"],
        "dataset_faces": len(data.faces),
        "dbscan_pairwise_precision": round(q_db.pairwise_precision, 4),
        "dbscan_pairwise_recall": round(q_db.pairwise_recall, 4),
        "dbscan_bcubed_f1": round(q_db.bcubed_f1, 4),
        "recluster_bcubed_f1": round(q_batch.bcubed_f1, 4),
        "faces": n,
        "assign_p50_ms": round(p50, 3),
        "assign_p99_ms": round(p99, 3),
        "recluster_s": round(recluster_s, 2),
        "recluster_cpu_s": round(recluster_cpu_s, 2),
        "assign_cpu_p50_ms": round(cpu50, 3),
        "assign_cpu_p99_ms": round(cpu99, 3),
        "load_average": round(load_before[0], 2),
        "index_build_s": round(build_s, 2),
        "synthetic_pairwise_precision": round(q_scale.pairwise_precision, 4),
        "synthetic_pairwise_recall": round(q_scale.pairwise_recall, 4),
        "synthetic_dbscan_pairwise_precision": round(q_scale_db.pairwise_precision, 4),
        "synthetic_dbscan_pairwise_recall": round(q_scale_db.pairwise_recall, 4),
        "peak_rss_mb": round(rss, 1),
    }
    if incremental:
        summary["synthetic_event_driven_faces"] = incremental["faces"]
        summary["synthetic_event_driven_bcubed_f1"] = incremental["orders"][0]["bcubed_f1"]
        summary["synthetic_order_spread"] = incremental["bcubed_f1_spread"]
    write_result("clustering", summary, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
