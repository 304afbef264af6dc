"""Fault tolerance, measured: uploads flow while we break things on purpose.

``python -m tests.bench.faults [--uploads N] [--faults-per-kind K] [--short] [--seed S]``

The pipeline runs on the emulators with the real function processes (ingest and indexer
under ``functions-framework``, configured only by ``FACESEARCH_*``), wired as Terraform
wires it: uploads bucket -> object notifications -> an Eventarc-style relay -> ingest ->
Firestore + crops + ``face-embeddings`` -> Pub/Sub push -> indexer -> index bucket. While
``N`` uploads flow (one in fifteen a truncated JPEG, which must end ``failed`` with its
reason), ``K`` faults of each kind are injected at random moments:

* ``kill_ingest`` / ``kill_indexer``: ``kill -9`` of the function's process group, then a
  new process on the same port (as Cloud Run starts a new instance);
* ``restart_pubsub`` / ``restart_firestore`` / ``restart_gcs``: every connection to the
  emulator reset and new ones refused for 3 s by a loopback proxy, then the same emulator
  again. (The emulators keep their state only in memory, so killing them would lose what
  the real services never lose; a restart behind a stable address is what Cloud Run
  clients actually see.)
* ``gcs_429`` / ``gcs_503``: for 3 s the GCS proxy answers a share of requests itself;
* ``gcs_slow``: for 3 s every GCS response is held 1.5 s;
* ``duplicate`` / ``reorder``: for 5 s the proxies in front of ingest (Eventarc's
  deliveries) and of the indexer (Pub/Sub's pushes) deliver a share of requests twice, or
  hold them up to 3 s so that later ones overtake them.

Nothing repairs the system afterwards except what runs in production (redelivery,
retries); then every upload is checked against Firestore and the index: ``searchable``
(done, every face live in the index), ``failed_with_reason`` (failed with an error code),
``lost`` (anything else), ``duplicated`` (face ids live more than once), ``orphans``
(index entries without a record plus face records of done images not in the index),
whether the manifest loads and the reconciliation (``facesearch doctor``'s check) passes.
``p95_recovery_s``: per fault, from its start until the index next grows after the fault
ended (faults during which nothing was pending are left out).

The embedded crash case of issue 18 runs too (``embedded``): a ``facesearch ingest``
SIGKILLed between commits, a second run, and the same reconciliation.

Goal (issue 18): lost = duplicated = orphans = 0 with >= 20 faults of every kind over
>= 200 uploads (``--uploads 200 --faults-per-kind 20``, the default). ``--short``: 20
uploads, one fault of each kind (part of ``make test``). JSON summary printed last.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.bench.common import PHOTOS_DIR, ROOT, write_result
from tests.integration.pipeline_harness import (
    cloud_event_headers,
    create_push_subscription,
    create_topics,
    small_jpeg,
)
from tests.support import emulators
from tests.support.faults import EMBEDDED_KILLER, HttpFaultProxy, TcpProxy

KINDS = (
    "kill_ingest",
    "kill_indexer",
    "restart_pubsub",
    "restart_firestore",
    "restart_gcs",
    "gcs_429",
    "gcs_503",
    "gcs_slow",
    "duplicate",
    "reorder",
)
EVENTS_PROJECT = "fs-fault-events"
EVENTS_TOPIC = "gcs-events"
PHOTOS = (
    "labelled/obama/obama_1.jpg",
    "labelled/obama/obama_3.jpg",
    "labelled/biden/biden_1.jpg",
    "labelled/obama/obama_2.jpg",
    "labelled/tom_hanks/tom_hanks_1.png",
    "group/faceapi_sample2.jpg",
    "group/faceapi_sample4.jpg",
    "partial/obama_partial_1.jpg",
    "other/mask_blue.jpg",
)


def log(message: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Function:
    """One ``functions-framework`` process that can be killed -9 and started again."""

    def __init__(self, target: str, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.target, self.port, self.env, self.log_dir = target, port, env, log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log_path = self.log_dir / f"{self.target}-{self.starts}.log"
        cmd = [
            str(Path(sys.executable).parent / "functions-framework"),
            "--target", self.target,
            "--source", str(ROOT / "functions" / self.target / "main.py"),
            "--signature-type", "cloudevent",
            "--host", "127.0.0.1",
            "--port", str(self.port),
        ]  # fmt: skip
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        emulators.wait_until_http(self.url + "/", self.proc, log_path, timeout_s=60)

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill()


class Relay:
    """Eventarc's part: object notifications (pull) -> binary CloudEvents (POST); a
    failed delivery is nacked (after a short pause) and comes back, as with Eventarc."""

    def __init__(self, target_url: str, bucket: str) -> None:
        from google.cloud import pubsub_v1

        self.target_url, self.bucket = target_url, bucket
        self.subscriber = pubsub_v1.SubscriberClient()
        self.subscription = self.subscriber.create_subscription(
            name=f"projects/{EVENTS_PROJECT}/subscriptions/relay-{bucket}",
            topic=f"projects/{EVENTS_PROJECT}/topics/{EVENTS_TOPIC}",
            ack_deadline_seconds=120,
        ).name
        self.failed_deliveries = 0
        self._future = self.subscriber.subscribe(
            self.subscription,
            self._on_message,
            flow_control=pubsub_v1.types.FlowControl(max_messages=3),
        )

    def _on_message(self, message: Any) -> None:
        attrs = dict(message.attributes)
        if attrs.get("bucketId") != self.bucket or attrs.get("eventType") != "OBJECT_FINALIZE":
            message.ack()
            return
        headers = cloud_event_headers(attrs["bucketId"], attrs["objectId"], message.message_id)
        try:
            response = requests.post(
                self.target_url, data=message.data, headers=headers, timeout=300
            )
            ok = 200 <= response.status_code < 300
        except requests.RequestException:
            ok = False
        if ok:
            message.ack()
        else:
            self.failed_deliveries += 1
            time.sleep(1.0)  # Eventarc retries with backoff
            message.nack()

    def close(self) -> None:
        self._future.cancel()
        with contextlib.suppress(Exception):
            self._future.result(timeout=10)


@dataclass
class Fault:
    kind: str
    start: float
    end: float = 0.0


@dataclass
class Run:
    uploads: dict[str, tuple[int, bool]] = field(default_factory=dict)  # name -> (gen, bad)
    faults: list[Fault] = field(default_factory=list)
    live_samples: list[tuple[float, int]] = field(default_factory=list)


@contextlib.contextmanager
def emulator_stack(log_dir: Path) -> Iterator[dict[str, emulators.Emulator]]:
    with contextlib.ExitStack() as stack:
        pubsub = stack.enter_context(emulators.pubsub_emulator(log_dir))
        stack.enter_context(emulators.patched_env(pubsub.env))
        firestore = stack.enter_context(emulators.firestore_emulator(log_dir))
        stack.enter_context(emulators.patched_env(firestore.env))
        create_topics(EVENTS_PROJECT, EVENTS_TOPIC)
        events = ["-event.pubsub-project-id", EVENTS_PROJECT, "-event.pubsub-topic", EVENTS_TOPIC]
        gcs = stack.enter_context(emulators.gcs_emulator(log_dir, extra_args=events))
        stack.enter_context(emulators.patched_env(gcs.env))
        yield {"pubsub": pubsub, "firestore": firestore, "gcs": gcs}


def photo_bytes() -> list[bytes]:
    return [small_jpeg(PHOTOS_DIR / rel, max_side=400) for rel in PHOTOS]


def inject(fault: str, *, ingest: Function, indexer: Function, proxies: dict[str, Any]) -> None:
    if fault == "kill_ingest":
        ingest.kill()
        ingest.start()
    elif fault == "kill_indexer":
        indexer.kill()
        indexer.start()
    elif fault == "restart_pubsub":
        proxies["pubsub"].outage(3.0)
        time.sleep(3.0)
    elif fault == "restart_firestore":
        proxies["firestore"].outage(3.0)
        time.sleep(3.0)
    elif fault == "restart_gcs":
        proxies["gcs"].outage(3.0)
        time.sleep(3.0)
    elif fault in ("gcs_429", "gcs_503"):
        proxies["gcs"].errors(int(fault[-3:]), 3.0, share=0.5)
        time.sleep(3.0)
    elif fault == "gcs_slow":
        proxies["gcs"].slow(1.5, 3.0)
        time.sleep(3.0)
    elif fault == "duplicate":
        proxies["ingest"].duplicate(5.0)
        proxies["push"].duplicate(5.0)
        time.sleep(5.0)
    elif fault == "reorder":
        proxies["ingest"].reorder(3.0, 5.0)
        proxies["push"].reorder(3.0, 5.0)
        time.sleep(5.0)
    else:  # pragma: no cover
        raise ValueError(fault)


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * (len(ordered) - 1) + 0.5))], 2)


def recovery_times(run: Run) -> list[float]:
    out = []
    samples = run.live_samples
    for fault in run.faults:
        before = [live for t, live in samples if t <= fault.start]
        base = before[-1] if before else 0
        after = [t for t, live in samples if t >= fault.end and live > base]
        if after:
            out.append(after[0] - fault.start)
    return out


def cloud_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from google.cloud import storage

    from facesearch.backends import backend_for
    from facesearch.config import load_settings
    from facesearch.index.reader import IndexReader
    from facesearch.ingest.sources import SourceRef
    from facesearch.ops.reconcile import reconcile
    from facesearch.storage.metadata import ImageStatus
    from tests.data.image_corpus import build_corpus

    rng = random.Random(args.seed)
    log_dir = work / "logs"
    project = f"fs-faults-{rng.randrange(16**8):08x}"
    bucket, crops, index_bucket = "uploads-faults", "crops-faults", "index-faults"
    with emulator_stack(log_dir) as emu:
        proxies: dict[str, Any] = {
            "pubsub": TcpProxy((emu["pubsub"].host, emu["pubsub"].port)),
            "firestore": TcpProxy((emu["firestore"].host, emu["firestore"].port)),
            "gcs": HttpFaultProxy(emu["gcs"].port, seed=args.seed),
        }
        client = storage.Client(project=project)
        for name in (bucket, crops, index_bucket):
            client.create_bucket(name)
        create_topics(
            project, "face-embeddings", "face-deletions", "face-events", "ingest-requests"
        )
        base_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)]),
            "PUBSUB_EMULATOR_HOST": proxies["pubsub"].address,
            "FIRESTORE_EMULATOR_HOST": proxies["firestore"].address,
            "STORAGE_EMULATOR_HOST": proxies["gcs"].url,
            "FACESEARCH_ENV": "test",
            "FACESEARCH_BACKEND": "gcp",
            "FACESEARCH_PROJECT": project,
            "FACESEARCH_UPLOADS_BUCKET": bucket,
            "FACESEARCH_CROPS_BUCKET": crops,
            "FACESEARCH_INDEX_URL": f"gs://{index_bucket}/index",
            "FACESEARCH_INDEXER_COMMIT_WINDOW_MS": "100",
            "FACESEARCH_INDEX_BUILD_THREADS": "1",
            "FACESEARCH_LOG_JSON": "true",
        }
        ingest = Function(
            "ingest", emulators.free_port(), base_env | {"FACESEARCH_DATA_DIR": str(work / "i")},
            log_dir,
        )  # fmt: skip
        indexer = Function(
            "indexer", emulators.free_port(), base_env | {"FACESEARCH_DATA_DIR": str(work / "x")},
            log_dir,
        )  # fmt: skip
        ingest.start()
        indexer.start()
        proxies["ingest"] = HttpFaultProxy(ingest.port, seed=args.seed + 1)
        proxies["push"] = HttpFaultProxy(indexer.port, seed=args.seed + 2)
        create_push_subscription(project, "face-embeddings", "indexer-push", proxies["push"].url)
        create_push_subscription(project, "face-deletions", "indexer-del", proxies["push"].url)
        relay = Relay(proxies["ingest"].url, bucket)
        settings = load_settings(
            backend="gcp", project=project, index_url=f"gs://{index_bucket}/index",
            data_dir=work / "checker",
        )  # fmt: skip
        backend = backend_for(settings)
        reader = IndexReader(backend.index_store(), cache_dir=work / "reader-cache")
        run = Run()
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                with contextlib.suppress(Exception):
                    reader.refresh()
                    run.live_samples.append((time.monotonic(), reader.live_count))
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        photos = photo_bytes()
        bad = next(c.data for c in build_corpus(include_huge=False) if c.name == "truncated_jpeg")
        schedule = [k for k in KINDS for _ in range(args.faults_per_kind)]
        rng.shuffle(schedule)
        upload_gap = args.upload_interval_s
        fault_gap = max(1.0, upload_gap * args.uploads / max(1, len(schedule)))
        uploads_bucket = client.bucket(bucket)

        def upload_all() -> None:
            for i in range(args.uploads):
                is_bad = i % 15 == 7
                data = bad if is_bad else photos[i % len(photos)]
                name = f"u{i:04d}.jpg"
                blob = uploads_bucket.blob(name)
                blob.upload_from_string(data, content_type="image/jpeg")
                run.uploads[name] = (int(blob.generation), is_bad)
                time.sleep(upload_gap)

        uploader = threading.Thread(target=upload_all, daemon=True)
        started = time.monotonic()
        uploader.start()
        for kind in schedule:
            time.sleep(rng.uniform(0.3, 1.7) * fault_gap / 2)
            fault = Fault(kind, time.monotonic())
            log(f"fault {len(run.faults) + 1}/{len(schedule)}: {kind}")
            inject(kind, ingest=ingest, indexer=indexer, proxies=proxies)
            fault.end = time.monotonic()
            run.faults.append(fault)
        uploader.join()
        log(f"{len(run.uploads)} uploads, {len(run.faults)} faults; waiting for the pipeline")

        store = backend.metadata()

        def image_id(name: str) -> str:
            return SourceRef.gcs(bucket, name, run.uploads[name][0]).image_id

        deadline = time.monotonic() + args.settle_s
        pending = set(run.uploads)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                with contextlib.suppress(Exception):
                    record = store.get_image(image_id(name))
                    if record is not None and record.status in (
                        ImageStatus.DONE,
                        ImageStatus.FAILED,
                    ):
                        pending.discard(name)
            time.sleep(1.0)
        time.sleep(3.0)  # the last commits
        quiet_deadline = time.monotonic() + 60
        last = -1
        while time.monotonic() < quiet_deadline:  # wait until the index stops growing
            reader.refresh()
            if reader.live_count == last:
                break
            last = reader.live_count
            time.sleep(4.0)
        done.set()
        watcher.join(5)
        elapsed = time.monotonic() - started

        manifest_loads = True
        try:
            reader.refresh()
            live_ids = reader.face_ids()
        except Exception as exc:
            manifest_loads = False
            live_ids = []
            log(f"manifest does not load: {exc!r}")
        live = Counter(live_ids)
        searchable = failed = lost = 0
        lost_examples: list[str] = []
        for name in sorted(run.uploads):
            record = store.get_image(image_id(name))
            if record is not None and record.status is ImageStatus.FAILED and record.error_code:
                failed += 1
                continue
            if record is not None and record.status is ImageStatus.DONE:
                faces = store.list_faces(image_id=record.image_id, limit=1000).items
                if all(f.face_id in live for f in faces):
                    searchable += 1
                    continue
            lost += 1
            lost_examples.append(f"{name}: {record.status if record else 'no record'}")
        report = reconcile(
            store,
            backend.index_reader(),
            stuck_after_s=settings.ops.stuck_after_s,
        )
        relay.close()
        faults_by_kind = Counter(f.kind for f in run.faults)
        gcs_injected = dict(proxies["gcs"].injected)
        delivery_injected = {
            k: proxies["ingest"].injected[k] + proxies["push"].injected[k]
            for k in ("duplicated", "reordered")
        }
        for proxy in proxies.values():
            with contextlib.suppress(Exception):
                proxy.close()
        ingest.stop()
        indexer.stop()
    recoveries = recovery_times(run)
    return {
        "uploads": len(run.uploads),
        "bad_uploads": sum(1 for _, is_bad in run.uploads.values() if is_bad),
        "faults_injected": len(run.faults),
        "faults_by_kind": dict(sorted(faults_by_kind.items())),
        "gcs_requests_faulted": gcs_injected,
        "deliveries_faulted": delivery_injected,
        "relay_failed_deliveries": relay.failed_deliveries,
        "searchable": searchable,
        "failed_with_reason": failed,
        "lost": lost,
        "lost_examples": lost_examples[:10],
        "duplicated": sum(1 for n in live.values() if n > 1),
        "orphans": len(report.orphans) + len(report.unfinished) + len(report.missing),
        "manifest_loads": manifest_loads,
        "reconciliation_ok": report.ok,
        "reconciliation": report.summary(),
        "faces_live": len(live),
        "recoveries_measured": len(recoveries),
        "p95_recovery_s": p95(recoveries),
        "max_recovery_s": round(max(recoveries), 2) if recoveries else None,
        "seconds": round(elapsed, 1),
    }


def embedded_run(work: Path, kills: int, seed: int) -> dict[str, Any]:
    """Issue 18's embedded crash: ``kills`` runs SIGKILLed between commits, then one that
    finishes; then the index is reconciled with the metadata store."""
    from facesearch.config import load_settings
    from facesearch.local import EmbeddedSystem
    from facesearch.ops.reconcile import reconcile

    rng = random.Random(seed)
    folder = work / "embedded-photos"
    folder.mkdir()
    for n, data in enumerate(photo_bytes()):
        (folder / f"p{n}.jpg").write_bytes(data)
    data_dir = work / "embedded-state"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])}
    killed = 0
    for _ in range(kills):
        proc = subprocess.run(
            [sys.executable, "-c", EMBEDDED_KILLER, str(data_dir), str(folder),
             str(rng.randint(1, 3))],
            env=env, capture_output=True, timeout=600, check=False,
        )  # fmt: skip
        killed += proc.returncode == -signal.SIGKILL
    system = EmbeddedSystem(load_settings(data_dir=data_dir, log_json=False))
    system.ingest_files(sorted(folder.iterdir()))
    report = reconcile(system.metadata, system.reader(), stuck_after_s=3600)
    return {
        "killed_runs": killed,
        "images": len(list(folder.iterdir())),
        "face_records": report.records,
        "faces_live": report.index_live,
        "missing": len(report.missing),
        "orphans": len(report.orphans) + len(report.unfinished),
        "reconciliation_ok": report.ok,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=None)
    parser.add_argument("--faults-per-kind", type=int, default=None)
    parser.add_argument("--short", action="store_true", help="20 uploads, 1 fault per kind")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--upload-interval-s", type=float, default=None)
    parser.add_argument("--settle-s", type=float, default=None, help="wait for stragglers")
    args = parser.parse_args(argv)
    args.uploads = args.uploads or (20 if args.short else 200)
    args.faults_per_kind = args.faults_per_kind or (1 if args.short else 20)
    args.upload_interval_s = args.upload_interval_s or (1.0 if args.short else 2.0)
    args.settle_s = args.settle_s or (180.0 if args.short else 600.0)
    work = Path(tempfile.mkdtemp(prefix="fs-faults-"))
    try:
        summary = cloud_run(args, work)
        summary["embedded"] = embedded_run(work, kills=1 if args.short else 5, seed=args.seed)
    finally:
        if os.environ.get("FACESEARCH_KEEP_FAULT_LOGS"):
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary["goal_met"] = (
        summary["lost"] == summary["duplicated"] == summary["orphans"] == 0
        and summary["manifest_loads"]
        and summary["reconciliation_ok"]
        and summary["embedded"]["reconciliation_ok"]
        and summary["uploads"] >= 200
        and all(n >= 20 for n in summary["faults_by_kind"].values())
        and len(summary["faults_by_kind"]) == len(KINDS)
    )
    write_result("faults" + ("-short" if args.short else ""), summary)
    print(json.dumps(summary), flush=True)
    return summary


__all__ = ["KINDS", "main"]

if __name__ == "__main__":
    main()
