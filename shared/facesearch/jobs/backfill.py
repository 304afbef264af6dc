"""``facesearch backfill``: ingest a whole existing library, resumably, in parallel tasks.

``gs://BUCKET[/PREFIX]``: lists the objects (image names only), and for each batch
publishes one ``ingest-requests`` message per object that is not ingested yet, so
Pub/Sub fans the work out to as many ingest instances as it needs; the job itself only
lists and publishes. A local folder (embedded mode) is ingested in this process by the
same pipeline as ``facesearch ingest``.

* **Tasks** split the listing by a stable hash of the name (:mod:`.tasks`): with
  ``CLOUD_RUN_TASK_COUNT`` tasks (or ``--tasks`` locally) each publishes its share.
* **Resumable**: after every batch a task writes a checkpoint (the last name it
  finished, its counts); a re-run of the same command continues after it. Listing
  order is by name, which GCS guarantees.
* **Idempotent**: image ids are stable (bucket, name, generation, collection), so an
  image already in the metadata store is skipped before publishing; one that is
  published twice anyway (a task killed between publish and checkpoint) is answered
  ``duplicate`` by ingest, which claims each image id once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from facesearch.backends import Backend
from facesearch.errors import ConfigError
from facesearch.ingest.sources import IMAGE_EXTENSIONS, SourceRef
from facesearch.jobs.tasks import Checkpoints, TaskSlot
from facesearch.storage.blob import BlobInfo
from facesearch.storage.bus import Message
from facesearch.storage.metadata import DEFAULT_COLLECTION

BATCH = 500
#: called after every batch with (names done in this batch, totals so far)
Progress = Callable[[int, "BackfillReport"], None]


@dataclass
class BackfillReport:
    """What one task did (``resumed_after``: the checkpoint it started from)."""

    source: str
    task: TaskSlot
    listed: int = 0
    owned: int = 0
    published: int = 0
    already_ingested: int = 0
    done_before: int = 0
    batches: int = 0
    seconds: float = 0.0
    resumed_after: str | None = None
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        handled = self.published + self.already_ingested
        return handled / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "task_index": self.task.index,
            "task_count": self.task.count,
            "listed": self.listed,
            "owned": self.owned,
            "published": self.published,
            "already_ingested": self.already_ingested,
            "done_before": self.done_before,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "per_s": round(self.per_s, 1),
            "resumed_after": self.resumed_after,
            "outcomes": dict(self.outcomes),
        }


def run_id_for(source: str, collection_id: str, task_count: int) -> str:
    """The same command resumes the same run (``--run-id`` to start another one)."""
    key = f"{source}\n{collection_id}\n{task_count}"
    return "backfill-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def is_image_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_EXTENSIONS


def ingest_request(bucket: str, blob: BlobInfo, collection_id: str) -> Message:
    """One ``ingest-requests`` message (schema v1, read by
    :func:`facesearch.ingest.sources.request_from_ingest_message`)."""
    source = SourceRef.gcs(bucket, blob.name, blob.generation, size=blob.size)
    image_id = source.in_collection(collection_id).image_id
    body = {
        "v": 1,
        "bucket": bucket,
        "name": blob.name,
        "generation": str(blob.generation),
        "size": str(blob.size),
        "collection": collection_id,
    }
    attributes = {
        "kind": "ingest-request",
        "source": "backfill",
        "collection": collection_id,
        "image_id": image_id,
    }
    return Message(json.dumps(body, sort_keys=True).encode(), attributes)


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Backfill:
    """One task of a backfill run (``run`` does its share, resuming from its checkpoint)."""

    def __init__(
        self,
        backend: Backend,
        source: str,
        *,
        collection_id: str = DEFAULT_COLLECTION,
        task: TaskSlot | None = None,
        run_id: str | None = None,
        batch_size: int = BATCH,
    ) -> None:
        self.backend = backend
        self.source = source
        self.collection_id = collection_id
        self.task = task or TaskSlot()
        self.batch_size = batch_size
        self.run_id = run_id or run_id_for(source, collection_id, self.task.count)
        self.local = not source.startswith("gs://")
        # checkpoints live beside what the job writes: the data folder, or the index bucket
        checkpoints_store = (
            backend.blob_store(backend.settings.data_dir)
            if self.local
            else backend.index_store(collection_id=collection_id)
        )
        self.checkpoints = Checkpoints(checkpoints_store, f"jobs/{self.run_id}")

    def run(self, *, restart: bool = False, progress: Progress | None = None) -> BackfillReport:
        report = BackfillReport(self.source, self.task)
        state = None if restart else self.checkpoints.read(self.task.label)
        after = state.get("after") if state else None
        if state:
            report.resumed_after = after
            report.done_before = int(state.get("done", 0))
        start = time.perf_counter()
        if self.local:
            self._run_local(report, after, progress)
        else:
            self._run_gcs(report, after, progress)
        report.seconds = time.perf_counter() - start
        self._save(report, None, finished=True)
        return report

    def _save(self, report: BackfillReport, after: str | None, *, finished: bool = False) -> None:
        done = report.done_before + report.published + report.already_ingested
        body: dict[str, Any] = {"done": done, "finished": finished, "report": report.to_dict()}
        if after is not None:
            body["after"] = after
        elif finished:
            previous = self.checkpoints.read(self.task.label) or {}
            if previous.get("after") is not None:
                body["after"] = previous["after"]
        self.checkpoints.write(self.task.label, body)

    # --- gs://bucket/prefix -------------------------------------------------------------

    def _run_gcs(
        self, report: BackfillReport, after: str | None, progress: Progress | None
    ) -> None:
        parsed = urlparse(self.source)
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
        if not bucket:
            raise ConfigError(f"backfill source {self.source!r} has no bucket name")
        listed = self.backend.bucket(bucket).list(prefix)
        report.listed = len(listed)
        mine = sorted(
            (b for b in listed if is_image_name(b.name) and self.task.owns(b.name)),
            key=lambda b: b.name,
        )
        report.owned = len(mine)
        todo = [b for b in mine if after is None or b.name > after]
        metadata = self.backend.metadata(self.collection_id)
        bus = self.backend.bus()
        topic = self.backend.settings.storage.ingest_topic
        for batch in _batches(todo, self.batch_size):
            messages = [ingest_request(bucket, b, self.collection_id) for b in batch]
            known = metadata.existing_images([m.attributes["image_id"] for m in messages])
            fresh = [m for m in messages if m.attributes["image_id"] not in known]
            if fresh:
                bus.publish(topic, fresh)
            report.published += len(fresh)
            report.already_ingested += len(messages) - len(fresh)
            report.batches += 1
            self._save(report, batch[-1].name)
            if progress is not None:
                progress(len(batch), report)

    # --- a local folder (embedded mode) -------------------------------------------------

    def _run_local(
        self, report: BackfillReport, after: str | None, progress: Progress | None
    ) -> None:
        from facesearch.local import EmbeddedSystem, iter_image_files

        root = Path(self.source.removeprefix("file://"))
        if not root.is_dir():
            raise ConfigError(f"backfill: {root} is not a folder")
        files = sorted(iter_image_files([root]))
        report.listed = len(files)
        named = [(p.relative_to(root).as_posix(), p) for p in files]
        mine = [(n, p) for n, p in named if self.task.owns(n)]
        report.owned = len(mine)
        todo = [(n, p) for n, p in mine if after is None or n > after]
        system = EmbeddedSystem(self.backend.settings, collection_id=self.collection_id)
        for batch in _batches(todo, self.batch_size):
            summary = system.ingest_files([p for _, p in batch])
            report.published += summary.images - summary.duplicates
            report.already_ingested += summary.duplicates
            report.outcomes["faces"] = report.outcomes.get("faces", 0) + summary.faces
            report.batches += 1
            self._save(report, batch[-1][0])
            if progress is not None:
                progress(len(batch), report)
