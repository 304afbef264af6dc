"""The query API on its cloud adapters, against Google's Firestore and Pub/Sub emulators.

Firestore holds the metadata and the replay guard's nonces (create-if-absent),
and forgetting queues the index deletion on the face-deletions topic (the
query service cannot write the index bucket): the message must arrive in the
indexer's format, and the face must be unsearchable at once.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from facesearch.api.app import QueryApp
from facesearch.api.crops import LocalCropUrls
from facesearch.api.service import QueryService
from facesearch.auth import StaticKeyRing, Verifier, sign_request
from facesearch.backends import backend_for
from facesearch.config import load_settings
from facesearch.storage.bus import Message
from facesearch.storage.gcp.metadata import FirestoreMetadataStore
from facesearch.storage.gcp.nonces import FirestoreNonceStore
from facesearch.storage.gcp.people import FirestorePeopleStore
from facesearch.storage.messages import DeletionsMessage
from facesearch.vision.pipeline import FacePipeline
from tests.support import emulators
from tests.support.api import COLLECTION, KEY, SignedClient, add_image

pytestmark = pytest.mark.integration


def _firestore(project: str) -> Any:
    return importlib.import_module("google.cloud.firestore").Client(project=project)


def test_signed_api_on_firestore_with_queued_forget(
    firestore_emulator: emulators.Emulator,
    pubsub_emulator: emulators.Emulator,
    gcp_project: str,
    tmp_path: Path,
) -> None:
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.create_topic(name=publisher.topic_path(gcp_project, "face-deletions")).name
    subscription = subscriber.create_subscription(
        name=subscriber.subscription_path(gcp_project, "deletions-test"), topic=topic
    ).name

    settings = load_settings(
        data_dir=tmp_path,
        backend="gcp",
        project=gcp_project,
        index_url=str(tmp_path / "index"),
        index_refresh_interval_s=0.0,
    )
    backend = backend_for(settings)
    store = FirestoreMetadataStore(_firestore(gcp_project))
    pipeline = FacePipeline(settings)
    writer = backend.index_writer()
    faces = {
        image_id: add_image(
            pipeline,
            store=store,
            writer=writer,
            crops_dir=tmp_path / "crops",
            image_id=image_id,
            data=COLLECTION[image_id].read_bytes(),
        )
        for image_id in ("obama-1", "obama-2")
    }
    service = QueryService.single(
        settings,
        store=store,
        people=FirestorePeopleStore(_firestore(gcp_project)),
        crops=LocalCropUrls(b"k" * 32, 60, base_url="http://localhost"),
        forget_index=backend.index_forgetter(),
        pipeline=pipeline,
        fetch=lambda url: b"",
        open_reader=lambda model: backend.index_reader(expected_model=model),
    )
    verifier = Verifier(
        StaticKeyRing({KEY.key_id: KEY.secret}), FirestoreNonceStore(_firestore(gcp_project))
    )
    client = SignedClient(QueryApp(settings, service, verifier))

    # replay protection holds across the shared Firestore nonce store
    headers = sign_request(KEY, "GET", "/v1/stats")
    first = client.wsgi.get("/v1/stats", headers=headers)
    assert first.status_code == 200 and first.get_json()["faces"] == 2
    assert client.wsgi.get("/v1/stats", headers=headers).status_code == 403

    target = faces["obama-1"][0]
    vector = store.get_face(target).vector().tolist()  # type: ignore[union-attr]

    def found() -> list[str]:
        body = {"embedding": vector, "k": 5, "threshold": -1}
        result = client.post("/v1/search", json_body=body).get_json()
        return [m["face_id"] for m in result["faces"][0]["matches"]]

    assert found()[0] == target
    forgotten = client.call("DELETE", "/v1/images/obama-1").get_json()
    assert forgotten["index"] == "queued" and forgotten["deleted_faces"] == [target]
    assert target not in found()  # unsearchable before the indexer acts
    assert found() == faces["obama-2"]

    response = subscriber.pull(subscription=subscription, max_messages=5, timeout=30)
    assert len(response.received_messages) == 1
    received = response.received_messages[0].message
    decoded = DeletionsMessage.decode(Message(received.data, dict(received.attributes)))
    assert decoded.face_ids == [target]
    emulators.reset_firestore(firestore_emulator, gcp_project)
