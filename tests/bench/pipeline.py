"""Upload -> searchable latency and ingest throughput of the event pipeline, on emulators.

The same deployment as the end-to-end tests (``tests/integration/pipeline_harness``):
fake-gcs-server notifications -> Eventarc-style relay -> ingest function (CPU
onnxruntime, in this process) -> Firestore emulator + crops bucket + Pub/Sub
emulator -> push -> ``functions-framework`` indexer process (group commit) ->
index bucket. A poller refreshes an :class:`IndexReader` every ``--poll-ms`` and
records when each image's faces first become searchable. Two warm-up uploads
(first streaming pull, first push, indexer imports) are excluded.

Two phases:
* latency: ``--uploads`` images uploaded at a steady pace (``--interval-s``);
  upload -> searchable per image (from just before the upload call to the first
  manifest that holds its faces), p50 / p95 / max;
* throughput: ``--burst`` images uploaded at once; images/s and faces/s from the
  first upload to the last image done.

Photos: the shipped sample photos, downscaled to ``--max-side`` px (the CPU
pipeline costs ~0.3 s on a full-size photo; the point here is the pipeline's
own overhead). Run it on an otherwise idle machine: on 2 cores the ingest,
the indexer and three emulators share the CPU.
Usage: ``python -m tests.bench.pipeline [--uploads 60]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tests.bench.common import PHOTOS_DIR, write_result

SAMPLES = [
    "labelled/obama/obama_1.jpg",
    "labelled/obama/obama_2.jpg",
    "labelled/obama/obama_3.jpg",
    "labelled/biden/biden_1.jpg",
    "labelled/tom_hanks/tom_hanks_1.png",
    "partial/obama_partial_1.jpg",
    "group/insightface_t1.jpg",
    "group/faceapi_sample2.jpg",
]


class SearchablePoller:
    """Records the first time each image's faces appear in the index."""

    def __init__(self, deployment: Any, poll_s: float) -> None:
        self.d = deployment
        self.poll_s = poll_s
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SearchablePoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                if self.d.reader.refresh() or not self.first_seen:
                    now = time.monotonic()
                    for face_id in self.d.reader.face_ids():
                        self.first_seen.setdefault(face_id.rsplit("-", 1)[0], now)
            time.sleep(self.poll_s)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def wait_until(check: Any, timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(poll_s)
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    from facesearch.config import load_settings
    from facesearch.vision.pipeline import FacePipeline
    from tests.integration.pipeline_harness import (
        GCS_EVENTS_PROJECT,
        GCS_EVENTS_TOPIC,
        Deployment,
        create_topics,
        small_jpeg,
    )
    from tests.support import emulators

    photos = [small_jpeg(PHOTOS_DIR / rel, max_side=args.max_side) for rel in SAMPLES]
    pipeline = FacePipeline(load_settings())
    pipeline.warm_up()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pipeline-")))
        logs = tmp / "logs"
        pubsub = stack.enter_context(emulators.pubsub_emulator(logs))
        stack.enter_context(emulators.patched_env(pubsub.env))
        firestore = stack.enter_context(emulators.firestore_emulator(logs))
        stack.enter_context(emulators.patched_env(firestore.env))
        create_topics(GCS_EVENTS_PROJECT, GCS_EVENTS_TOPIC)
        events = ["-event.pubsub-project-id", GCS_EVENTS_PROJECT,
                  "-event.pubsub-topic", GCS_EVENTS_TOPIC]  # fmt: skip
        gcs = stack.enter_context(emulators.gcs_emulator(logs, extra_args=events))
        stack.enter_context(emulators.patched_env(gcs.env))
        project = f"fs-bench-{uuid.uuid4().hex[:12]}"
        d = stack.enter_context(
            Deployment(
                project=project,
                tmp=tmp,
                log_dir=logs,
                pipeline=pipeline,
                window_ms=args.window_ms,
                relay_concurrency=args.concurrency,
            )
        )
        poller = stack.enter_context(SearchablePoller(d, args.poll_ms / 1000.0))

        # --- warm-up (excluded): first streaming pull, first push, indexer imports ---------
        for i in range(2):
            d.upload(f"warmup/{i}.jpg", photos[0])
        wait_until(lambda: len(poller.first_seen) >= 2, 120, 0.1)

        # --- latency: paced uploads ------------------------------------------------------
        names = []
        for i in range(args.uploads):
            name = f"latency/{i:04d}.jpg"
            d.upload(name, photos[i % len(photos)])
            names.append(name)
            time.sleep(args.interval_s)
        wait_until(lambda: all(d.status(n) in ("done", "failed") for n in names), 300, 0.2)
        with_faces = [
            n for n in names if (rec := d.metadata.get_image(d.image_id(n))) and rec.face_count
        ]
        wait_until(lambda: all(d.image_id(n) in poller.first_seen for n in with_faces), 120, 0.1)
        latencies = [
            poller.first_seen[d.image_id(n)] - d.upload_times[n]
            for n in with_faces
            if d.image_id(n) in poller.first_seen
        ]
        ingest_ms = []
        for n in with_faces:
            record = d.metadata.get_image(d.image_id(n))
            if record is not None:
                ingest_ms.append(sum(v for k, v in record.timings_ms.items() if k in
                                     ("pipeline", "crops", "metadata", "publish")))  # fmt: skip

        # --- throughput: a burst -----------------------------------------------------------
        burst = [f"burst/{i:04d}.jpg" for i in range(args.burst)]
        start = time.monotonic()
        for i, name in enumerate(burst):
            d.upload(name, photos[i % len(photos)])
        finished = wait_until(
            lambda: all(d.status(n) in ("done", "failed") for n in burst), 600, 0.1
        )
        burst_s = time.monotonic() - start
        burst_faces = sum(
            rec.face_count for n in burst if (rec := d.metadata.get_image(d.image_id(n)))
        )
        indexed = wait_until(
            lambda: all(
                d.image_id(n) in poller.first_seen
                for n in burst
                if (rec := d.metadata.get_image(d.image_id(n))) and rec.face_count
            ),
            120,
            0.1,
        )
        burst_searchable_s = time.monotonic() - start
        manifest = d.reader.manifest
        summary = {
            "uploads": len(names),
            "searchable": len(latencies),
            "p50_upload_to_searchable_s": round(percentile(latencies, 0.5), 3),
            "p95_upload_to_searchable_s": round(percentile(latencies, 0.95), 3),
            "max_upload_to_searchable_s": round(max(latencies), 3) if latencies else None,
            "target_p95_s": 2.0,
            "p50_ingest_server_ms": round(statistics.median(ingest_ms), 1) if ingest_ms else None,
            "burst_images": len(burst),
            "images_per_s": round(len(burst) / burst_s, 3) if finished else None,
            "faces_per_s": round(burst_faces / burst_s, 3) if finished else None,
            "burst_all_searchable_s": round(burst_searchable_s, 3) if indexed else None,
            "segments": len(manifest.segments) if manifest else 0,
            "live_faces": manifest.live_count if manifest else 0,
            "window_ms": args.window_ms,
            "ingest_concurrency": args.concurrency,
            "max_side_px": args.max_side,
            "relay_nacked": d.relay.stats.nacked,
        }
        details = {"latencies_s": [round(x, 4) for x in latencies], "ingest_ms": ingest_ms}
    return {"summary": summary, "details": details}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=60, help="paced uploads (latency)")
    parser.add_argument("--interval-s", type=float, default=1.0, help="pace of those uploads")
    parser.add_argument("--burst", type=int, default=40, help="uploads at once (throughput)")
    parser.add_argument("--max-side", type=int, default=480, help="downscale photos to this")
    parser.add_argument("--window-ms", type=float, default=200.0, help="indexer group commit")
    parser.add_argument("--concurrency", type=int, default=2, help="concurrent ingest requests")
    parser.add_argument("--poll-ms", type=float, default=50.0, help="searchability poll period")
    args = parser.parse_args(argv)
    # keep stdout for the summary: the functions log JSON lines at this level
    os.environ.setdefault("FACESEARCH_LOG_LEVEL", "WARNING")
    if args.uploads < 1:
        parser.error("--uploads must be >= 1")
    result = run(args)
    write_result("pipeline", result["summary"], result["details"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
