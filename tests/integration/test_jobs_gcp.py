"""Backfill and rebuild on the emulators (GCS, Pub/Sub, Firestore): the real adapters.

Backfill: two tasks publish every image of the prefix exactly once between them (names
that are not images are left out), a re-run resumes from the checkpoint and publishes
nothing, and images the metadata store already has are skipped by id.
Rebuild: two tasks rebuild a Firestore collection's index in a GCS bucket, and the
switched index holds every face once (metadata count == index live count).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from facesearch.backends import backend_for
from facesearch.config import Settings, load_settings
from facesearch.ingest.sources import SourceRef
from facesearch.jobs.backfill import Backfill
from facesearch.jobs.rebuild import Rebuild
from facesearch.jobs.tasks import TaskSlot
from facesearch.storage.metadata import ImageRecord, ImageStatus
from tests.integration.pipeline_harness import create_topics, pull_all
from tests.support import emulators
from tests.unit.jobs.test_rebuild import _face

pytestmark = pytest.mark.integration


def _settings(project: str, tmp_path: Path, index_bucket: str) -> Settings:
    return load_settings(
        backend="gcp",
        project=project,
        data_dir=tmp_path,
        index_url=f"gs://{index_bucket}/index",
        index_build_threads=1,
        index_auto_compact=False,
    )


@pytest.fixture
def buckets(gcs_emulator: emulators.Emulator) -> tuple[str, str]:
    from google.cloud import storage

    client = storage.Client(project="facesearch-test")
    names = (f"up-{uuid.uuid4().hex[:16]}", f"ix-{uuid.uuid4().hex[:16]}")
    for name in names:
        client.create_bucket(name)
    return names


def test_backfill_two_tasks_resume_and_skip_known_images(
    buckets: tuple[str, str],
    pubsub_emulator: emulators.Emulator,
    firestore_emulator: emulators.Emulator,
    gcp_project: str,
    tmp_path: Path,
) -> None:
    from google.cloud import pubsub_v1, storage

    uploads, index_bucket = buckets
    bucket = storage.Client(project="facesearch-test").bucket(uploads)
    names = [f"library/p{n:03d}.jpg" for n in range(40)]
    for name in [*names, "library/notes.txt", "elsewhere/x.jpg"]:
        bucket.blob(name).upload_from_string(b"not really a jpeg")
    create_topics(gcp_project, "ingest-requests")
    pubsub_v1.SubscriberClient().create_subscription(
        name=f"projects/{gcp_project}/subscriptions/backfill-watch",
        topic=f"projects/{gcp_project}/topics/ingest-requests",
    )
    backend = backend_for(_settings(gcp_project, tmp_path, index_bucket))
    source = f"gs://{uploads}/library"
    reports = [Backfill(backend, source, task=TaskSlot(i, 2), batch_size=7).run() for i in range(2)]
    assert sum(r.owned for r in reports) == 40 and all(r.owned > 5 for r in reports)
    bodies = [json.loads(m.data) for m in pull_all(gcp_project, "backfill-watch")]
    assert sorted(b["name"] for b in bodies) == names  # each image once, nothing else
    assert {b["bucket"] for b in bodies} == {uploads} and all(b["v"] == 1 for b in bodies)
    # a re-run of the same command resumes after its checkpoint: nothing new
    again = Backfill(backend, source, task=TaskSlot(0, 2)).run()
    assert again.published == 0 and again.resumed_after is not None
    # images already ingested are skipped by id (a restart ignores the checkpoint)
    store = backend.metadata()
    for body in bodies[:10]:
        image_id = SourceRef.gcs(uploads, body["name"], int(body["generation"])).image_id
        store.put_image(
            ImageRecord(image_id=image_id, source=body["name"], status=ImageStatus.DONE)
        )
    fresh = [Backfill(backend, source, task=TaskSlot(i, 2)).run(restart=True) for i in range(2)]
    assert sum(r.already_ingested for r in fresh) == 10
    assert sum(r.published for r in fresh) == 30
    assert len(pull_all(gcp_project, "backfill-watch")) == 30


def test_rebuild_two_tasks_on_firestore_and_gcs(
    buckets: tuple[str, str],
    firestore_emulator: emulators.Emulator,
    gcp_project: str,
    tmp_path: Path,
) -> None:
    backend = backend_for(_settings(gcp_project, tmp_path, buckets[1]))
    faces = [_face(n) for n in range(120)]
    store = backend.metadata()
    for face in faces:
        store.put_faces(face.image_id, [face])
    writer = backend.index_writer()
    writer.add(
        [f.face_id for f in faces[:30]], np.stack([f.vector() for f in faces[:30]]), faces[0].model
    )
    rebuild = Rebuild(backend, "rebuild-it", segment_size=25)
    rebuild.start()
    done = [rebuild.run_task(TaskSlot(i, 2)) for i in range(2)]
    assert sum(r.faces for r in done) == 120
    result = rebuild.switch(2)
    assert result.switched
    reader = backend.index_reader()
    assert sorted(reader.face_ids()) == sorted(f.face_id for f in faces)
    assert store.counts().faces == reader.live_count == 120
