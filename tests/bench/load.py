"""Bounded load test of the query API on loopback: capacity, then graceful refusals.

``python -m tests.bench.load [--short] [--levels 1,2,4,...] [--seconds S]``

Ingests a few photos embedded, starts ``facesearch serve`` as its own process (the real
server: bounded threads, ``FACESEARCH_SERVE_MAX_CONNECTIONS``), then drives it from this
process with closed-loop clients, one concurrency level after another, each for a
fixed time (bounded in count and time; loopback only). Two request kinds:

* ``image``: POST /v1/search with a photo (detection + embedding + HNSW: the expensive
  path; ``FACESEARCH_QUERY_MAX_CONCURRENT_IMAGES`` of them run at once, more get 429);
* ``face``: POST /v1/search by a stored face id (no detection: index + records).

Per level: requests/s, p50/p95 latency of the successes, 2xx, 429, 503, how many refusals
carried ``Retry-After``, other errors (must stay 0), and the server's RSS. The summary
(last line, JSON) has ``capacity_rps`` (per kind: the best throughput of a level with
zero refusals and zero errors), ``errors``, ``refusals_without_retry_after``,
``server_alive``, ``rss_mb_max`` and ``rss_growth_mb``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import requests
from PIL import Image

from facesearch.auth import SigningKey, sign_request
from tests.bench.common import PHOTOS_DIR, ROOT, write_result
from tests.support.emulators import free_port

KEY = SigningKey("load", "load-test-secret-" + "0123456789abcdef" * 2)
PHOTOS = (
    "labelled/obama/obama_1.jpg",
    "labelled/biden/biden_1.jpg",
    "labelled/tom_hanks/tom_hanks_1.png",
    "group/faceapi_sample2.jpg",
)
PROBE = "labelled/obama/obama_2.jpg"


def small(path: Path, side: int = 400) -> bytes:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


@contextlib.contextmanager
def server(data_dir: Path, max_connections: int) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "shared"),
        "FACESEARCH_DATA_DIR": str(data_dir),
        "FACESEARCH_SIGNING_KEYS": json.dumps({KEY.key_id: KEY.secret}),
        "FACESEARCH_SERVE_MAX_CONNECTIONS": str(max_connections),
        "FACESEARCH_LOG_LEVEL": "WARNING",
    }
    log = (data_dir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facesearch.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}: see {log.name}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_level(
    url: str, kind: str, body: bytes, *, concurrency: int, seconds: float, proc: psutil.Process
) -> dict[str, Any]:
    path = "/v1/search"
    lock = threading.Lock()
    stats: dict[str, Any] = {"ok": 0, "429": 0, "503": 0, "retry_after": 0, "errors": 0}
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds
    content_type = "application/octet-stream" if kind == "image" else "application/json"
    rss = [proc.memory_info().rss]

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            headers = {**sign_request(KEY, "POST", path, body), "Content-Type": content_type}
            started = time.monotonic()
            try:
                response = session.post(url + path, data=body, headers=headers, timeout=60)
                status = response.status_code
            except requests.RequestException as exc:
                with lock:
                    stats["errors"] += 1
                    errors.append(type(exc).__name__)
                session = requests.Session()
                continue
            elapsed = time.monotonic() - started
            with lock:
                if status == 200:
                    stats["ok"] += 1
                    latencies.append(elapsed)
                elif status in (429, 503):
                    stats[str(status)] += 1
                    stats["retry_after"] += "Retry-After" in response.headers
                else:
                    stats["errors"] += 1
                    errors.append(str(status))
            if status in (429, 503):
                time.sleep(0.05)  # a polite client backs off a little (not the full hint)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    began = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        with contextlib.suppress(psutil.Error):
            rss.append(proc.memory_info().rss)
        time.sleep(0.2)
    wall = time.monotonic() - began
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(latencies[int(q * (len(latencies) - 1))] * 1000, 1) if latencies else None

    return {
        "kind": kind,
        "concurrency": concurrency,
        "seconds": round(wall, 2),
        "rps": round(stats["ok"] / wall, 2),
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        **stats,
        "error_kinds": sorted(set(errors))[:5],
        "rss_mb": round(max(rss) / 2**20, 1),
    }


def prepare(data_dir: Path) -> str:
    """Ingest the photos embedded; returns a face id to search by."""
    from facesearch.config import load_settings
    from facesearch.local import EmbeddedSystem

    folder = data_dir / "photos"
    folder.mkdir(parents=True)
    for rel in PHOTOS:
        (folder / Path(rel).with_suffix(".jpg").name).write_bytes(small(PHOTOS_DIR / rel))
    system = EmbeddedSystem(load_settings(data_dir=data_dir, log_json=False))
    summary = system.ingest_files(sorted(folder.iterdir()))
    assert summary.faces > 0, "no faces ingested"
    return sorted(system.reader().face_ids())[0]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="few levels, 2 s each")
    parser.add_argument("--levels", help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, help="per level")
    parser.add_argument("--max-connections", type=int, default=64)
    args = parser.parse_args(argv)
    levels = (
        [int(x) for x in args.levels.split(",")]
        if args.levels
        else ([1, 4, 96] if args.short else [1, 2, 4, 8, 16, 32, 64, 128, 192])
    )
    seconds = args.seconds or (2.0 if args.short else 5.0)
    with tempfile.TemporaryDirectory(prefix="fs-load-") as tmp:
        data_dir = Path(tmp)
        face_id = prepare(data_dir)
        bodies = {
            "face": json.dumps({"face_id": face_id, "k": 5}).encode(),
            "image": small(PHOTOS_DIR / PROBE),
        }
        results = []
        with server(data_dir, args.max_connections) as (url, proc):
            rss_start = proc.memory_info().rss / 2**20
            for kind in ("face", "image"):
                for level in levels:
                    row = run_level(
                        url, kind, bodies[kind], concurrency=level, seconds=seconds, proc=proc
                    )
                    results.append(row)
                    print(json.dumps(row), flush=True)
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
            healthy = requests.get(f"{url}/healthz", timeout=5).status_code == 200
    capacity = {}
    for kind in ("face", "image"):
        clean = [r for r in results if r["kind"] == kind and not (r["429"] or r["503"])]
        clean = [r for r in clean if not r["errors"]]
        capacity[kind] = max((r["rps"] for r in clean), default=0.0)
    refusals = sum(r["429"] + r["503"] for r in results)
    summary = {
        "levels": levels,
        "seconds_per_level": seconds,
        "max_connections": args.max_connections,
        "capacity_rps": capacity,
        "requests_ok": sum(r["ok"] for r in results),
        "refused_429": sum(r["429"] for r in results),
        "refused_503": sum(r["503"] for r in results),
        "refusals_without_retry_after": refusals - sum(r["retry_after"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "server_alive": alive and healthy,
        "rss_mb_max": max(r["rss_mb"] for r in results),
        "rss_growth_mb": round(max(r["rss_mb"] for r in results) - rss_start, 1),
    }
    write_result("load" + ("-short" if args.short else ""), summary, {"levels": results})
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
