"""Reconcile a collection's index with its metadata store, the source of truth.

``facesearch index verify`` checks the index against itself; this checks it against
the records, in both directions (``facesearch doctor``):

* **missing**: a face of a ``done`` image, with the index's model, that is not live in
  the index (a lost embeddings message, the embedded crash of issue 18). Repair: its
  stored embedding is published to ``face-embeddings`` again (the indexer skips what is
  live, so a repair never duplicates).
* **orphans**: a live index entry without a face record (a forget whose deletion never
  reached the indexer). Repair: a ``face-deletions`` message.
* **unfinished**: a live entry whose image is not ``done`` (``failed`` after its faces
  were published). Repair: a deletion too.
* **stuck**: images ``processing`` for longer than the timeout (repaired by
  :mod:`facesearch.ops.sweep`, which re-queues them).
* **other_model**: faces embedded by another model than the index holds (reported; a
  ``rebuild`` or re-embed is the fix, not this).
* **index_twice**: face ids live in more than one segment (``index verify`` repairs
  nothing either; compaction drops them).

Repairs go through the bus like every other index write, so in the cloud the indexer
applies them (and announces them on ``face-events``); embedded, the caller drains its
in-process bus into its indexer.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facesearch.index.reader import IndexReader
from facesearch.storage.bus import Bus
from facesearch.storage.messages import DeletionsMessage, EmbeddingsMessage, chunked
from facesearch.storage.metadata import (
    FaceRecord,
    ImageStatus,
    MetadataStore,
    iter_faces,
    iter_images,
)

#: faces per repair message (the ingest's own default chunk)
REPAIR_CHUNK = 256
#: ids shown per finding in a report
SAMPLE = 10
FINDINGS = ("missing", "orphans", "unfinished", "stuck", "other_model", "index_twice", "expired")


@dataclass
class Reconciliation:
    collection_id: str
    index_model: str | None
    index_live: int
    records: int
    images_done: int
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    other_model: list[str] = field(default_factory=list)
    index_twice: list[str] = field(default_factory=list)
    #: images dropped as too old (failed event-expired): ``--repair`` re-queues them
    expired: list[str] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: the face records read (what a repair re-publishes); not part of the summary
    records_by_id: dict[str, FaceRecord] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Index and records agree (stuck images are in flight or need the sweep)."""
        return not (
            self.missing or self.orphans or self.unfinished or self.index_twice or self.stuck
        )

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "collection_id": self.collection_id,
            "index_model": self.index_model,
            "index_live": self.index_live,
            "records": self.records,
            "images_done": self.images_done,
        }
        for name in FINDINGS:
            ids = getattr(self, name)
            out[name] = len(ids)
            if ids:
                out[f"{name}_sample"] = ids[:SAMPLE]
        if self.repaired:
            out["repaired"] = self.repaired
        out["ok"] = self.ok
        out["seconds"] = round(self.seconds, 3)
        return out


def reconcile(
    store: MetadataStore,
    reader: IndexReader,
    *,
    stuck_after_s: float,
    now: float | None = None,
) -> Reconciliation:
    """Compare; changes nothing. ``reader`` is refreshed first."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    reader.refresh()
    manifest = reader.manifest
    index_model = str(manifest.model) if manifest is not None else None
    live_list = reader.face_ids()
    live = set(live_list)
    twice = sorted(f for f, n in Counter(live_list).items() if n > 1)
    status: dict[str, ImageStatus] = {}
    stuck: list[str] = []
    expired: list[str] = []
    for image in iter_images(store):
        status[image.image_id] = image.status
        if image.status is ImageStatus.PROCESSING and image.updated_at < now - stuck_after_s:
            stuck.append(image.image_id)
        if image.status is ImageStatus.FAILED and image.error_code == "event-expired":
            expired.append(image.image_id)
    records: dict[str, FaceRecord] = {}
    for face in iter_faces(store):
        records[face.face_id] = face
    report = Reconciliation(
        collection_id=store.collection_id,
        index_model=index_model,
        index_live=len(live),
        records=len(records),
        images_done=sum(1 for s in status.values() if s is ImageStatus.DONE),
        stuck=sorted(stuck),
        index_twice=twice,
        expired=sorted(expired),
    )
    for face_id, face in sorted(records.items()):
        image_status = status.get(face.image_id)
        if face_id in live:
            if image_status not in (ImageStatus.DONE, ImageStatus.PROCESSING):
                report.unfinished.append(face_id)
            continue
        if image_status is not ImageStatus.DONE:
            continue
        if index_model is not None and face.model != index_model:
            report.other_model.append(face_id)
        else:
            report.missing.append(face_id)
    report.orphans = sorted(live - records.keys())
    report.seconds = time.perf_counter() - started
    report.records_by_id = records
    return report


def repair(
    report: Reconciliation,
    bus: Bus,
    *,
    embeddings_topic: str,
    deletions_topic: str,
) -> dict[str, int]:
    """Publish what makes the index agree with the records again; counts queued."""
    records = report.records_by_id
    by_image: dict[tuple[str, str], list[FaceRecord]] = {}
    for face_id in report.missing:
        face = records[face_id]
        by_image.setdefault((face.image_id, face.model), []).append(face)
    messages = []
    for (image_id, model), faces in sorted(by_image.items()):
        for chunk in chunked(faces, REPAIR_CHUNK):
            messages.append(
                EmbeddingsMessage(
                    image_id,
                    model,
                    [f.face_id for f in chunk],
                    np.stack([f.vector() for f in chunk]),
                    None,
                    collection_id=report.collection_id,
                ).encode()
            )
    if messages:
        bus.publish(embeddings_topic, messages)
    remove = report.orphans + report.unfinished
    for chunk in chunked(remove, REPAIR_CHUNK):
        if chunk:
            bus.publish(
                deletions_topic,
                [
                    DeletionsMessage(
                        list(chunk), "reconcile", collection_id=report.collection_id
                    ).encode()
                ],
            )
    report.repaired = {"embeddings_queued": len(report.missing), "deletions_queued": len(remove)}
    return report.repaired


__all__ = ["Reconciliation", "reconcile", "repair"]
