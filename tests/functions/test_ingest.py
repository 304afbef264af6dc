"""functions/ingest and functions/indexer through functions-framework's real request path."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facesearch.backends.local import LocalBackend
from facesearch.config import load_settings
from facesearch.errors import BadMessage, TransientError
from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader
from facesearch.index.writer import IndexWriter
from facesearch.indexer import entry as indexer_entry
from facesearch.indexer.service import IndexerService
from facesearch.ingest import entry as ingest_entry
from facesearch.ingest.loader import SourceLoader
from facesearch.ingest.service import IngestService
from facesearch.ingest.sources import SourceRef
from facesearch.ingest.video import VideoIngest
from facesearch.storage.local.blob import LocalBlobStore
from facesearch.storage.local.bus import InProcessBus
from facesearch.storage.messages import EmbeddingsMessage, VideoTask
from facesearch.storage.metadata import ImageStatus
from facesearch.vision.pipeline import FacePipeline

ROOT = Path(__file__).resolve().parents[2]


def app(name: str) -> Any:
    import functions_framework

    return functions_framework.create_app(
        target=name, source=str(ROOT / "functions" / name / "main.py"), signature_type="cloudevent"
    ).test_client()


def storage_headers(bucket: str, name: str, event_id: str) -> dict[str, str]:
    """The binary-mode CloudEvent headers Eventarc sends for a finalized object."""
    return {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{name}",
        # now: an event older than FACESEARCH_MAX_EVENT_AGE_S is dropped (tested below)
        "ce-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "content-type": "application/json",
    }


@pytest.fixture
def ingest_service(
    tmp_path: Path, photos_dir: Path
) -> Iterator[tuple[IngestService, dict[str, Any]]]:
    objects = {"a.jpg": ((photos_dir / "labelled/obama/obama_1.jpg").read_bytes(), 3)}

    def load(source: SourceRef) -> tuple[bytes, int | None]:
        return objects[source.name]

    settings = load_settings(data_dir=tmp_path)
    backend = LocalBackend(settings).override(pipeline=FacePipeline(load_settings()))
    service = IngestService(
        settings,
        stores=backend.metadata,
        pipelines=backend.pipeline,
        collections=backend.collections(),
        crops=LocalBlobStore(tmp_path / "crops"),
        bus=InProcessBus(),
        loader=load,
    )
    ingest_entry._service = service
    yield service, objects
    ingest_entry._service = None


def test_ingest_function_acks_done_and_poison_retries_transient(
    ingest_service: tuple[IngestService, dict[str, Any]],
) -> None:
    service, _ = ingest_service
    client = app("ingest")
    body = json.dumps({"bucket": "up", "name": "a.jpg", "generation": "3", "size": "10"})
    response = client.post("/", data=body, headers=storage_headers("up", "a.jpg", "e1"))
    assert response.status_code == 200
    image = service.metadata.get_image(SourceRef.gcs("up", "a.jpg", 3).image_id)
    assert image is not None and image.status is ImageStatus.DONE and image.face_count == 1
    # poison: acknowledged with 2xx, never retried
    poison = client.post("/", data="{not json", headers=storage_headers("up", "x", "e2"))
    assert poison.status_code == 200
    # a Pub/Sub push of an ingest request, converted by functions-framework
    request = base64.b64encode(json.dumps({"v": 1, "bucket": "up", "name": "a.jpg",
                                           "generation": 3}).encode()).decode()  # fmt: skip
    push = {
        "message": {"data": request, "messageId": "m1", "attributes": {}},
        "subscription": "projects/p/subscriptions/ingest",
    }
    response = client.post("/projects/p/topics/ingest-requests", json=push)
    assert response.status_code == 200

    def down(topic: str, messages: object) -> list[str]:
        raise TransientError("pubsub unavailable")

    service.bus.publish = down  # type: ignore[method-assign]
    service.metadata.delete_image(image.image_id)
    retry = client.post("/", data=body, headers=storage_headers("up", "a.jpg", "e3"))
    assert retry.status_code == 500  # Eventarc / Pub/Sub will redeliver


def _push(body: dict[str, Any], message_id: str) -> dict[str, Any]:
    data = base64.b64encode(json.dumps(body).encode()).decode()
    return {
        "message": {"data": data, "messageId": message_id, "attributes": {}},
        "subscription": "projects/p/subscriptions/ingest",
    }


def test_ingest_function_acks_video_tasks_it_cannot_or_need_not_run(
    ingest_service: tuple[IngestService, dict[str, Any]], tmp_path: Path
) -> None:
    service, _ = ingest_service
    client = app("ingest")
    path = "/projects/p/topics/ingest-requests"
    task = VideoTask("chunk", "v1", "p1", {"kind": "gcs", "bucket": "up", "name": "v.mp4"}, 0)
    body = json.loads(task.encode().data)
    # this service was built without the video half: a misconfiguration, retried
    assert client.post(path, json=_push(body, "m1")).status_code == 500
    service.videos = VideoIngest(
        service.settings,
        crops=service.crops,
        bus=service.bus,
        open_video=lambda where: None,  # type: ignore[arg-type, return-value]
    )
    # a task of a video that does not exist (forgotten): acknowledged
    assert client.post(path, json=_push(body, "m2")).status_code == 200
    # a malformed video task is poison: acknowledged, never retried
    bad = {"v": 1, "video": {"step": "explode", "video_id": "v1", "plan_id": "p1"}}
    assert client.post(path, json=_push(bad, "m3")).status_code == 200
    # a task naming a local file is refused by the cloud's loader (never read)
    loader = SourceLoader(lambda name: LocalBlobStore(tmp_path / name), local_files=False)
    with pytest.raises(BadMessage):
        loader.open_video({"kind": "file", "path": "/etc/passwd"})


def test_indexer_function_acks_after_commit(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "index")
    params = IndexParams(dtype="f32", build_threads=1, auto_compact=False)
    writer = IndexWriter(store, cache_dir=tmp_path / "cache", params=params)
    service = IndexerService(lambda collection_id: writer, InProcessBus())
    settings = load_settings(data_dir=tmp_path, indexer_commit_window_ms=0)
    indexer_entry._committer = indexer_entry.make_committer(service, settings)
    try:
        client = app("indexer")
        vectors = np.eye(4, 16, dtype=np.float32)
        message = EmbeddingsMessage("img", "m@1", [f"img-{i}" for i in range(4)], vectors).encode()
        push = {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "attributes": dict(message.attributes),
                "messageId": "1",
            },
            "subscription": "projects/p/subscriptions/s",
        }
        response = client.post("/projects/p/topics/face-embeddings", json=push)
        assert response.status_code == 200
        reader = IndexReader(store, cache_dir=tmp_path / "r", params=params)
        assert sorted(reader.face_ids()) == [f"img-{i}" for i in range(4)]
        bad = dict(push, message={"data": "!!", "messageId": "2"})
        assert client.post("/projects/p/topics/face-embeddings", json=bad).status_code == 200

        def down(*args: object, **kwargs: object) -> object:
            raise TransientError("bucket unavailable")

        writer.add = down  # type: ignore[method-assign]
        other = EmbeddingsMessage("img2", "m@1", ["img2-0"], vectors[:1]).encode()
        push["message"] = {
            "data": base64.b64encode(other.data).decode(),
            "attributes": dict(other.attributes),
            "messageId": "3",
        }
        assert client.post("/projects/p/topics/face-embeddings", json=push).status_code == 500
    finally:
        indexer_entry._committer = None
