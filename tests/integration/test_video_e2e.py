"""Videos end to end on the emulators: upload -> plan -> chunks fan out over Pub/Sub ->
finisher -> indexer -> moments searchable by a photo; redelivery; forget.

A 4 s clip of two people is uploaded to the watched bucket (fake-gcs-server); its
finalize event reaches the in-process ingest function through the Eventarc relay,
which plans 4 chunks (``FACESEARCH_VIDEO_CHUNK_S=1``) and publishes them on
``ingest-requests``; Google's Pub/Sub emulator *pushes* them back to the ingest
function (several at once, like instances), each reading its stretch of the object with
ranged reads; the last queues the finish, whose faces reach a real ``functions-framework``
indexer process. The query API (gcp backend, Firestore) then finds each person's moments
from a photo. Every ingest-requests message delivered again changes nothing; forgetting
the video leaves nothing in Firestore, the crops bucket or the index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facesearch.api.crops import GcsCropUrls, LocalCropUrls
from facesearch.auth.keys import StaticKeyRing
from facesearch.backends import backend_for, services
from facesearch.config import load_settings
from facesearch.storage.bus import Message
from facesearch.storage.gcp.bus import PubSubBus
from facesearch.storage.messages import VideoEvent
from facesearch.storage.videos import VideoStatus
from facesearch.vision.pipeline import FacePipeline
from tests.integration.pipeline_harness import (
    Deployment,
    create_push_subscription,
    pull_until,
    wait_for,
)
from tests.support.api import KEY, SignedClient
from tests.support.clips import SPANS, probe_photo, two_people_mp4

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NAME = "videos/party.mp4"


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    pipeline = FacePipeline(load_settings(onnx_threads=1))
    pipeline.warm_up()
    return pipeline


@pytest.fixture
def deployment(
    emulated: None, emulator_log_dir: Path, gcp_project: str, tmp_path: Path, pipeline: FacePipeline
) -> Iterator[Deployment]:
    with Deployment(
        project=gcp_project,
        tmp=tmp_path,
        log_dir=emulator_log_dir,
        pipeline=pipeline,
        extra_env={"FACESEARCH_VIDEO_CHUNK_S": "1"},
    ) as d:
        from google.cloud import pubsub_v1

        pubsub_v1.SubscriberClient().create_subscription(  # a copy of every task, to replay
            name=f"projects/{d.project}/subscriptions/tasks-observer",
            topic=f"projects/{d.project}/topics/ingest-requests",
        )
        create_push_subscription(d.project, "ingest-requests", "ingest-push", d.ingest_url)
        yield d


class EmulatorCropUrls(LocalCropUrls):
    """Local signed links (a GCS signed URL needs a key the emulator has not), GCS deletes."""

    def __init__(self, gcs: GcsCropUrls) -> None:
        super().__init__(b"k" * 32, 60, base_url="https://query.test")
        self.gcs = gcs

    def delete(self, crop_location: str) -> None:
        self.gcs.delete(crop_location)


def _api(d: Deployment, pipeline: FacePipeline) -> tuple[SignedClient, Any]:
    settings = load_settings(
        **{k[len("FACESEARCH_") :].lower(): v for k, v in d.env(d.tmp / "query").items()},
        public_url="https://query.test",
        index_refresh_interval_s=0.0,
    )
    backend = backend_for(settings)
    backend.override(
        pipeline=pipeline,
        keyring=StaticKeyRing({KEY.key_id: KEY.secret}),
        crop_urls=EmulatorCropUrls(
            GcsCropUrls(60, service_account=None, client=backend.gcs_client)
        ),
    )
    return SignedClient(services.query_app(backend)), backend


def _crops(d: Deployment, prefix: str = "") -> list[str]:
    from google.cloud import storage

    return [
        b.name for b in storage.Client(project=d.project).list_blobs(d.crops_bucket, prefix=prefix)
    ]


def test_a_video_upload_fans_out_and_its_moments_are_searchable(
    deployment: Deployment, photos_dir: Path, pipeline: FacePipeline
) -> None:
    d = deployment
    started = time.monotonic()
    d.upload(NAME, two_people_mp4(photos_dir, pipeline), content_type="video/mp4")
    video_id = d.image_id(NAME)

    def status() -> VideoStatus | None:
        record = d.metadata.get_video(video_id)
        return None if record is None else record.status

    wait_for("video done", lambda: status() in (VideoStatus.DONE, VideoStatus.FAILED), 300, 0.2)
    elapsed = time.monotonic() - started
    record = d.metadata.get_video(video_id)
    assert record is not None and record.status is VideoStatus.DONE, record
    assert (record.chunks_total, record.chunks_done, record.track_count) == (4, 4, 2)
    assert record.source.startswith(f"gs://{d.uploads_bucket}/{NAME}#")
    assert d.metadata.chunks_done(video_id, record.plan_id or "") == 4
    tracks = d.metadata.list_tracks(video_id).items
    assert [list(t.spans) for t in tracks] == [SPANS["obama"], SPANS["biden"]]
    track_ids = {t.track_id for t in tracks}
    wait_for("track faces searchable", lambda: d.searchable_ids() >= track_ids, 90)
    assert _crops(d, "videos/") == []  # chunk results removed once the video is done
    assert sorted(_crops(d, f"{video_id}/")) == [f"{video_id}/0.jpg", f"{video_id}/1.jpg"]

    def announced(messages: list[Any]) -> bool:
        kinds = [m.attributes.get("kind") for m in messages]
        added = {
            f
            for m in messages
            if m.attributes.get("kind") == "face-event"
            for f in json.loads(m.data)["face_ids"]
        }
        return "video-event" in kinds and added >= track_ids

    events = pull_until(d.project, "events-observer", announced)
    done = [
        VideoEvent.decode(Message(m.data, dict(m.attributes)))
        for m in events
        if m.attributes.get("kind") == "video-event"
    ]
    assert [(e.event, e.tracks) for e in done] == [("video_done", 2)]
    added = {
        f
        for m in events
        if m.attributes.get("kind") == "face-event"
        for f in json.loads(m.data)["face_ids"]
    }
    assert added >= track_ids
    assert d.relay.stats.nacked == 0
    print(f"video upload -> done and searchable: {elapsed:.1f} s (4 chunks)")

    # the query API on Firestore: a photo of each person finds their moments
    api, _ = _api(d, pipeline)
    for who, track in zip(("obama", "biden"), tracks, strict=True):
        response = api.post(
            "/v1/search", body=probe_photo(photos_dir, who), content_type="image/jpeg"
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        (match, *_) = response.get_json()["faces"][0]["matches"]
        assert (match["video_id"], match["track_id"]) == (video_id, track.track_id)
        assert [(m["start_ms"], m["end_ms"]) for m in match["moments"]] == SPANS[who]
        assert match["crop_url"].startswith("https://query.test/v1/crops/")
    shown = api.get(f"/v1/videos/{video_id}").get_json()
    assert shown["status"] == "done" and shown["progress"]["chunks_done"] == 4
    assert [t["track_id"] for t in shown["tracks"]] == [t.track_id for t in tracks]

    # every ingest-requests message (4 chunks + the finish) delivered again: no change
    tasks = pull_until(d.project, "tasks-observer", lambda m: len(m) >= 5)
    assert sorted(m.attributes["step"] for m in tasks) == ["chunk"] * 4 + ["finish"]
    PubSubBus(d.project).publish(
        "ingest-requests", [Message(m.data, dict(m.attributes)) for m in tasks * 2]
    )
    redelivered = pull_until(d.project, "tasks-observer", lambda m: len(m) >= 10)
    assert len(redelivered) == 10
    time.sleep(3.0)  # the pushes are handled (acknowledged as duplicates)
    assert d.metadata.list_tracks(video_id).items == tracks
    counts = d.metadata.counts()
    assert (counts.tracks, counts.faces, counts.videos) == (2, 2, 1)
    again = d.metadata.get_video(video_id)
    assert again is not None and again.finished_at == record.finished_at
    assert _crops(d, "videos/") == []  # no chunk was processed again

    # forget: records, crops and index entries go
    forgotten = api.call("DELETE", f"/v1/videos/{video_id}")
    assert forgotten.status_code == 200, forgotten.get_data(as_text=True)
    assert sorted(forgotten.get_json()["deleted_faces"]) == sorted(track_ids)
    assert forgotten.get_json()["index"] == "queued"  # the indexer applies it
    wait_for("track faces gone from the index", lambda: not d.searchable_ids() & track_ids, 60)
    assert d.metadata.get_video(video_id) is None and d.metadata.list_tracks(video_id).items == []
    assert d.metadata.counts().faces == 0 and _crops(d) == []
    assert api.get(f"/v1/videos/{video_id}").status_code == 404
