"""The webhook over HTTP: signed notifications in, one ingest request per upload out.

Real SQLite ledger and metadata store, the in-process bus, werkzeug requests as
functions-framework builds them; only the query API's forget is a recorder.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from facesearch.backends import services
from facesearch.backends.local import LocalBackend
from facesearch.cloudinary.delivery import cloudinary_image_id, event_key, source_id
from facesearch.cloudinary.entry import MAX_NOTIFICATION_BYTES, handle_http
from facesearch.cloudinary.webhook import CloudinaryWebhook
from facesearch.config import Settings, load_settings
from facesearch.errors import NotFound, TransientError
from facesearch.ingest.entry import source_from_event
from facesearch.ingest.sources import PUBSUB_PUBLISHED, SourceRef
from facesearch.storage.bus import Message
from facesearch.storage.local.bus import InProcessBus
from facesearch.storage.local.ledger import SqliteEventLedger
from facesearch.storage.local.metadata import SqliteMetadataStore
from facesearch.storage.metadata import ImageRecord, ImageStatus
from facesearch.storage.videos import VideoRecord, VideoStatus
from tests.support.cloudinary import CLOUD, TEST_SECRET, raw, sample, sign

PUBLIC_ID = "team/offsite 2026/group_photo"
VERSION = 1763892900
IMAGE_ID = cloudinary_image_id(CLOUD, PUBLIC_ID, VERSION)


class FlakyBus(InProcessBus):
    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False

    def publish(self, topic: str, messages: Sequence[Message]) -> list[str]:
        if self.fail_next:
            self.fail_next = False
            raise TransientError("pubsub unavailable")
        return super().publish(topic, messages)


class Harness:
    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.settings: Settings = load_settings(
            data_dir=tmp_path,
            cloudinary_cloud_name=CLOUD,
            cloudinary_api_secret=TEST_SECRET,
            **settings,
        )
        self.bus = FlakyBus()
        self.metadata = SqliteMetadataStore(tmp_path / "metadata.sqlite3")
        self.ledger = SqliteEventLedger(tmp_path / "events.sqlite3")
        self.forgotten: list[str] = []
        self.forgotten_in: list[str] = []  # the collection of each forget
        self.forgotten_videos: list[str] = []
        self.backend = LocalBackend(self.settings).override(
            bus=self.bus, metadata=self.metadata, cloudinary_ledger=self.ledger
        )
        self.webhook: CloudinaryWebhook = services.cloudinary_webhook(
            self.backend, forget_image=self._forget, forget_video=self._forget_video
        )

    def _forget(self, collection_id: str, image_id: str) -> int:
        store = self.backend.metadata(collection_id)
        if store.get_image(image_id) is None:
            raise NotFound(image_id)
        self.forgotten.append(image_id)
        self.forgotten_in.append(collection_id)
        store.delete_image(image_id)
        return 3

    def _forget_video(self, collection_id: str, video_id: str) -> int:
        store = self.backend.metadata(collection_id)
        if store.get_video(video_id) is None:
            raise NotFound(video_id)
        self.forgotten_videos.append(video_id)
        store.delete_video(video_id)
        return 2

    def post(
        self, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
    ) -> Response:
        builder = EnvironBuilder(
            path="/", method=method, data=body, headers=sign(body) if headers is None else headers
        )
        return handle_http(Request(builder.get_environ()), self.webhook)

    @property
    def queued(self) -> list[Message]:
        return self.bus.published.get(self.settings.storage.ingest_topic, [])


@pytest.fixture
def hook(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def _json(response: Response) -> dict[str, Any]:
    return dict(json.loads(response.get_data()))


def test_upload_queues_one_ingest_request_that_ingest_understands(hook: Harness) -> None:
    response = hook.post(raw(sample("upload")))
    assert response.status_code == 200, response.get_data()
    assert _json(response)["outcome"] == "queued" and _json(response)["image_id"] == IMAGE_ID
    (message,) = hook.queued
    body = json.loads(message.data)
    assert message.attributes == {
        "kind": "ingest-request",
        "source": "cloudinary",
        "collection": "default",
        "image_id": IMAGE_ID,
    }
    # SDK-built, size-bounded derivative of *our* cloud, not the URL in the notification
    assert body["url"] == (
        f"https://res.cloudinary.com/{CLOUD}/image/upload/c_limit,h_2048,w_2048/"
        f"v{VERSION}/team/offsite%202026/group_photo.jpg"
    )
    assert body["source_id"] == source_id(CLOUD, PUBLIC_ID, VERSION)
    assert body["content_type"] == "image/jpeg" and body["created_at"] == "2026-11-23T10:15:00Z"
    # the ingest function's own parser reads it, with the same image id
    event = {"message": {"data": base64.b64encode(message.data).decode()}}
    source = source_from_event(PUBSUB_PUBLISHED, event)
    assert source.kind == "url" and source.image_id == IMAGE_ID
    assert source.name == body["url"] and source.created_time is not None


VIDEO_ID = "team/offsite 2026/clip"
VIDEO_VERSION = 1763893211


def test_a_video_upload_queues_a_video_request(hook: Harness) -> None:
    response = hook.post(raw(sample("upload_video")))
    assert response.status_code == 200, response.get_data()
    video_id = cloudinary_image_id(CLOUD, VIDEO_ID, VIDEO_VERSION, resource_type="video")
    assert (_json(response)["outcome"], _json(response)["image_id"]) == ("queued", video_id)
    assert video_id != cloudinary_image_id(CLOUD, VIDEO_ID, VIDEO_VERSION)  # not the image's
    (message,) = hook.queued
    body = json.loads(message.data)
    # the video as uploaded, from our cloud's video delivery path (no transformation)
    assert body["url"] == (
        f"https://res.cloudinary.com/{CLOUD}/video/upload/v{VIDEO_VERSION}/team/offsite%202026/clip.mp4"
    )
    assert body["media"] == "video" and body["content_type"] == "video/mp4"
    assert body["source_id"] == f"cloudinary-video://{CLOUD}/{VIDEO_ID}#{VIDEO_VERSION}"
    event = {"message": {"data": base64.b64encode(message.data).decode()}}
    source = source_from_event(PUBSUB_PUBLISHED, event)
    assert isinstance(source, SourceRef) and source.claims_video and source.image_id == video_id
    assert _json(hook.post(raw(sample("upload_video"))))["outcome"] == "duplicate"


def test_a_video_delete_forgets_the_video(hook: Harness) -> None:
    hook.post(raw(sample("upload_video")))
    video_id = cloudinary_image_id(CLOUD, VIDEO_ID, VIDEO_VERSION, resource_type="video")
    delete = {
        "notification_type": "delete",
        "resources": [{"resource_type": "video", "public_id": VIDEO_ID, "version": VIDEO_VERSION}],
    }
    hook.metadata.put_video(VideoRecord(video_id, "s", VideoStatus.PROCESSING))
    assert hook.post(raw(delete)).status_code == 503  # still being processed: retried later
    hook.metadata.put_video(VideoRecord(video_id, "s", VideoStatus.DONE))
    response = hook.post(raw(delete))
    assert _json(response)["image_ids"] == [video_id] and _json(response)["faces"] == 2
    assert hook.forgotten_videos == [video_id] and hook.forgotten == []


def test_a_new_video_version_replaces_the_old_video_not_an_image_of_the_same_name(
    hook: Harness,
) -> None:
    """Versions are tracked per resource type: Cloudinary lets an image and a video share
    a public id, and a new version of one must never forget the other."""
    old_id = cloudinary_image_id(CLOUD, VIDEO_ID, VIDEO_VERSION, resource_type="video")
    image_id = cloudinary_image_id(CLOUD, VIDEO_ID, VIDEO_VERSION + 5)
    hook.post(raw(sample("upload_video")))
    hook.metadata.put_video(VideoRecord(old_id, "s", VideoStatus.DONE))
    same_name_image = sample("upload", public_id=VIDEO_ID, version=VIDEO_VERSION + 5)
    assert _json(hook.post(raw(same_name_image)))["outcome"] == "queued"
    assert hook.forgotten_videos == [] and hook.forgotten == []
    newer = raw(sample("upload_video", version=VIDEO_VERSION + 1))
    assert _json(hook.post(newer))["outcome"] == "queued"
    assert hook.forgotten_videos == [old_id] and hook.forgotten == []
    late = _json(hook.post(raw(sample("upload_video"))))
    assert late["outcome"] == "superseded" and late["current_version"] == VIDEO_VERSION + 1
    assert image_id not in hook.forgotten


def test_retries_duplicates_and_the_eager_notification_queue_nothing_more(hook: Harness) -> None:
    body = raw(sample("upload"))
    assert _json(hook.post(body))["outcome"] == "queued"
    assert _json(hook.post(body))["outcome"] == "duplicate"  # Cloudinary's retry: same bytes
    assert _json(hook.post(body, sign(body)))["outcome"] == "duplicate"  # re-signed later
    reordered = raw(json.dumps(sample("upload"), sort_keys=True))  # a duplicate, other bytes
    assert _json(hook.post(reordered))["outcome"] == "duplicate"
    eager = hook.post(raw(sample("eager")))
    assert _json(eager) | {"request_id": ""} == {
        "outcome": "duplicate",
        "notification_type": "eager",
        "image_id": IMAGE_ID,
        "request_id": "",
    }
    assert len(hook.queued) == 1
    # a new version of the same public_id is a new image, which replaces the old one's
    # faces once the old one is final (here: ingested)
    _ingested(hook)
    assert _json(hook.post(raw(sample("upload", version=VERSION + 1))))["outcome"] == "queued"
    assert len(hook.queued) == 2
    assert hook.forgotten == [IMAGE_ID]


def test_a_new_version_replaces_the_old_and_a_late_old_one_is_superseded(hook: Harness) -> None:
    hook.post(raw(sample("upload")))
    newer = raw(sample("upload", version=VERSION + 1))
    # the old version is still being ingested: wait for it (503, Cloudinary retries)...
    _ingested(hook, ImageStatus.PROCESSING)
    assert hook.post(newer).status_code == 503
    assert len(hook.queued) == 2  # ... but the new version is already queued, once
    _ingested(hook)
    assert _json(hook.post(newer))["outcome"] == "duplicate"
    assert hook.forgotten == [IMAGE_ID]
    late = _json(hook.post(raw(sample("upload"))))
    assert late["outcome"] == "superseded" and late["current_version"] == VERSION + 1
    assert len(hook.queued) == 2


def test_a_delete_without_a_version_forgets_the_current_version(hook: Harness) -> None:
    hook.post(raw(sample("upload")))
    _ingested(hook)
    resource = {"public_id": PUBLIC_ID, "resource_type": "image", "type": "upload"}
    response = hook.post(raw(json.dumps({"notification_type": "delete", "resources": [resource]})))
    assert response.status_code == 200, response.get_data()
    assert _json(response)["image_ids"] == [IMAGE_ID] and hook.forgotten == [IMAGE_ID]


def test_a_crash_between_claim_and_publish_loses_nothing(hook: Harness) -> None:
    """The claim is written, the process dies before publishing: Cloudinary's retry (no
    200 was ever sent) finds the claim still pending and queues the upload."""
    key = event_key(CLOUD, PUBLIC_ID, VERSION)
    hook.ledger.claim(key, {"public_id": PUBLIC_ID, "state": "pending"}, 2e9)
    assert _json(hook.post(raw(sample("upload"))))["outcome"] == "queued"
    assert len(hook.queued) == 1
    assert _json(hook.post(raw(sample("upload"))))["outcome"] == "duplicate"


def test_eager_first_queues_the_original(hook: Harness) -> None:
    assert _json(hook.post(raw(sample("eager"))))["outcome"] == "queued"
    assert _json(hook.post(raw(sample("upload"))))["outcome"] == "duplicate"
    (message,) = hook.queued
    assert json.loads(message.data)["url"].endswith(
        f"/v{VERSION}/team/offsite%202026/group_photo.jpg"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (sample("upload", resource_type="raw"), "resource_type raw is not ingested"),
        (sample("rename"), "notification type not handled"),
        (sample("upload", notification_type="moderation"), "notification type not handled"),
        (sample("upload", type="private"), "delivery type private"),
        (
            {
                "notification_type": "delete",
                "resources": [{"resource_type": "raw", "public_id": "x", "version": 1}],
            },
            "no image or video resources",
        ),
    ],
)
def test_what_we_do_not_process_is_acknowledged_with_200(
    hook: Harness, body: dict[str, Any], reason: str
) -> None:
    response = hook.post(raw(body))
    assert response.status_code == 200 and _json(response)["outcome"] == "ignored"
    assert _json(response)["reason"] == reason
    assert hook.queued == []


@pytest.mark.parametrize("case", ["unsigned", "tampered", "wrong-secret", "stale"])
def test_unverified_notifications_get_401_problem_json_and_queue_nothing(
    hook: Harness, case: str
) -> None:
    body = raw(sample("upload"))
    headers = sign(body)
    if case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "tampered":
        body = raw(sample("upload", public_id="someone/else"))
    elif case == "wrong-secret":
        headers = sign(body, secret="not-our-secret")
    elif case == "stale":
        headers = sign(body, timestamp=int(headers["X-Cld-Timestamp"]) - 7300)
    response = hook.post(body, headers)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    problem = _json(response)
    assert problem["status"] == 401 and problem["type"].endswith(":unauthorized")
    assert "stale" not in problem["detail"] and "mismatch" not in problem["detail"]
    assert hook.queued == [] and hook.ledger.get(event_key(CLOUD, PUBLIC_ID, VERSION)) is None


def test_a_replay_after_the_configured_window_is_refused(tmp_path: Path) -> None:
    hook = Harness(tmp_path, cloudinary_signature_max_age_s=60)
    body = raw(sample("upload"))
    captured = sign(body)
    replayed = sign(body, timestamp=int(captured["X-Cld-Timestamp"]) - 61)
    assert hook.post(body, replayed).status_code == 401
    assert hook.post(body, captured).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (raw([1, 2]), 400),
        (raw({"public_id": "x"}), 400),
        (raw(sample("upload", public_id="../../other-cloud/image/upload/secret")), 400),
        (raw(sample("upload", public_id="a/./b")), 400),
        (raw(sample("upload", public_id="a\\b")), 400),
        (raw(sample("upload", public_id="x" * 256)), 400),
        (raw(sample("upload", version="1; drop")), 400),
        (raw(sample("upload", version=-1)), 400),
        (raw({"notification_type": "delete", "resources": "all"}), 400),
    ],
)
def test_signed_but_unreadable_notifications_get_400(
    hook: Harness, body: bytes, status: int
) -> None:
    response = hook.post(body)
    assert response.status_code == status and response.content_type == "application/problem+json"
    assert _json(response)["code"] == "bad-notification" and hook.queued == []


def test_oversized_body_and_wrong_method(hook: Harness) -> None:
    big = raw(sample("upload", padding="x" * MAX_NOTIFICATION_BYTES))
    response = hook.post(big)
    assert response.status_code == 413 and _json(response)["status"] == 413
    assert hook.post(b"", {}, method="GET").status_code == 405


def test_publish_failure_is_503_and_the_retry_queues_it(hook: Harness) -> None:
    body = raw(sample("upload"))
    hook.bus.fail_next = True
    response = hook.post(body)
    assert response.status_code == 503
    assert "pubsub" not in _json(response)["detail"]  # internals stay in the log
    assert hook.queued == []
    assert _json(hook.post(body))["outcome"] == "queued"  # Cloudinary's retry
    assert len(hook.queued) == 1


def test_authenticated_assets_get_a_signed_delivery_url(hook: Harness) -> None:
    hook.post(raw(sample("upload", type="authenticated")))
    (message,) = hook.queued
    url = json.loads(message.data)["url"]
    assert url.startswith(f"https://res.cloudinary.com/{CLOUD}/image/authenticated/s--")
    assert "/c_limit,h_2048,w_2048/" in url


def _ingested(hook: Harness, status: ImageStatus = ImageStatus.DONE) -> None:
    hook.metadata.put_image(
        ImageRecord(IMAGE_ID, source_id(CLOUD, PUBLIC_ID, VERSION), status=status, face_count=3)
    )


def test_delete_forgets_the_image_through_the_forget_path(hook: Harness) -> None:
    hook.post(raw(sample("upload")))
    _ingested(hook)
    response = hook.post(raw(sample("delete")))
    assert response.status_code == 200
    assert _json(response)["outcome"] == "forgotten"
    assert _json(response)["image_ids"] == [IMAGE_ID] and _json(response)["faces"] == 3
    assert hook.forgotten == [IMAGE_ID]
    # a duplicate delete and a late retry of the upload change nothing
    assert hook.post(raw(sample("delete"))).status_code == 200
    assert _json(hook.post(raw(sample("upload"))))["outcome"] == "duplicate"
    assert hook.forgotten == [IMAGE_ID] and len(hook.queued) == 1


def test_delete_waits_for_an_ingest_in_flight(hook: Harness) -> None:
    hook.post(raw(sample("upload")))
    assert hook.post(raw(sample("delete"))).status_code == 503  # queued, no record yet
    _ingested(hook, ImageStatus.PROCESSING)
    assert hook.post(raw(sample("delete"))).status_code == 503
    _ingested(hook, ImageStatus.FAILED)
    assert _json(hook.post(raw(sample("delete"))))["image_ids"] == [IMAGE_ID]


def test_delete_before_upload_blocks_the_late_upload(hook: Harness) -> None:
    response = hook.post(raw(sample("delete")))
    assert response.status_code == 200 and _json(response)["image_ids"] == []
    assert _json(hook.post(raw(sample("upload"))))["outcome"] == "duplicate"
    assert hook.queued == [] and hook.forgotten == []


@pytest.mark.parametrize(
    "public_id",
    ["a/%2e%2e/%2e%2e/othercloud/x", "a/%2E%2E/x", "%2e/x", "a%2f..%2fx/%2e%2e/y"],
)
def test_percent_encoded_dot_segments_are_refused_at_the_webhook(
    hook: Harness, public_id: str
) -> None:
    """Regression: these used to be queued, stopped only by the download's path check."""
    response = hook.post(raw(sample("upload", public_id=public_id)))
    assert response.status_code == 400 and _json(response)["code"] == "bad-notification"
    assert hook.queued == []


def test_deeply_nested_signed_notification_is_a_400(hook: Harness) -> None:
    body = b'{"notification_type": "upload", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = hook.post(body)
    assert response.status_code == 400 and _json(response)["code"] == "bad-notification"
