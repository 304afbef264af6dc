"""Upload -> notification -> ingest -> Pub/Sub push -> indexer -> bucket index -> search.

Everything runs on the real emulators with the official clients: fake-gcs-server
publishes the object notifications, Google's Pub/Sub emulator pushes
face-embeddings to a real ``functions-framework`` indexer process, Google's
Firestore emulator holds the records. See ``pipeline_harness`` for the wiring.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from facesearch.config import load_settings
from facesearch.storage.messages import EmbeddingsMessage
from facesearch.storage.metadata import ImageStatus
from facesearch.vision.pipeline import FacePipeline
from tests.data.image_corpus import build_corpus
from tests.integration.pipeline_harness import Deployment, small_jpeg, wait_for
from tests.support import emulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TERMINAL = {"done", "failed"}


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    pipeline = FacePipeline(load_settings())
    pipeline.warm_up()
    return pipeline


@pytest.fixture
def services(
    gcs_emulator: emulators.Emulator,
    pubsub_emulator: emulators.Emulator,
    firestore_emulator: emulators.Emulator,
    emulator_log_dir: Path,
) -> None:
    """All three emulators up (GCS publishes its notifications to Pub/Sub)."""


@pytest.fixture
def deploy(
    services: None,
    gcp_project: str,
    tmp_path: Path,
    emulator_log_dir: Path,
    pipeline: FacePipeline,
) -> Callable[..., Deployment]:
    """``deploy(indexers=2, relay_repeat=10, ...)``: a fresh deployment in a fresh project."""

    def make(**kwargs: Any) -> Deployment:
        return Deployment(
            project=gcp_project, tmp=tmp_path, log_dir=emulator_log_dir, pipeline=pipeline, **kwargs
        )

    return make


@pytest.fixture
def deployment(deploy: Callable[..., Deployment]) -> Iterator[Deployment]:
    with deploy() as d:
        yield d


def test_upload_becomes_searchable(
    deployment: Deployment, photos_dir: Path, pipeline: FacePipeline
) -> None:
    d = deployment
    photos = {
        "people/obama.jpg": small_jpeg(photos_dir / "labelled/obama/obama_1.jpg"),
        "people/biden.jpg": small_jpeg(photos_dir / "labelled/biden/biden_1.jpg"),
        "people/hanks.jpg": small_jpeg(photos_dir / "labelled/tom_hanks/tom_hanks_1.png"),
    }
    for name, data in photos.items():
        d.upload(name, data)
    wait_for("all images done", lambda: all(d.status(n) in TERMINAL for n in photos), 180)
    assert {n: d.status(n) for n in photos} == dict.fromkeys(photos, "done")
    face_ids = {
        f.face_id for n in photos for f in d.metadata.list_faces(image_id=d.image_id(n)).items
    }
    assert len(face_ids) == 3
    wait_for("faces searchable", lambda: d.searchable_ids() >= face_ids, 60)

    # who looks like this other photo of Obama? -> the uploaded Obama image
    query = pipeline.process(small_jpeg(photos_dir / "labelled/obama/obama_2.jpg")).faces[0]
    assert query.embedding is not None
    best = d.reader.search_one(query.embedding, k=3)[0]
    record = d.metadata.get_face(best.face_id)
    assert record is not None and record.image_id == d.image_id("people/obama.jpg")
    image = d.metadata.get_image(record.image_id)
    assert image is not None and image.source.startswith(
        f"gs://{d.uploads_bucket}/people/obama.jpg#"
    )
    assert best.similarity > 0.92
    # a JPEG crop per face in the crops bucket, and face-events announced the faces
    from google.cloud import storage

    crops = list(storage.Client(project=d.project).list_blobs(d.crops_bucket))
    assert len(crops) == 3 and all(b.name.endswith(".jpg") for b in crops)
    added = {f for e in d.face_events() if e.event == "face_added" for f in e.face_ids}
    assert added >= face_ids
    assert d.relay.stats.nacked == 0


def test_every_event_delivered_ten_times_leaves_no_duplicates(
    deploy: Callable[..., Deployment], photos_dir: Path
) -> None:
    with deploy(relay_repeat=10) as d:
        names = [f"batch/obama_{i}.jpg" for i in range(3)]
        data = small_jpeg(photos_dir / "labelled/obama/obama_3.jpg")
        for name in names:
            d.upload(name, data)
        wait_for("images done", lambda: all(d.status(n) == "done" for n in names), 180)
        wait_for("relay finished", lambda: d.relay.stats.delivered >= 30, 120)
        counts = d.metadata.counts()
        assert counts.images == 3 and counts.faces == 3  # 30 deliveries, 3 images, 3 faces
        face_ids = {f.face_id for f in d.metadata.list_faces().items}
        wait_for("faces searchable", lambda: d.searchable_ids() >= face_ids, 60)

        # and every embeddings message published 10 more times straight to the topic
        from facesearch.storage.gcp.bus import PubSubBus

        bus = PubSubBus(d.project)
        for face in d.metadata.list_faces().items:
            message = EmbeddingsMessage(
                face.image_id, face.model, [face.face_id], face.vector()[None, :]
            ).encode()
            bus.publish("face-embeddings", [message] * 10)
        wait_for(
            "re-published messages processed",
            lambda: _indexed_messages(d) >= 3 + 30,
            120,
            poll_s=0.5,
        )
        d.reader.refresh()
        live = d.reader.face_ids()
        assert sorted(live) == sorted(face_ids)  # no duplicate index entries
        assert d.reader.manifest is not None and d.reader.manifest.live_count == 3


def _indexed_messages(d: Deployment, instances: list[int] | None = None) -> int:
    """Messages the indexer instance(s) acknowledged, counted from their JSON log lines."""
    import json

    total = 0
    for n in range(d.indexers) if instances is None else instances:
        log = d.log_dir / f"indexer{n}-{d.project}.log"
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"embeddings indexed"' in line:
                total += int(json.loads(line).get("messages", 0))
    return total


def test_two_indexer_instances_lose_nothing(
    deploy: Callable[..., Deployment], photos_dir: Path
) -> None:
    """Two instances, each pushed every message, racing on the manifest precondition."""
    with deploy(indexers=2, window_ms=50) as d:
        sources = [
            "labelled/obama/obama_1.jpg",
            "labelled/biden/biden_1.jpg",
            "labelled/obama/obama_2.jpg",
            "labelled/obama/obama_3.jpg",
        ]
        names = []
        for i in range(8):
            name = f"race/{i}.jpg"
            d.upload(name, small_jpeg(photos_dir / sources[i % len(sources)], max_side=360))
            names.append(name)
        wait_for("images done", lambda: all(d.status(n) in TERMINAL for n in names), 240)
        face_ids = {f.face_id for f in d.metadata.list_faces(limit=1000).items}
        assert len(face_ids) >= 8
        wait_for("all faces searchable", lambda: d.searchable_ids() >= face_ids, 120)
        live = d.reader.face_ids()
        assert len(live) == len(set(live)) == len(face_ids)  # nothing lost, nothing twice
        wait_for(
            "both instances indexed", lambda: all(_indexed_messages(d, [n]) for n in (0, 1)), 30
        )


def test_bad_image_corpus_gets_typed_failures_without_retry_storm(
    deployment: Deployment,
) -> None:
    d = deployment
    cases = {f"corpus/{c.name}.jpg": c for c in build_corpus(include_huge=False)}
    for name, case in cases.items():
        d.upload(name, case.data)
    wait_for("corpus processed", lambda: all(d.status(n) in TERMINAL for n in cases), 300, 0.5)
    for name, case in cases.items():
        record = d.metadata.get_image(d.image_id(name))
        assert record is not None, name
        if case.outcome == "ok":
            assert record.status is ImageStatus.DONE, (name, record.error_code)
        else:
            assert record.status is ImageStatus.FAILED, name
            assert record.error_code == case.outcome, (name, record.error_code)
            assert record.attempts <= 1
    # every event acknowledged on its first delivery: bad images are final, not retried
    assert d.relay.stats.nacked == 0
    assert d.relay.stats.delivered == len(cases)
    face_ids = {f.face_id for f in d.metadata.list_faces(limit=1000).items}
    wait_for("good faces searchable", lambda: d.searchable_ids() >= face_ids, 60)


def test_ingest_request_pushed_by_pubsub(
    deployment: Deployment, photos_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The Cloudinary path's queue: an ingest-requests message pushed to the ingest function."""
    import json
    import uuid

    from google.cloud import storage

    from facesearch.ingest.sources import SourceRef
    from facesearch.storage.bus import Message
    from facesearch.storage.gcp.bus import PubSubBus
    from tests.integration.pipeline_harness import create_push_subscription

    d = deployment
    other = storage.Client(project=d.project).create_bucket(f"other-{uuid.uuid4().hex[:12]}")
    blob = other.blob("elsewhere/obama.jpg")  # not the watched bucket: only the request ingests it
    blob.upload_from_string(small_jpeg(photos_dir / "labelled/obama/obama_1.jpg"))
    assert blob.generation is not None
    create_push_subscription(d.project, "ingest-requests", "ingest-push", d.ingest_url)
    body = {"v": 1, "bucket": other.name, "name": blob.name, "generation": blob.generation}
    bus = PubSubBus(d.project)
    bus.publish("ingest-requests", [Message(json.dumps(body).encode())] * 3)  # + 2 duplicates
    image_id = SourceRef.gcs(other.name, blob.name, int(blob.generation)).image_id

    def done() -> bool:
        record = d.metadata.get_image(image_id)
        return record is not None and record.status is ImageStatus.DONE

    wait_for("requested image done", done, 120)
    faces = d.metadata.list_faces(image_id=image_id).items
    assert len(faces) == 1
    wait_for("face searchable", lambda: faces[0].face_id in d.searchable_ids(), 60)
    bus.publish("ingest-requests", [Message(b"{not json")])  # poison: acked, not retried

    def poison_acks() -> int:
        return sum("acknowledged without processing" in r.getMessage() for r in caplog.records)

    wait_for("poison acknowledged", lambda: poison_acks() >= 1, 30)
    time.sleep(2.0)  # a nack would come back within the emulator's retry delay
    assert poison_acks() == 1
