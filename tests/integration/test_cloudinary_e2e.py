"""Cloudinary end to end on the emulators: a signed notification leads to searchable faces.

``functions/cloudinary/main.py`` (served by functions-framework, configured only
through ``FACESEARCH_*`` variables like on Cloud Run) verifies the notification,
claims it in Firestore and publishes the ingest request to Pub/Sub. The ingest
service takes that message from the emulator, downloads the bounded derivative
from a local TLS server standing in for the Cloudinary delivery host (the
fetcher's test policy: that port, that CA, 127.0.0.1 exempt; nothing else
relaxed), stores faces in Firestore and crops in GCS, publishes embeddings; the
indexer applies them to the index on GCS; another photo of the same person finds
them. A ``delete`` notification then forgets the image through the query API's
forget path and the index drops its faces.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facesearch.backends import backend_for, services
from facesearch.cloudinary.delivery import cloudinary_fetcher, cloudinary_image_id
from facesearch.config import Settings, get_settings, load_settings
from facesearch.ingest.entry import handle_event
from facesearch.ingest.service import Outcome
from facesearch.ingest.sources import PUBSUB_PUBLISHED
from facesearch.storage.bus import Message
from tests.support import emulators
from tests.support.cloudinary import (
    CLOUD,
    TEST_SECRET,
    DeliveryHost,
    delivery_host,
    raw,
    sample,
    sign,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_ID = "team/offsite 2026/obama"
VERSION = 1763892900
TOPICS = ("ingest-requests", "face-embeddings", "face-deletions", "face-events")


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[DeliveryHost]:
    with delivery_host(tmp_path) as host:
        yield host


@pytest.fixture
def cloud_env(
    request: pytest.FixtureRequest, gcp_project: str, cdn: DeliveryHost, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """The cloudinary service's environment (as Terraform sets it), pointed at emulators."""
    from google.cloud import pubsub_v1, storage

    for emulator in ("pubsub_emulator", "firestore_emulator", "gcs_emulator"):
        request.getfixturevalue(emulator)  # started (or failed loudly), env vars set

    bucket = f"fs-{uuid.uuid4().hex[:16]}"
    storage.Client(project=gcp_project).create_bucket(bucket)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    for topic in TOPICS:
        publisher.create_topic(name=f"projects/{gcp_project}/topics/{topic}")
        subscriber.create_subscription(
            name=f"projects/{gcp_project}/subscriptions/{topic}-pull",
            topic=f"projects/{gcp_project}/topics/{topic}",
        )
    env = {
        "FACESEARCH_ENV": "test",
        "FACESEARCH_BACKEND": "gcp",
        "FACESEARCH_PROJECT": gcp_project,
        "FACESEARCH_DATA_DIR": str(tmp_path / "data"),
        "FACESEARCH_CROPS_BUCKET": bucket,
        "FACESEARCH_INDEX_URL": f"gs://{bucket}/index",
        "FACESEARCH_INDEX_CACHE_DIR": str(tmp_path / "index-cache"),
        "FACESEARCH_CLOUDINARY_CLOUD_NAME": CLOUD,
        "FACESEARCH_CLOUDINARY_API_SECRET": TEST_SECRET,
        "FACESEARCH_CLOUDINARY_SECURE_DISTRIBUTION": f"{cdn.host}:{cdn.port}",
    }
    get_settings.cache_clear()
    with emulators.patched_env(env):
        yield env
    get_settings.cache_clear()


def pull(project: str, topic: str, *, expect: int, wait_s: float = 20.0) -> list[Message]:
    """Pull (and ack) until ``expect`` messages arrived; then a short wait for strays."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    name = f"projects/{project}/subscriptions/{topic}-pull"
    got: list[Message] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        response = subscriber.pull(subscription=name, max_messages=50, timeout=5)
        if response.received_messages:
            subscriber.acknowledge(
                subscription=name, ack_ids=[m.ack_id for m in response.received_messages]
            )
            got.extend(
                Message(m.message.data, dict(m.message.attributes), m.message.message_id)
                for m in response.received_messages
            )
        elif len(got) >= expect:
            break
    return got


def webhook_client() -> Any:
    import functions_framework

    app = functions_framework.create_app(
        target="cloudinary", source=str(ROOT / "functions" / "cloudinary" / "main.py")
    )
    return app.test_client()


def notify(client: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    data = raw(body)
    response = client.post("/", data=data, headers=sign(data))
    return response.status_code, json.loads(response.get_data())


def test_notification_to_searchable_faces_then_delete(
    cloud_env: dict[str, str], cdn: DeliveryHost, photos_dir: Path
) -> None:
    settings: Settings = load_settings()
    project = cloud_env["FACESEARCH_PROJECT"]
    image_id = cloudinary_image_id(CLOUD, PUBLIC_ID, VERSION)
    derivative = f"/image/upload/c_limit,h_2048,w_2048/v{VERSION}/team/offsite%202026/obama.jpg"
    cdn.files[derivative] = (photos_dir / "labelled" / "obama" / "obama_1.jpg").read_bytes()
    client = webhook_client()

    # 1. the webhook: upload notification, Cloudinary's retry, the eager notification
    upload = sample("upload", public_id=PUBLIC_ID, version=VERSION)
    started = time.perf_counter()
    status, answer = notify(client, upload)
    webhook_ms = (time.perf_counter() - started) * 1000.0
    assert (status, answer["outcome"], answer["image_id"]) == (200, "queued", image_id)
    assert notify(client, upload)[1]["outcome"] == "duplicate"
    eager = sample("eager", public_id=PUBLIC_ID)
    eager["eager"][0]["secure_url"] = (
        f"https://res.cloudinary.com/{CLOUD}/image/upload/c_fill,w_400/v{VERSION}/x.jpg"
    )
    assert notify(client, eager)[1]["outcome"] == "duplicate"
    unsigned = client.post("/", data=raw(upload), headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    (request,) = pull(project, "ingest-requests", expect=1)

    # 2. ingest: fetch from the delivery host (Cloudinary-only fetcher), faces out
    backend = backend_for(settings)
    pipeline = backend.pipeline()
    ingest = services.ingest_service(
        backend, fetch_url=cloudinary_fetcher(settings, policy=cdn.policy())
    )
    event = {"message": {"data": base64.b64encode(request.data).decode()}}
    outcome = handle_event(PUBSUB_PUBLISHED, event, service=ingest)
    assert outcome is not None and outcome.outcome is Outcome.DONE and outcome.faces >= 1
    assert outcome.image_id == image_id
    assert cdn.requests == [derivative]
    # a redelivery of the ingest request changes nothing
    again = handle_event(PUBSUB_PUBLISHED, event, service=ingest)
    assert again is not None and again.outcome is Outcome.DUPLICATE

    # 3. indexer applies the embeddings; another photo of the same person finds them
    indexer = services.indexer_service(backend)
    embeddings = pull(project, "face-embeddings", expect=1)
    assert all(not isinstance(r, BaseException) for r in indexer.apply(embeddings))
    reader = backend.index_reader(expected_model=pipeline.embedder.model_id)
    threshold = pipeline.embedder.match_threshold
    assert threshold is not None

    def best(photo: str) -> tuple[str, float]:
        face = pipeline.process((photos_dir / "labelled" / photo).read_bytes()).faces[0]
        hits = reader.search_one(face.embedding, k=3)
        return (hits[0].face_id, hits[0].similarity) if hits else ("", -1.0)

    same_face, same = best("obama/obama_2.jpg")
    assert same_face.startswith(image_id) and same >= threshold  # same person: found
    assert best("biden/biden_1.jpg")[1] < threshold  # someone else: no match
    store = backend.metadata()
    record = store.get_image(image_id)
    assert record is not None and record.source == f"cloudinary://{CLOUD}/{PUBLIC_ID}#{VERSION}"

    # 4. delete in Cloudinary: the image, its faces and crops go; the index drops them
    deleted = sample("delete")
    deleted["resources"][0].update(public_id=PUBLIC_ID, version=VERSION)
    status, answer = notify(client, deleted)
    assert (status, answer["outcome"], answer["image_ids"]) == (200, "forgotten", [image_id])
    assert store.get_image(image_id) is None and store.get_face(same_face) is None
    deletions = pull(project, "face-deletions", expect=1)
    assert all(not isinstance(r, BaseException) for r in indexer.apply(deletions))
    reader.refresh()
    assert not best("obama/obama_2.jpg")[0].startswith(image_id)
    # the late retry of the upload notification does not bring it back
    assert notify(client, upload)[1]["outcome"] == "duplicate"
    assert pull(project, "ingest-requests", expect=0, wait_s=3.0) == []
    # how fast a warm instance answers a new upload (Cloudinary retries slow endpoints)
    started = time.perf_counter()
    assert notify(client, upload | {"version": VERSION + 1})[1]["outcome"] == "queued"
    warm_ms = (time.perf_counter() - started) * 1000.0
    assert len(pull(project, "ingest-requests", expect=1)) == 1
    print(f"\ncloudinary webhook: first upload {webhook_ms:.0f} ms (cold), next {warm_ms:.0f} ms")
