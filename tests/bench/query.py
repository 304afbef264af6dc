"""Query API benchmark: a local server with >= 100k faces, driven over loopback.

Builds a collection of real faces (the shipped photos, through the real
pipeline) plus synthetic identities (clustered unit vectors, the embedder's
dimension) to reach ``--faces``, with a metadata record per face and the
segmented index. Starts ``facesearch serve`` in a child process (so the
client's work does not share its interpreter), then drives it with a bounded
pool of signing client threads:

* search-by-face-id and search-by-embedding (no detection) and
* search-by-image (detection + liveness + embedding),

reporting p50/p99 end-to-end latency, requests/s, and where server time goes
(signature check, decode, detect, embed, ANN search, metadata) from each
response's ``Server-Timing`` header. The JSON summary line is printed last and
written to ``bench-results/query.json``.

    python -m tests.bench.query [--faces 100000] [--concurrency 4] [--requests 2000]
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


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FACESEARCH_DATA_DIR": str(data_dir),
        "FACESEARCH_SIGNING_KEYS": json.dumps({KEY.key_id: KEY.secret}),
        "FACESEARCH_LOG_LEVEL": "WARNING",
        "FACESEARCH_INDEX_AUTO_COMPACT": "false",
        "FACESEARCH_QUERY_MAX_CONCURRENT_IMAGES": "64",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "facesearch.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.3)
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
    proc.kill()
    raise RuntimeError("server did not become healthy")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2000, help="per no-detection flavour")
    parser.add_argument("--image-requests", type=int, default=40)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fs-bench-query-") as tmp:
        data_dir = Path(tmp)
        print(f"building a collection of {args.faces} faces...", file=sys.stderr)
        built = build_collection(data_dir, args.faces, args.seed)
        print(
            f"built: metadata {built['build_metadata_s']} s, index {built['build_index_s']} s",
            file=sys.stderr,
        )
        server = start_server(data_dir, args.port)
        try:
            base = f"http://127.0.0.1:{args.port}"
            clients = [Client(base, KEY) for _ in range(args.concurrency)]
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
                    "POST",
                    "/v1/search",
                    params={"k": "10"},
                    body=photo,
                    content_type="image/jpeg",
                )

            drive("warm-up", by_embedding, clients=clients, total=100)
            drive("warm-up image", by_image, clients=clients[:1], total=2)
            single = drive(
                "embedding (1 conn)", by_embedding, clients=clients[:1], total=args.requests // 2
            )
            embedding = drive("embedding", by_embedding, clients=clients, total=args.requests)
            face_id = drive("face id", by_face_id, clients=clients, total=args.requests)
            image = drive("image", by_image, clients=clients, total=args.image_requests)
            image_single = drive(
                "image (1 conn)",
                by_image,
                clients=clients[:1],
                total=max(5, args.image_requests // 4),
            )
        finally:
            server.terminate()
            server.wait(timeout=30)

    summary = {
        "faces": built["faces"],
        "concurrency": args.concurrency,
        "search_embedding_p50_ms": embedding["p50_ms"],
        "search_embedding_p99_ms": embedding["p99_ms"],
        "search_embedding_1conn_p50_ms": single["p50_ms"],
        "search_face_id_p50_ms": face_id["p50_ms"],
        "search_face_id_p99_ms": face_id["p99_ms"],
        "search_image_p50_ms": image["p50_ms"],
        "search_image_p99_ms": image["p99_ms"],
        "search_image_1conn_p50_ms": image_single["p50_ms"],
        "requests_per_s": embedding["requests_per_s"],
        "image_requests_per_s": image["requests_per_s"],
        "errors": embedding["errors"] + face_id["errors"] + image["errors"],
        "embedding_time_share": embedding["share_of_server_time"],
        "image_time_share": image["share_of_server_time"],
        "target_embedding_p50_le_10ms": bool(
            embedding["p50_ms"] is not None and embedding["p50_ms"] <= 10.0
        ),
        "target_embedding_p50_le_10ms_1conn": bool(
            single["p50_ms"] is not None and single["p50_ms"] <= 10.0
        ),
    }
    details = {
        "build": {k: v for k, v in built.items() if not k.startswith("probe")},
        "embedding_1conn": single,
        "embedding": embedding,
        "face_id": face_id,
        "image": image,
        "image_1conn": image_single,
    }
    write_result("query", summary, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
