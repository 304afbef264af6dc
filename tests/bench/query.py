"""Query API benchmark: a local server with >= 100k faces, driven over loopback.

Builds a collection of real faces (the shipped photos, through the real
pipeline) plus synthetic identities (clustered unit vectors, the embedder's
dimension) to reach ``--faces``, with a metadata record per face and the
segmented index. Starts ``facesearch serve`` in a child process (so the
client's work does not share its interpreter), then drives it at each
connection level with that many signing client threads (one keep-alive
connection each):

* search-by-embedding and search-by-face-id (no detection) at every level,
* search-by-image (detection + liveness + embedding) at one level,

reporting p50/p99 end-to-end latency, requests/s, errors, and where server time
goes (signature check, decode, detect, embed, ANN search, metadata) from each
response's ``Server-Timing`` header.

``--servers`` runs the same drive against several HTTP servers in one run (the
first is the headline); ``--baseline-src DIR`` adds a server started from another
source tree (e.g. ``/work/main/shared``, the code before a change) so "ours vs
baseline" comes from one run under one machine load. ``--reuse DIR`` keeps the built
collection between runs. The JSON summary line is printed last and written to
``bench-results/query.json``; it has ``p50_ms_by_connections`` /
``p99_ms_by_connections`` (search by embedding, keyed by the connection count as a
string), the same for search by face id, and ``errors``.

    python -m tests.bench.query [--faces 100000] [--connections 1,4,16] [--requests 2000]
        [--servers gunicorn,werkzeug] [--baseline-src /work/main/shared] [--reuse DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests

from facesearch.auth import SigningKey
from facesearch.backends.local import LocalBackend
from facesearch.client import Client
from facesearch.config import load_settings
from facesearch.storage.local.metadata import SqliteMetadataStore
from facesearch.storage.metadata import FaceRecord, ImageRecord, ImageStatus, embedding_bytes
from facesearch.vision.pipeline import FacePipeline
from tests.bench.common import PHOTOS_DIR, ROOT, list_images, write_result
from tests.support.api import add_image

KEY = SigningKey("bench", "bench-secret-" + "0123456789abcdef" * 2)
FACES_PER_IMAGE = 1000  # synthetic images group faces so metadata writes stay batched


class _Collect:
    """Stands in for the index writer while real photos are processed: one add() at the end."""

    def __init__(self) -> None:
        self.face_ids: list[str] = []
        self.vectors: list[Any] = []

    def add(self, face_ids: list[str], vectors: list[Any], model: str) -> None:
        self.face_ids += face_ids
        self.vectors += list(vectors)


STAGES = ("auth", "decode", "detect", "liveness", "align", "embed", "ann", "metadata")


def build_collection(data_dir: Path, n_faces: int, seed: int) -> dict[str, Any]:
    settings = load_settings(data_dir=data_dir, index_auto_compact=False)
    pipeline = FacePipeline(settings)
    store = SqliteMetadataStore(data_dir / "metadata.sqlite3")
    writer = LocalBackend(settings).index_writer()
    real: list[str] = []
    collected = _Collect()
    start = time.perf_counter()
    for n, path in enumerate(list_images(PHOTOS_DIR)):
        try:
            real += add_image(
                pipeline,
                store=store,
                writer=collected,  # type: ignore[arg-type]
                crops_dir=data_dir / "crops",
                image_id=f"real-{n}",
                data=path.read_bytes(),
            )
        except Exception as exc:  # a photo without a face: fine, skip it
            print(f"skip {path.name}: {type(exc).__name__}", file=sys.stderr)
    model = pipeline.embedder.model_id
    dims = pipeline.embedder.dim
    rng = np.random.default_rng(seed)
    remaining = max(0, n_faces - len(real))
    identities = max(1, remaining // 10)
    centres = rng.standard_normal((identities, dims)).astype(np.float32)
    owners = rng.integers(0, identities, remaining)
    vectors = centres[owners] + 0.35 * rng.standard_normal((remaining, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    face_ids = [f"syn{i // FACES_PER_IMAGE}-{i % FACES_PER_IMAGE}" for i in range(remaining)]
    for chunk in range(0, remaining, FACES_PER_IMAGE):
        image_id = f"syn{chunk // FACES_PER_IMAGE}"
        ids = face_ids[chunk : chunk + FACES_PER_IMAGE]
        store.put_image(
            ImageRecord(image_id=image_id, source=f"bench://{image_id}", status=ImageStatus.DONE)
        )
        store.put_faces(
            image_id,
            [
                FaceRecord(
                    face_id=face_id,
                    image_id=image_id,
                    face_index=j,
                    bbox=(0.0, 0.0, 100.0, 100.0),
                    landmarks=(
                        (30.0, 40.0),
                        (70.0, 40.0),
                        (50.0, 60.0),
                        (35.0, 80.0),
                        (65.0, 80.0),
                    ),
                    det_score=0.99,
                    embedding=embedding_bytes(vectors[chunk + j]),
                    model=model,
                )
                for j, face_id in enumerate(ids)
            ],
        )
    metadata_s = time.perf_counter() - start
    start = time.perf_counter()
    # one segment, as after compaction (the real faces first, then the synthetic ones)
    all_vectors = np.concatenate(
        [np.asarray(collected.vectors, dtype=np.float32).reshape(-1, dims), vectors]
    )
    writer.add(collected.face_ids + face_ids, all_vectors, model)
    index_s = time.perf_counter() - start
    return {
        "faces": len(real) + remaining,
        "real_faces": len(real),
        "real_face_ids": real,
        "probe_vectors": vectors[:: max(1, remaining // 500)][:500].tolist(),
        "probe_face_ids": face_ids[:: max(1, remaining // 500)][:500],
        "build_metadata_s": round(metadata_s, 1),
        "build_index_s": round(index_s, 1),
        "model": model,
    }


def start_server(
    data_dir: Path,
    port: int,
    *,
    server: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    source: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``facesearch serve`` in a child process; ``source``: run another source tree's code
    (a baseline), which gets no server options (it serves as it did)."""
    env = {
        **os.environ,
        "FACESEARCH_DATA_DIR": str(data_dir),
        "FACESEARCH_SIGNING_KEYS": json.dumps({KEY.key_id: KEY.secret}),
        "FACESEARCH_LOG_LEVEL": "WARNING",
        "FACESEARCH_INDEX_AUTO_COMPACT": "false",
        "FACESEARCH_QUERY_MAX_CONCURRENT_IMAGES": "64",
    }
    command = [sys.executable, "-m", "facesearch.cli", "serve", "--port", str(port)]
    if source is not None:
        env["PYTHONPATH"] = str(source)
    else:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT / "shared"), env.get("PYTHONPATH", "")) if p
        )
        for flag, value in (("--server", server), ("--workers", workers), ("--threads", threads)):
            if value is not None:
                command += [flag, str(value)]
    proc = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                # /healthz is cheap and answered before the models load: wait for a real
                # answer from every worker (a signed stats call loads the collection)
                Client(f"http://127.0.0.1:{port}", KEY).request("GET", "/v1/stats")
                return proc
        except Exception:  # still starting (connection refused, 503, models loading)
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
    proc.kill()
    raise RuntimeError("server did not become healthy")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _server_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


def drive(
    name: str,
    send: Callable[[Client, int], requests.Response],
    *,
    clients: list[Client],
    total: int,
) -> dict[str, Any]:
    """``total`` requests from ``len(clients)`` threads; latency measured at the client."""
    latencies: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    errors: list[int] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker(client: Client) -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t = time.perf_counter()
            try:
                response = send(client, i)
            except Exception as exc:
                with lock:
                    errors.append(getattr(exc, "http_status", -1))
                continue
            elapsed = time.perf_counter() - t
            timing = _server_timing(response.headers.get("Server-Timing", ""))
            with lock:
                latencies.append(elapsed)
                for key, value in timing.items():
                    stages[key].append(value)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000.0
    app_total = float(np.sum(stages.get("app", [0.0]))) or 1.0
    share = {s: round(float(np.sum(stages[s])) / app_total, 4) for s in STAGES if s in stages}
    result = {
        "requests": len(latencies),
        "errors": len(errors),
        "concurrency": len(clients),
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "p90_ms": round(float(np.percentile(ms, 90)), 2) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "requests_per_s": round(len(latencies) / wall, 1),
        "server_ms_mean": {k: round(float(np.mean(v)), 3) for k, v in stages.items()},
        "share_of_server_time": share,
    }
    print(
        f"{name:>18}: {result['requests']} req, p50 {result['p50_ms']} ms, p99 "
        f"{result['p99_ms']} ms, {result['requests_per_s']} req/s, errors {len(errors)}; "
        f"server time share {share}",
        file=sys.stderr,
    )
    return result


def _levels(text: str) -> list[int]:
    levels = sorted({int(v) for v in text.split(",") if v.strip()})
    if not levels or levels[0] < 1:
        raise SystemExit("--connections needs positive integers, e.g. 1,4,16")
    return levels


def run_variant(
    name: str,
    *,
    data_dir: Path,
    built: dict[str, Any],
    port: int,
    levels: list[int],
    requests_per_level: int,
    image_requests: int,
    server: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    source: Path | None = None,
) -> dict[str, Any]:
    """One server configuration: every connection level, embedding and face id; images at
    one level when ``image_requests``."""
    print(f"--- {name} ---", file=sys.stderr)
    proc = start_server(
        data_dir, port, server=server, workers=workers, threads=threads, source=source
    )
    try:
        base = f"http://127.0.0.1:{port}"
        clients = [Client(base, KEY) for _ in range(max(levels))]
        vectors, face_ids = built["probe_vectors"], built["probe_face_ids"]
        photo = (PHOTOS_DIR / "labelled" / "obama" / "obama_3.jpg").read_bytes()

        def by_embedding(c: Client, i: int) -> requests.Response:
            body = json.dumps({"embedding": vectors[i % len(vectors)], "k": 10}).encode()
            return c.request("POST", "/v1/search", body=body, content_type="application/json")

        def by_face_id(c: Client, i: int) -> requests.Response:
            body = json.dumps({"face_id": face_ids[i % len(face_ids)], "k": 10}).encode()
            return c.request("POST", "/v1/search", body=body, content_type="application/json")

        def by_image(c: Client, i: int) -> requests.Response:
            return c.request(
                "POST", "/v1/search", params={"k": "10"}, body=photo, content_type="image/jpeg"
            )

        drive("warm-up", by_embedding, clients=clients, total=200)
        drive("warm-up face id", by_face_id, clients=clients, total=100)
        out: dict[str, Any] = {"embedding": {}, "face_id": {}, "server": server or "baseline"}
        for level in levels:
            out["embedding"][str(level)] = drive(
                f"embedding x{level}",
                by_embedding,
                clients=clients[:level],
                total=requests_per_level,
            )
            out["face_id"][str(level)] = drive(
                f"face id x{level}",
                by_face_id,
                clients=clients[:level],
                total=requests_per_level,
            )
        if image_requests:
            image_level = min(4, max(levels))
            drive("warm-up image", by_image, clients=clients[:1], total=2)
            out["image"] = drive(
                f"image x{image_level}",
                by_image,
                clients=clients[:image_level],
                total=image_requests,
            )
            out["image_1conn"] = drive(
                "image x1", by_image, clients=clients[:1], total=max(5, image_requests // 4)
            )
    finally:
        stop_server(proc)
    return out


def _by_level(variant: dict[str, Any], flavour: str, key: str) -> dict[str, Any]:
    return {level: result[key] for level, result in variant[flavour].items()}


def _errors(variant: dict[str, Any]) -> int:
    total = sum(r["errors"] for f in ("embedding", "face_id") for r in variant[f].values())
    return total + sum(variant[k]["errors"] for k in ("image", "image_1conn") if k in variant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--connections", default="1,4,16", help="connection levels, e.g. 1,4,16")
    parser.add_argument("--requests", type=int, default=2000, help="per level and flavour")
    parser.add_argument("--image-requests", type=int, default=40)
    parser.add_argument(
        "--servers", default="waitress", help="servers to compare; the first is the headline"
    )
    parser.add_argument("--workers", type=int, help="worker processes (default: the server's)")
    parser.add_argument("--threads", type=int, help="threads per worker (default: the server's)")
    parser.add_argument(
        "--baseline-src", type=Path, help="also serve from this source tree (e.g. main's shared/)"
    )
    parser.add_argument("--reuse", type=Path, help="keep the built collection in this folder")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    levels = _levels(args.connections)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]

    with tempfile.TemporaryDirectory(prefix="fs-bench-query-") as tmp:
        data_dir = args.reuse or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        marker = data_dir / "built.json"
        if marker.exists():
            built = json.loads(marker.read_text())
            print(f"reusing the collection in {data_dir} ({built['faces']} faces)", file=sys.stderr)
        else:
            print(f"building a collection of {args.faces} faces...", file=sys.stderr)
            built = build_collection(data_dir, args.faces, args.seed)
            marker.write_text(json.dumps(built))
            print(
                f"built: metadata {built['build_metadata_s']} s, index {built['build_index_s']} s",
                file=sys.stderr,
            )
        load_before = os.getloadavg()
        variants: dict[str, dict[str, Any]] = {}
        for number, server in enumerate(servers):
            variants[server] = run_variant(
                server,
                data_dir=data_dir,
                built=built,
                port=args.port,
                levels=levels,
                requests_per_level=args.requests,
                image_requests=args.image_requests if number == 0 else 0,
                server=server,
                workers=args.workers,
                threads=args.threads,
            )
        if args.baseline_src is not None:
            variants["baseline"] = run_variant(
                "baseline",
                data_dir=data_dir,
                built=built,
                port=args.port,
                levels=levels,
                requests_per_level=args.requests,
                image_requests=0,
                source=args.baseline_src,
            )
        load_after = os.getloadavg()

    head = variants[servers[0]]
    p50 = _by_level(head, "embedding", "p50_ms")
    p99 = _by_level(head, "embedding", "p99_ms")
    mid = "4" if "4" in p50 else str(levels[len(levels) // 2])
    top = str(levels[-1])
    summary: dict[str, Any] = {
        "faces": built["faces"],
        "connections": levels,
        "server": servers[0],
        "p50_ms_by_connections": p50,
        "p99_ms_by_connections": p99,
        "face_id_p50_ms_by_connections": _by_level(head, "face_id", "p50_ms"),
        "face_id_p99_ms_by_connections": _by_level(head, "face_id", "p99_ms"),
        "requests_per_s_by_connections": _by_level(head, "embedding", "requests_per_s"),
        "errors": _errors(head),
        "errors_by_connections": {
            level: head["embedding"][level]["errors"] + head["face_id"][level]["errors"]
            for level in head["embedding"]
        },
        "search_image_p50_ms": head.get("image", {}).get("p50_ms"),
        "search_image_p99_ms": head.get("image", {}).get("p99_ms"),
        "search_image_1conn_p50_ms": head.get("image_1conn", {}).get("p50_ms"),
        "embedding_time_share": head["embedding"][mid]["share_of_server_time"],
        "face_id_time_share": head["face_id"][mid]["share_of_server_time"],
        "face_id_over_embedding_p50": round(
            head["face_id"][mid]["p50_ms"] / head["embedding"][mid]["p50_ms"], 2
        ),
        "target_p50_le_10ms_at_4": bool(p50.get("4") is not None and p50["4"] <= 10.0),
        "target_no_errors_at_top": head["embedding"][top]["errors"] + head["face_id"][top]["errors"]
        == 0,
        "compared": {
            name: {
                "p50_ms_by_connections": _by_level(v, "embedding", "p50_ms"),
                "p99_ms_by_connections": _by_level(v, "embedding", "p99_ms"),
                "face_id_p50_ms_by_connections": _by_level(v, "face_id", "p50_ms"),
                "requests_per_s_by_connections": _by_level(v, "embedding", "requests_per_s"),
                "errors": _errors(v),
            }
            for name, v in variants.items()
        },
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    details = {
        "build": {k: v for k, v in built.items() if not k.startswith("probe")},
        "variants": variants,
    }
    write_result("query", summary, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
