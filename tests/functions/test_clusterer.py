"""functions/clusterer through functions-framework's real request path: a face-events
push in, persons in the collection's people store out; redelivery is harmless, poison and
closed collections are acknowledged, store outages are retried."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facesearch.backends.local import LocalBackend
from facesearch.backends.services import clusterer_service
from facesearch.config import load_settings
from facesearch.errors import TransientError
from facesearch.people import entry as people_entry
from facesearch.storage.catalog import CollectionRecord
from facesearch.storage.messages import FaceEvent
from facesearch.storage.metadata import FaceRecord, ImageRecord, ImageStatus
from tests.unit.people.support import identity_faces

ROOT = Path(__file__).resolve().parents[2]
DIMS = 128


def app() -> Any:
    import functions_framework

    return functions_framework.create_app(
        target="clusterer",
        source=str(ROOT / "functions" / "clusterer" / "main.py"),
        signature_type="cloudevent",
    ).test_client()


def push(event: FaceEvent, message_id: str) -> dict[str, Any]:
    message = event.encode()
    return {
        "message": {
            "data": base64.b64encode(message.data).decode(),
            "attributes": dict(message.attributes),
            "messageId": message_id,
        },
        "subscription": "projects/p/subscriptions/face-events-push",
    }


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LocalBackend]:
    """Two identities of three photos each, stored and indexed as ingest + indexer would."""
    backend = LocalBackend(load_settings(data_dir=tmp_path))
    backend.catalog().create_collection(CollectionRecord("trip"))
    faces, _ = identity_faces(2, 3, dims=DIMS, prefix="p")
    store = backend.metadata("trip")
    records = []
    for face in faces:
        image_id = face.image_id
        store.put_image(ImageRecord(image_id, f"{image_id}.jpg", ImageStatus.DONE))
        record = FaceRecord(
            face_id=f"{image_id}-0",
            image_id=image_id,
            face_index=0,
            bbox=(0.0, 0.0, 10.0, 10.0),
            landmarks=((1.0, 1.0),) * 5,
            det_score=0.99,
            embedding=face.embedding.astype("<f4").tobytes(),
            model="test@1",
            quality={"score": face.quality},
        )
        store.put_faces(image_id, [record])
        records.append(record)
    writer = backend.index_writer(collection_id="trip")
    writer.add([r.face_id for r in records], [r.vector() for r in records], "test@1")
    people_entry._service = clusterer_service(backend)
    yield backend
    people_entry._service = None


def test_face_events_become_persons_and_redelivery_changes_nothing(backend: LocalBackend) -> None:
    client = app()
    face_ids = [f"p{n}-0" for n in range(6)]
    manifest = backend.index_reader(collection_id="trip").manifest
    assert manifest is not None
    added = FaceEvent("face_added", face_ids, "test@1", manifest.version, collection_id="trip")
    assert client.post("/projects/p/topics/face-events", json=push(added, "1")).status_code == 200
    people = backend.people("trip")
    counts = people.counts()
    assert counts.faces == 6 and counts.persons == 2
    persons = {f.person_id for f in people.list_faces(limit=100).items}
    for attempt in range(10):  # Pub/Sub delivers at least once
        response = client.post("/projects/p/topics/face-events", json=push(added, f"r{attempt}"))
        assert response.status_code == 200
    assert people.counts() == counts
    assert {f.person_id for f in people.list_faces(limit=100).items} == persons

    removed = FaceEvent("face_removed", face_ids[:1], None, None, collection_id="trip")
    assert client.post("/projects/p/topics/face-events", json=push(removed, "2")).status_code == 200
    assert people.counts().faces == 5


def test_poison_and_closed_collections_are_acknowledged_outages_retried(
    backend: LocalBackend,
) -> None:
    client = app()
    bad = {
        "message": {"data": "!!", "messageId": "x"},
        "subscription": "projects/p/subscriptions/s",
    }
    assert client.post("/projects/p/topics/face-events", json=bad).status_code == 200
    nowhere = FaceEvent("face_added", ["p0-0"], None, None, collection_id="nowhere")
    assert client.post("/projects/p/topics/face-events", json=push(nowhere, "3")).status_code == 200
    assert backend.people("nowhere").counts().records == 0

    def down(*args: object, **kwargs: object) -> None:
        raise TransientError("firestore unavailable")

    people_entry._service = clusterer_service(backend)
    store = backend.people("trip")
    store.apply = down  # type: ignore[method-assign]
    event = FaceEvent("face_added", ["p0-0"], None, None, collection_id="trip")
    assert client.post("/projects/p/topics/face-events", json=push(event, "4")).status_code == 500
