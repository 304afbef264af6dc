"""Sharding simulation: N shard processes on loopback, a coordinator that fans out and merges.

    python -m tests.bench.shards [--faces 100000] [--dims 128] [--shards 4] [--queries 500]

Faces are routed to shards by the shard map (weighted rendezvous hashing,
:mod:`facesearch.index.shards`); each shard is its own segmented index in its own
directory, served by its own process (a minimal HTTP shard server: POST the
query rows as float32 bytes, get JSON hits and the server's own search time).
The coordinator in this process asks every shard in parallel over keep-alive
HTTP connections and merges top-k. Measured, same run:

* ``direct``: one unsharded index of all faces, searched in-process (baseline);
* ``one_shard_http``: a single shard asked over loopback (transport cost per hop);
* ``fanout``: all shards; its *overhead* is fan-out latency minus the slowest
  shard's own search time (serialisation, HTTP, threads, merge);
* merged answers vs exact brute force (recall@10) and vs the unsharded index;
* a shard killed: the answer comes back with it listed as missing, at what latency.

Every process shares this machine's cores, so with more shards than cores the
shard searches queue for CPU; the result says so rather than hiding it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from tests.bench.common import write_result
from tests.bench.index import exact_topk, make_data, recall_at_k

MODEL = "bench-synthetic@1"
K = 10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- shard server (child process) ----------------------------------------------------------------


def serve(index_dir: Path, port_file: Path, dims: int) -> None:
    from facesearch.index.params import IndexParams
    from facesearch.index.reader import IndexReader
    from facesearch.storage.local.blob import LocalBlobStore

    params = IndexParams(fanout_threads=1)
    reader = IndexReader(
        LocalBlobStore(index_dir / "bucket"), cache_dir=index_dir / "cache", params=params
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle on, the body waits for
        # the client's delayed ACK (~40 ms on Linux loopback), which would be
        # measured as fan-out overhead. Real servers (gunicorn, Cloud Run's
        # front end) set TCP_NODELAY too.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            k = int(self.headers.get("X-K", K))
            queries = np.frombuffer(self.rfile.read(length), dtype=np.float32).reshape(-1, dims)
            started = time.perf_counter()
            rows = reader.search(queries, k)
            took = time.perf_counter() - started
            body = json.dumps(
                {"hits": [[[h.face_id, h.similarity] for h in row] for row in rows], "s": took}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


# --- coordinator ---------------------------------------------------------------------------------


class HttpShards:
    """The coordinator's transport: one keep-alive connection per (thread, shard)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.server_seconds: dict[str, float] = {}

    def __call__(self, shard: Any, queries: np.ndarray, k: int, timeout_s: float) -> list[Any]:
        from facesearch.index.reader import SearchHit

        conns = self._local.__dict__.setdefault("conns", {})
        url = urlparse(shard.endpoint)
        conn = conns.get(shard.id)
        if conn is None:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout_s)
            conns[shard.id] = conn
        body = np.ascontiguousarray(queries, dtype=np.float32).tobytes()
        try:
            conn.request("POST", "/search", body=body, headers={"X-K": str(k)})
            data = json.loads(conn.getresponse().read())
        except (OSError, http.client.HTTPException):
            conns.pop(shard.id, None)
            conn.close()
            raise
        self.server_seconds[shard.id] = data["s"]
        return [[SearchHit(f, s) for f, s in row] for row in data["hits"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.dims)
        return 0

    from facesearch.index.params import IndexParams
    from facesearch.index.reader import IndexReader
    from facesearch.index.shards import ShardMap, ShardSpec, fanout_search, route
    from facesearch.index.writer import IndexWriter
    from facesearch.storage.local.blob import LocalBlobStore

    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    procs: list[subprocess.Popen[bytes]] = []
    load_start = os.getloadavg()[0]
    try:
        log(f"{args.faces:,} x {args.dims} faces, {args.shards} shards, in {work}")
        base, queries, _, _ = make_data(
            args.faces,
            dims=args.dims,
            per_identity=5,
            queries=args.queries,
            seed=args.seed,
            latent_dims=64,
        )
        truth = exact_topk(base, queries, K)
        face_ids = [f"face-{i:09d}" for i in range(len(base))]
        specs = [
            ShardSpec(id=f"s{n:02d}", index_url=str(work / f"s{n:02d}" / "bucket"))
            for n in range(args.shards)
        ]
        shard_map = ShardMap(shards=tuple(specs))
        groups = route(shard_map, face_ids)
        params = IndexParams(auto_compact=False)
        sizes = {}
        for spec in specs:
            rows = groups.get(spec.id, [])
            sizes[spec.id] = len(rows)
            log(f"building shard {spec.id}: {len(rows):,} faces")
            writer = IndexWriter(
                LocalBlobStore(Path(spec.index_url)), cache_dir=work / "wcache", params=params
            )
            writer.add([face_ids[i] for i in rows], base[rows], MODEL)
        log("building the unsharded index (baseline)")
        IndexWriter(
            LocalBlobStore(work / "all" / "bucket"), cache_dir=work / "wcache", params=params
        ).add(face_ids, base, MODEL)
        shutil.rmtree(work / "wcache", ignore_errors=True)
        del base

        log("starting shard servers")
        endpoints = {}
        for spec in specs:
            port_file = work / f"{spec.id}.port"
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tests.bench.shards",
                        "--dims",
                        str(args.dims),
                        "--serve",
                        str(work / spec.id),
                        str(port_file),
                    ],
                    start_new_session=True,
                )
            )
            endpoints[spec.id] = port_file
        for spec_id, port_file in endpoints.items():
            deadline = time.time() + 120
            while not port_file.exists() or not port_file.read_text():
                if time.time() > deadline:
                    raise SystemExit(f"shard {spec_id} did not start")
                time.sleep(0.1)
        shard_map = ShardMap(
            shards=tuple(
                s.model_copy(update={"endpoint": f"http://127.0.0.1:{endpoints[s.id].read_text()}"})
                for s in specs
            )
        )
        transport = HttpShards()
        pool = ThreadPoolExecutor(max_workers=args.shards, thread_name_prefix="fanout")
        direct = IndexReader(
            LocalBlobStore(work / "all" / "bucket"),
            cache_dir=work / "all" / "cache",
            params=params,
        )
        for q in queries[:50]:  # warm every path
            direct.search_one(q, K)
            fanout_search(shard_map, q[None, :], K, transport, timeout_s=5.0, pool=pool)

        def timed(fn: Any) -> tuple[list[float], list[Any]]:
            lat, out = [], []
            for q in queries:
                t0 = time.perf_counter()
                out.append(fn(q))
                lat.append(time.perf_counter() - t0)
            return lat, out

        log("measuring: direct, one shard over HTTP, fan-out (interleaved rounds)")
        lat: dict[str, list[float]] = {"direct": [], "one_shard_http": [], "fanout": []}
        slowest_shard: list[float] = []
        found_direct: list[list[int]] = []
        found_fanout: list[list[int]] = []
        for _ in range(2):
            t, out = timed(lambda q: direct.search_one(q, K))
            lat["direct"] += t
            found_direct = [[int(h.face_id[5:]) for h in row] for row in out]
            one = shard_map.shards[0]
            t, _ = timed(lambda q, s=one: transport(s, q[None, :], K, 5.0))
            lat["one_shard_http"] += t
            for q in queries:
                t0 = time.perf_counter()
                result = fanout_search(
                    shard_map, q[None, :], K, transport, timeout_s=5.0, pool=pool
                )
                lat["fanout"].append(time.perf_counter() - t0)
                slowest_shard.append(max(transport.server_seconds.values()))
                if len(found_fanout) < len(queries):
                    found_fanout.append([int(h.face_id[5:]) for h in result.hits[0]])
        ms = {name: np.asarray(v) * 1000 for name, v in lat.items()}
        slow = np.asarray(slowest_shard) * 1000

        log("killing one shard")
        os.killpg(procs[-1].pid, signal.SIGKILL)
        procs[-1].wait()
        degraded, missing = [], set()
        for q in queries[:100]:
            t0 = time.perf_counter()
            result = fanout_search(shard_map, q[None, :], K, transport, timeout_s=1.0, pool=pool)
            degraded.append(time.perf_counter() - t0)
            missing.update(result.missing)
        pool.shutdown()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    def pct(values: np.ndarray, p: float) -> float:
        return round(float(np.percentile(values, p)), 3)

    summary = {
        "faces": args.faces,
        "dims": args.dims,
        "shards": args.shards,
        "cores": os.cpu_count(),
        "direct_p50_ms": pct(ms["direct"], 50),
        "one_shard_http_p50_ms": pct(ms["one_shard_http"], 50),
        "fanout_p50_ms": pct(ms["fanout"], 50),
        "fanout_p99_ms": pct(ms["fanout"], 99),
        "slowest_shard_search_p50_ms": pct(slow, 50),
        "fanout_overhead_p50_ms": pct(ms["fanout"] - slow, 50),
        "recall_at_10_direct": round(recall_at_k(found_direct, truth, K), 4),
        "recall_at_10_fanout": round(recall_at_k(found_fanout, truth, K), 4),
        "killed_shard_reported_missing": sorted(missing) == [shard_map.shards[-1].id],
        "degraded_p50_ms": pct(np.asarray(degraded) * 1000, 50),
        "shard_sizes": sizes,
        "load_avg_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    write_result("shards", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
