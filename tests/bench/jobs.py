"""Backfill and rebuild jobs on the emulators (GCS, Pub/Sub, Firestore), 1 task vs 2.

    python -m tests.bench.jobs [--faces 10000]

* **backfill**: ``--faces`` objects in an uploads bucket (small bodies: the job only lists
  and publishes; the ingest service's own throughput is ``tests.bench.pipeline``). One
  task in this process, then two tasks as two ``facesearch backfill`` processes; every
  published request is pulled back and counted: each object once per run. A re-run of
  the same command resumes from its checkpoint and publishes nothing.
* **rebuild**: ``--faces`` synthetic faces (identity clusters, 128-d, the default
  embedder's size) in Firestore, no index at all (a lost index); ``facesearch rebuild``
  with one task, then again with two task processes. After each switch the index's live
  face ids are compared with the metadata store's: nothing lost, nothing doubled.

Index builds use one thread per task (``FACESEARCH_INDEX_BUILD_THREADS=1``), so one task
vs two shows what task parallelism buys on its own. The JSON summary line is printed
last and written to bench-results/jobs.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.common import write_result

ROOT = Path(__file__).resolve().parents[2]
MODEL = "dlib-resnet-v1@2"


def _faces(n: int, seed: int) -> list[Any]:
    import hashlib

    from facesearch.storage.metadata import FaceRecord

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 5), 128)).astype(np.float32)
    out = []
    for i in range(n):
        v = centres[i % len(centres)] + 0.3 * rng.normal(size=128).astype(np.float32)
        v /= np.linalg.norm(v)
        image_id = hashlib.sha256(f"bench-{seed}-{i}".encode()).hexdigest()[:32]
        out.append(
            FaceRecord(
                face_id=f"{image_id}-0",
                image_id=image_id,
                face_index=0,
                bbox=(1.0, 2.0, 50.0, 60.0),
                landmarks=((10.0, 11.0), (20.0, 11.0), (15.0, 20.0), (11.0, 30.0), (19.0, 30.0)),
                det_score=0.99,
                embedding=v.astype("<f4").tobytes(),
                model=MODEL,
                liveness=0.9,
                live=True,
            )
        )
    return out


def _env(project: str, tmp: Path, index_bucket: str) -> dict[str, str]:
    return {
        "FACESEARCH_BACKEND": "gcp",
        "FACESEARCH_PROJECT": project,
        "FACESEARCH_DATA_DIR": str(tmp),
        "FACESEARCH_INDEX_URL": f"gs://{index_bucket}/index",
        "FACESEARCH_INDEX_BUILD_THREADS": "1",
        "FACESEARCH_INDEX_AUTO_COMPACT": "false",
        "FACESEARCH_LOG_LEVEL": "WARNING",
    }


def _cli_tasks(args: list[list[str]], env: dict[str, str]) -> tuple[float, list[dict[str, Any]]]:
    """Run ``facesearch ...`` processes at once; (wall seconds, their JSON outputs)."""
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT / "shared")}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "facesearch.cli", *a],
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for a in args
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"task failed ({proc.returncode}): {err.decode()[-2000:]}")
        outs.append(json.loads(out))
    return time.perf_counter() - start, outs


def _drain(project: str, sub: str) -> list[str]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = f"projects/{project}/subscriptions/{sub}"
    names: list[str] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 3.0:
        response = subscriber.pull(subscription=path, max_messages=1000, timeout=10)
        if not response.received_messages:
            time.sleep(0.2)
            continue
        names += [json.loads(m.message.data)["name"] for m in response.received_messages]
        subscriber.acknowledge(
            subscription=path, ack_ids=[m.ack_id for m in response.received_messages]
        )
        idle_since = time.monotonic()
    return names


def _index_check(backend: Any) -> dict[str, Any]:
    reader = backend.index_reader()
    live = list(reader.face_ids())
    store = backend.metadata()
    counts = store.counts()
    from facesearch.storage.metadata import iter_faces

    truth = {f.face_id for f in iter_faces(store, page_size=1000)}
    return {
        "metadata_faces": counts.faces,
        "index_live": reader.live_count,
        "index_segments": len(reader.manifest.segments) if reader.manifest else 0,
        "lost": len(truth - set(live)),
        "doubled": len(live) - len(set(live)),
        "stray": len(set(live) - truth),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from google.cloud import pubsub_v1, storage

    from facesearch.backends import backend_for
    from facesearch.config import load_settings
    from facesearch.jobs.backfill import Backfill
    from facesearch.jobs.rebuild import Rebuild
    from facesearch.jobs.tasks import TaskSlot
    from tests.integration.pipeline_harness import create_topics
    from tests.support import emulators

    n = args.faces
    out: dict[str, Any] = {"faces": n}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-jobs-")))
        logs = tmp / "logs"
        for factory in (emulators.pubsub_emulator, emulators.firestore_emulator):
            emulator = stack.enter_context(factory(logs))
            stack.enter_context(emulators.patched_env(emulator.env))
        gcs = stack.enter_context(emulators.gcs_emulator(logs))
        stack.enter_context(emulators.patched_env(gcs.env))
        project = f"fs-bench-{uuid.uuid4().hex[:12]}"
        uploads, index_bucket = f"up-{uuid.uuid4().hex[:12]}", f"ix-{uuid.uuid4().hex[:12]}"
        client = storage.Client(project=project)
        for name in (uploads, index_bucket):
            client.create_bucket(name)
        create_topics(project, "ingest-requests")
        pubsub_v1.SubscriberClient().create_subscription(
            name=f"projects/{project}/subscriptions/watch",
            topic=f"projects/{project}/topics/ingest-requests",
        )
        env = _env(project, tmp, index_bucket)
        settings = load_settings(**{k[len("FACESEARCH_") :].lower(): v for k, v in env.items()})
        backend = backend_for(settings)

        # --- backfill ----------------------------------------------------------------
        print(f"uploading {n} objects...", file=sys.stderr)
        bucket = client.bucket(uploads)
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda i: bucket.blob(f"library/{i:06d}.jpg").upload_from_string(b"x" * 64),
                    range(n),
                )
            )
        out["upload_s"] = round(time.perf_counter() - t, 1)
        source = f"gs://{uploads}/library"
        one = Backfill(backend, source, run_id="bench-1").run()
        wall2, two = _cli_tasks(
            [
                [
                    "backfill",
                    source,
                    "--run-id",
                    "bench-2",
                    "--task-index",
                    str(i),
                    "--task-count",
                    "2",
                    "--no-progress",
                ]
                for i in range(2)
            ],
            env,
        )
        again = Backfill(backend, source, run_id="bench-1").run()
        names = _drain(project, "watch")
        out["backfill"] = {
            "tasks_1": {"seconds": round(one.seconds, 2), "per_s": round(one.per_s, 1)},
            "tasks_2": {
                "wall_s": round(wall2, 2),
                "per_task_per_s": [t["per_s"] for t in two],
                "task_seconds": [t["seconds"] for t in two],
                "total_per_s": round(n / max(t["seconds"] for t in two), 1),
                "owned": [t["owned"] for t in two],
            },
            "published_total": one.published + sum(t["published"] for t in two),
            "pulled": len(names),
            "distinct_names": len(set(names)),
            "each_once_per_run": len(names) == 2 * n and len(set(names)) == n,
            "rerun_published": again.published,
        }
        print(f"backfill: {out['backfill']}", file=sys.stderr)

        # --- rebuild -----------------------------------------------------------------
        print(f"writing {n} faces to Firestore...", file=sys.stderr)
        faces = _faces(n, args.seed)
        store = backend.metadata()
        t = time.perf_counter()
        # bulk load (batched writes of the same documents put_faces writes): the emulator
        # serialises put_faces' query-in-transaction, which would dominate the bench
        from facesearch.storage.metadata import stamped
        from facesearch.storage.records import face_to_dict

        faces_ref = store._faces  # type: ignore[attr-defined]
        for at in range(0, len(faces), 450):
            batch = store.client.batch()  # type: ignore[attr-defined]
            for face in faces[at : at + 450]:
                record = stamped(face, None, "default")
                batch.set(faces_ref.document(face.face_id), face_to_dict(record))
            batch.commit()
        out["metadata_write_s"] = round(time.perf_counter() - t, 1)
        rebuild = Rebuild(backend, "bench-r1", model=MODEL)
        rebuild.start()
        t = time.perf_counter()
        r1 = rebuild.run_task(TaskSlot(0, 1))
        s1 = rebuild.switch(1)
        one_s = time.perf_counter() - t
        check1 = _index_check(backend)
        wall_r2, r2 = _cli_tasks(
            [
                [
                    "rebuild",
                    "--run-id",
                    "bench-r2",
                    "--task-index",
                    str(i),
                    "--task-count",
                    "2",
                    "--no-progress",
                ]
                for i in range(2)
            ],
            env,
        )
        switched = [r["switch"] for r in r2 if isinstance(r["switch"], dict)]
        if not switched:  # both finished at once and neither saw the other: switch here
            switched = [Rebuild(backend, "bench-r2").switch(2).__dict__]
        check2 = _index_check(backend)
        tasks2 = [t for r in r2 for t in r["tasks"]]
        out["rebuild"] = {
            "tasks_1": {
                "seconds": round(one_s, 2),
                "faces_per_s": round(n / one_s, 1),
                "task_faces_per_s": round(r1.faces_per_s, 1),
                "switch": s1.__dict__,
                "check": check1,
            },
            "tasks_2": {
                "wall_s": round(wall_r2, 2),
                "per_task_faces_per_s": [t["faces_per_s"] for t in tasks2],
                "task_seconds": [t["seconds"] for t in tasks2],
                "faces_per_s": round(n / max(t["seconds"] for t in tasks2), 1),
                "switch": switched[0],
                "check": check2,
            },
        }
        print(f"rebuild: {out['rebuild']}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    details = run(args)
    b, r = details["backfill"], details["rebuild"]
    checks = (r["tasks_1"]["check"], r["tasks_2"]["check"])
    summary = {
        "faces": details["faces"],
        "backfill_1task_per_s": b["tasks_1"]["per_s"],
        "backfill_2tasks_per_task_per_s": b["tasks_2"]["per_task_per_s"],
        "backfill_2tasks_total_per_s": b["tasks_2"]["total_per_s"],
        "backfill_each_once": b["each_once_per_run"],
        "backfill_rerun_published": b["rerun_published"],
        "rebuild_1task_faces_per_s": r["tasks_1"]["task_faces_per_s"],
        "rebuild_2tasks_per_task_faces_per_s": r["tasks_2"]["per_task_faces_per_s"],
        "rebuild_2tasks_faces_per_s": r["tasks_2"]["faces_per_s"],
        "metadata_faces": checks[-1]["metadata_faces"],
        "index_live": checks[-1]["index_live"],
        "lost": sum(c["lost"] for c in checks),
        "doubled": sum(c["doubled"] for c in checks),
        "counts_equal": all(c["metadata_faces"] == c["index_live"] for c in checks),
        "load_average": round(os.getloadavg()[0], 2),
    }
    write_result("jobs", summary, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
