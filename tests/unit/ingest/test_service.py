"""Ingest service and its event handler on the embedded adapters with the real models."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch.backends.local import LocalBackend
from facesearch.config import Settings, load_settings
from facesearch.errors import TransientError
from facesearch.ingest.entry import handle_event
from facesearch.ingest.service import MAX_PROCESSING_ATTEMPTS, IngestService, Outcome
from facesearch.ingest.sources import (
    PUBSUB_PUBLISHED,
    STORAGE_FINALIZED,
    SourceRef,
    face_id_for,
    image_id_for,
)
from facesearch.storage.bus import Message
from facesearch.storage.local.blob import LocalBlobStore
from facesearch.storage.local.bus import InProcessBus
from facesearch.storage.messages import DeletionsMessage, EmbeddingsMessage
from facesearch.storage.metadata import FaceRecord, ImageRecord, ImageStatus
from facesearch.vision.pipeline import FacePipeline
from tests.data.image_corpus import build_corpus

BUCKET = "uploads"


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    pipeline = FacePipeline(load_settings())
    pipeline.warm_up()
    return pipeline


class World:
    """One ingest service on SQLite + a local crops dir + an in-process bus."""

    def __init__(self, tmp: Path, pipeline: FacePipeline, **overrides: object) -> None:
        self.settings: Settings = load_settings(data_dir=tmp, **overrides)
        self.objects: dict[str, tuple[bytes, int]] = {}
        self.crops = LocalBlobStore(tmp / "crops")
        self.bus = InProcessBus()
        self.backend = LocalBackend(self.settings).override(pipeline=pipeline, bus=self.bus)
        self.metadata = self.backend.metadata()
        self.loads = 0
        self.service = IngestService(
            self.settings,
            stores=self.backend.metadata,
            pipelines=self.backend.pipeline,
            collections=self.backend.collections(),
            crops=self.crops,
            bus=self.bus,
            loader=self._load,
        )

    def _load(self, source: SourceRef) -> tuple[bytes, int | None]:
        self.loads += 1
        from facesearch.errors import NotFound

        if source.name not in self.objects:
            raise NotFound(source.name)
        return self.objects[source.name]

    def upload(self, name: str, data: bytes, generation: int = 1) -> SourceRef:
        self.objects[name] = (data, generation)
        return SourceRef.gcs(BUCKET, name, generation, size=len(data))

    def embeddings(self) -> list[EmbeddingsMessage]:
        return [EmbeddingsMessage.decode(m) for m in self.bus.published.get("face-embeddings", [])]


@pytest.fixture
def world(tmp_path: Path, pipeline: FacePipeline) -> Iterator[World]:
    w = World(tmp_path, pipeline)
    yield w
    w.metadata.close()


def test_photo_becomes_records_crops_and_embeddings(world: World, photos_dir: Path) -> None:
    data = (photos_dir / "group/insightface_t1.jpg").read_bytes()
    source = world.upload("party/t1.jpg", data, generation=17)
    outcome = world.service.ingest(source)
    assert outcome.outcome is Outcome.DONE and outcome.faces == 6
    assert outcome.image_id == image_id_for(f"gs://{BUCKET}/party/t1.jpg#17")
    image = world.metadata.get_image(outcome.image_id)
    assert image is not None and image.status is ImageStatus.DONE
    assert image.face_count == 6 and (image.width, image.height) == (1280, 886)
    assert image.model == world.service.pipeline.embedder.model_id and image.attempts == 1
    assert {"detect", "embed", "publish", "metadata"} <= set(image.timings_ms)
    faces = world.metadata.list_faces(image_id=outcome.image_id).items
    assert [f.face_id for f in faces] == [face_id_for(outcome.image_id, i) for i in range(6)]
    for face in faces:
        assert face.dims == 128 and abs(np.linalg.norm(face.vector()) - 1.0) < 1e-3
        assert face.crop_url is not None and len(face.landmarks) == 5
        crop, _ = world.crops.read(face.crop_url.rsplit("/crops/", 1)[1])
        assert crop[:3] == b"\xff\xd8\xff"  # a JPEG per face
    (message,) = world.bus.published["face-embeddings"]
    assert message.attributes["image_id"] == outcome.image_id
    assert message.attributes["model"] == world.service.pipeline.embedder.model_id
    sent = world.embeddings()[0]
    assert sent.face_ids == [f.face_id for f in faces]
    assert np.allclose(sent.vectors, np.stack([f.vector() for f in faces]))


def test_faces_are_batched_into_messages(
    tmp_path: Path, pipeline: FacePipeline, photos_dir: Path
) -> None:
    world = World(tmp_path, pipeline, ingest_faces_per_message=4)
    data = (photos_dir / "group/insightface_t1.jpg").read_bytes()
    world.service.ingest(world.upload("t1.jpg", data))
    assert [len(m.face_ids) for m in world.embeddings()] == [4, 2]


def test_redelivery_ten_times_is_idempotent(world: World, photos_dir: Path) -> None:
    source = world.upload("a.jpg", (photos_dir / "labelled/obama/obama_1.jpg").read_bytes())
    outcomes = [world.service.ingest(source) for _ in range(10)]
    assert outcomes[0].outcome is Outcome.DONE
    assert {o.outcome for o in outcomes[1:]} == {Outcome.DUPLICATE}
    assert world.metadata.counts().faces == 1
    # each redelivery re-sends the stored embeddings (the indexer skips live faces; a face
    # recorded but never indexed is repaired this way), always the same face ids
    assert len(world.embeddings()) == 10
    assert {tuple(m.face_ids) for m in world.embeddings()} == {(f"{source.image_id}-0",)}
    assert world.loads == 1  # duplicates are acknowledged before any download


def test_crash_after_faces_reprocesses_to_the_same_ids(world: World, photos_dir: Path) -> None:
    """A crash between faces and done: the redelivery rewrites the same records."""
    source = world.upload("b.jpg", (photos_dir / "group/insightface_t1.jpg").read_bytes())
    first = world.service.ingest(source)
    before = {f.face_id: f.embedding for f in world.metadata.list_faces(limit=100).items}
    image = world.metadata.get_image(first.image_id)
    assert image is not None
    from dataclasses import replace

    world.metadata.put_image(replace(image, status=ImageStatus.PROCESSING))
    again = world.service.ingest(source)
    assert again.outcome is Outcome.DONE
    after = {f.face_id: f.embedding for f in world.metadata.list_faces(limit=100).items}
    assert after == before  # same ids, same vectors: the index will ignore the re-publish
    assert world.metadata.get_image(first.image_id).attempts == 2  # type: ignore[union-attr]


def test_bad_image_corpus_gets_typed_failures(world: World) -> None:
    for case in build_corpus(include_huge=False):
        outcome = world.service.ingest(world.upload(f"corpus/{case.name}.jpg", case.data))
        record = world.metadata.get_image(outcome.image_id)
        assert record is not None, case.name
        if case.outcome == "ok":
            assert outcome.outcome is Outcome.DONE, (case.name, outcome)
            assert record.status is ImageStatus.DONE
        else:
            assert outcome.outcome is Outcome.FAILED, (case.name, outcome)
            assert record.status is ImageStatus.FAILED and record.error_code == case.outcome
            assert record.error_message


def test_size_cap_refuses_before_download(world: World) -> None:
    source = SourceRef.gcs(BUCKET, "big.jpg", 1, size=world.settings.vision.max_image_bytes + 1)
    outcome = world.service.ingest(source)
    assert outcome.outcome is Outcome.FAILED and outcome.error_code == "image-too-large"
    assert world.loads == 0


def test_skips_own_outputs_and_non_images(world: World) -> None:
    crop = world.upload("crops/x/0.jpg", b"\xff\xd8\xff")
    assert world.service.ingest(crop).outcome is Outcome.SKIPPED
    notes = world.upload("notes/readme.txt", b"hello, not an image")
    assert world.service.ingest(notes).outcome is Outcome.SKIPPED
    assert world.metadata.counts().images == 0
    disguised = world.upload("fake.jpg", b"hello, not an image")  # claims to be one: recorded
    outcome = world.service.ingest(disguised)
    assert outcome.outcome is Outcome.FAILED and outcome.error_code == "invalid-image"


def test_overwritten_or_deleted_object_is_superseded(world: World) -> None:
    stale = SourceRef.gcs(BUCKET, "p.jpg", 1, size=10)
    world.objects["p.jpg"] = (b"\xff\xd8\xffnewer", 2)
    assert world.service.ingest(stale).outcome is Outcome.SUPERSEDED
    gone = SourceRef.gcs(BUCKET, "gone.jpg", 1)
    assert world.service.ingest(gone).outcome is Outcome.SUPERSEDED


def test_transient_failure_raises_then_retry_succeeds(world: World, photos_dir: Path) -> None:
    source = world.upload("c.jpg", (photos_dir / "labelled/obama/obama_2.jpg").read_bytes())
    real_publish = world.bus.publish

    def down(topic: str, messages: object) -> list[str]:
        raise TransientError("pubsub unavailable")

    world.bus.publish = down  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        world.service.ingest(source)
    record = world.metadata.get_image(source.image_id)
    assert record is not None and record.status is ImageStatus.PROCESSING  # not done: no loss
    world.bus.publish = real_publish  # type: ignore[method-assign]
    assert world.service.ingest(source).outcome is Outcome.DONE
    assert len(world.embeddings()) == 1


def test_image_that_keeps_crashing_is_failed_not_retried_forever(
    world: World, photos_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = world.upload("d.jpg", (photos_dir / "labelled/obama/obama_3.jpg").read_bytes())

    def crash(data: bytes, **_: object) -> object:
        raise TransientError("instance ran out of memory")

    monkeypatch.setattr(world.service.pipeline, "process", crash)
    for _ in range(MAX_PROCESSING_ATTEMPTS):
        with pytest.raises(TransientError):
            world.service.ingest(source)
    outcome = world.service.ingest(source)
    assert outcome.outcome is Outcome.FAILED and outcome.error_code == "too-many-attempts"


def test_event_handler_maps_outcomes_to_ack_or_retry(world: World, photos_dir: Path) -> None:
    data = (photos_dir / "labelled/biden/biden_1.jpg").read_bytes()
    world.objects["e.jpg"] = (data, 5)
    storage_event = {
        "bucket": BUCKET,
        "name": "e.jpg",
        "generation": "5",
        "size": str(len(data)),
        "contentType": "image/jpeg",
        "timeCreated": "2026-11-23T10:00:00.000Z",
    }
    outcome = handle_event(STORAGE_FINALIZED, storage_event, service=world.service)
    assert outcome is not None and outcome.outcome is Outcome.DONE
    assert world.embeddings()[0].source_time == pytest.approx(1795428000.0)
    request = base64.b64encode(
        json.dumps({"v": 1, "bucket": BUCKET, "name": "e.jpg", "generation": 5}).encode()
    ).decode()
    pushed = handle_event(
        PUBSUB_PUBLISHED, {"message": {"data": request, "messageId": "1"}}, service=world.service
    )
    assert pushed is not None and pushed.outcome is Outcome.DUPLICATE
    # poison input is acknowledged (None), never retried
    assert handle_event(STORAGE_FINALIZED, b"not json", service=world.service) is None
    assert handle_event("some.other.type", {}, service=world.service) is None
    bad = base64.b64encode(b"{broken").decode()
    assert handle_event(PUBSUB_PUBLISHED, {"message": {"data": bad}}, service=world.service) is None
    # a transient failure propagates so the platform retries
    world.metadata.close()  # the store's connection is gone: every read and write fails
    with pytest.raises(Exception):  # noqa: B017 - closed DB: any error must surface, not ack
        handle_event(STORAGE_FINALIZED, storage_event, service=world.service)


def test_message_ids_are_unique_per_publish(world: World) -> None:
    ids = world.bus.publish("face-embeddings", [Message(b"{}")] * 3)
    assert len(set(ids)) == 3


def test_final_loader_errors_are_recorded(world: World) -> None:
    """A fetcher refusing a URL (allow-list, size cap) is a typed failure, not a silent ack."""
    from facesearch.errors import Forbidden

    def refuse(source: SourceRef) -> tuple[bytes, int | None]:
        raise Forbidden("host not allowed")

    world.service.loader = refuse
    source = SourceRef(kind="url", name="https://evil.example/x.jpg", identity="cloudinary://c/x#1")
    outcome = world.service.ingest(source)
    assert outcome.outcome is Outcome.FAILED and outcome.error_code == "forbidden"
    record = world.metadata.get_image(source.image_id)
    assert record is not None and record.status is ImageStatus.FAILED

    def flaky(source: SourceRef) -> tuple[bytes, int | None]:
        raise TransientError("delivery host timed out")

    world.service.loader = flaky
    with pytest.raises(TransientError):
        world.service.ingest(SourceRef(kind="url", name="https://c/y.jpg", identity="c#2"))


def test_function_service_fetches_url_requests_only_from_cloudinary(
    tmp_path: Path, pipeline: FacePipeline
) -> None:
    """The deployed wiring: ingest-requests URLs go through the Cloudinary-only fetcher."""
    from facesearch.errors import ConfigError
    from facesearch.ingest import entry

    def event(url: str) -> dict[str, object]:
        body = json.dumps({"v": 1, "url": url, "source_id": f"cloudinary://{url}"}).encode()
        return {"message": {"data": base64.b64encode(body).decode(), "messageId": "1"}}

    def service(cloud_name: str | None) -> IngestService:
        entry._service = None
        built = entry.default_service(
            load_settings(data_dir=tmp_path / str(cloud_name), cloudinary_cloud_name=cloud_name)
        )
        built.pipelines = lambda embedder: pipeline
        entry._service = None
        return built

    # a cloud URL while this instance lacks FACESEARCH_CLOUDINARY_CLOUD_NAME: retried, not lost
    cloud_url = "https://res.cloudinary.com/demo/image/upload/v1/a.jpg"
    with pytest.raises(ConfigError):
        handle_event(PUBSUB_PUBLISHED, event(cloud_url), service=service(None))
    # any other host is refused for good and recorded
    outcome = handle_event(
        PUBSUB_PUBLISHED, event("https://evil.example/a.jpg"), service=service("demo")
    )
    assert outcome is not None and outcome.outcome is Outcome.FAILED
    assert outcome.error_code == "url-not-allowed"


def test_a_failed_image_loses_every_face_an_earlier_attempt_stored(
    world: World, photos_dir: Path
) -> None:
    """More faces than one listing page (an image may hold up to 256): every one of them
    leaves the records and goes to the indexer as a deletion."""
    source = world.upload("many.jpg", (photos_dir / "labelled/obama/obama_3.jpg").read_bytes())
    image_id = source.image_id
    world.metadata.put_image(
        ImageRecord(
            image_id, source.display, ImageStatus.PROCESSING, attempts=MAX_PROCESSING_ATTEMPTS
        )
    )
    vector = np.ones(128, dtype="<f4") / np.sqrt(128)
    stored = [
        FaceRecord(
            face_id=face_id_for(image_id, i),
            image_id=image_id,
            face_index=i,
            bbox=(1.0, 2.0, 50.0, 60.0),
            landmarks=((10.0, 11.0), (20.0, 11.0), (15.0, 20.0), (11.0, 30.0), (19.0, 30.0)),
            det_score=0.99,
            embedding=vector.tobytes(),
            model="m@1",
        )
        for i in range(150)
    ]
    world.metadata.put_faces(image_id, stored)
    outcome = world.service.ingest(source)
    assert outcome.outcome is Outcome.FAILED and outcome.error_code == "too-many-attempts"
    assert world.metadata.list_faces(image_id=image_id).items == []
    deleted = [
        face_id
        for m in world.bus.published["face-deletions"]
        for face_id in DeletionsMessage.decode(m).face_ids
    ]
    assert sorted(deleted) == sorted(f.face_id for f in stored)
