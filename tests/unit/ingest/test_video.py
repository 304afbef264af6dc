"""Videos through the ingest service on the embedded adapters, with the real models.

An upload that sniffs as a video is planned into chunk tasks on ingest-requests; the
tasks are delivered (here by the in-process bus, with Pub/Sub's semantics) to the same
handler the cloud function runs; the last chunk queues the finish, which writes tracks
and track faces and sends them to the indexer. Redelivery of any message changes
nothing; bad videos are recorded failed and acknowledged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch.backends.local import LocalBackend
from facesearch.backends.services import ingest_service
from facesearch.config import Settings, load_settings
from facesearch.errors import ImageTooLarge, IncompleteVideo
from facesearch.ingest.entry import bus_handler, handle_event
from facesearch.ingest.service import IngestService, Outcome
from facesearch.ingest.sources import PUBSUB_PUBLISHED, SourceRef, request_from_ingest_message
from facesearch.ingest.video import MAX_CHUNK_ATTEMPTS
from facesearch.storage.blob import BlobStore
from facesearch.storage.bus import Message
from facesearch.storage.local.blob import LocalBlobStore
from facesearch.storage.local.bus import InProcessBus
from facesearch.storage.messages import EmbeddingsMessage, VideoEvent, VideoTask
from facesearch.storage.videos import VideoStatus
from facesearch.vision.pipeline import FacePipeline
from tests.data.video_corpus import VideoCase, build_corpus
from tests.support.clips import SPANS, two_people_mp4

BUCKET = "uploads"


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    pipeline = FacePipeline(load_settings(onnx_threads=1))
    pipeline.warm_up()
    return pipeline


@pytest.fixture(scope="module")
def clip(photos_dir: Path, pipeline: FacePipeline) -> bytes:
    return two_people_mp4(photos_dir, pipeline)


class UploadsBackend(LocalBackend):
    """The embedded backend whose ``uploads`` bucket is a local directory."""

    def __init__(self, settings: Settings, uploads: BlobStore) -> None:
        super().__init__(settings)
        self.uploads = uploads

    def bucket(self, name: str) -> BlobStore:
        assert name == BUCKET
        return self.uploads


class World:
    """The ingest service as services.ingest_service builds it, on local adapters."""

    def __init__(
        self,
        tmp: Path,
        pipeline: FacePipeline,
        fetch_video: Callable[[str], bytes] | None = None,
        **overrides: object,
    ) -> None:
        self.settings = load_settings(data_dir=tmp, **{"video_chunk_s": 1.0, **overrides})
        self.uploads = LocalBlobStore(tmp / "uploads")
        self.bus = InProcessBus()
        self.backend = UploadsBackend(self.settings, self.uploads)
        self.backend.override(pipeline=pipeline, bus=self.bus)
        self.service: IngestService = ingest_service(self.backend, fetch_video=fetch_video)
        self.metadata = self.backend.metadata()
        self.crops = self.backend.crops()
        self.bus.subscribe(self.settings.storage.ingest_topic, bus_handler(self.service))

    def upload(self, name: str, data: bytes) -> SourceRef:
        generation = self.uploads.write(name, data)
        return SourceRef.gcs(BUCKET, name, generation, size=len(data))

    def published(self, topic: str) -> list[Message]:
        return self.bus.published.get(topic, [])

    def tasks(self) -> list[VideoTask]:
        out = []
        for m in self.published(self.settings.storage.ingest_topic):
            out.append(VideoTask.from_body(json.loads(m.data)))
        return out

    def embeddings(self) -> list[EmbeddingsMessage]:
        return [EmbeddingsMessage.decode(m) for m in self.published("face-embeddings")]

    def events(self) -> list[VideoEvent]:
        return [
            VideoEvent.decode(m)
            for m in self.published("face-events")
            if m.attributes.get("kind") == "video-event"
        ]

    def work_files(self) -> list[str]:
        return [i.name for i in self.crops.list("videos/")]


@pytest.fixture
def world(tmp_path: Path, pipeline: FacePipeline) -> Iterator[World]:
    w = World(tmp_path, pipeline)
    yield w
    w.metadata.close()


def test_a_video_upload_fans_out_into_chunks_and_becomes_tracks(world: World, clip: bytes) -> None:
    source = world.upload("party/clip.mov.bin", clip)  # the name says nothing: content decides
    planned = world.service.ingest(source)
    assert planned.outcome is Outcome.QUEUED and planned.media == "video"
    video_id = planned.image_id
    assert video_id == source.image_id
    record = world.metadata.get_video(video_id)
    assert record is not None and record.status is VideoStatus.PROCESSING
    assert (record.chunks_total, record.duration_ms, record.codec) == (4, 4000, "h264")
    tasks = world.tasks()
    assert [(t.step, t.chunk) for t in tasks] == [("chunk", i) for i in range(4)]
    assert tasks[0].source == {
        "kind": "gcs",
        "bucket": BUCKET,
        "name": "party/clip.mov.bin",
        "generation": source.generation,
    }
    assert world.metadata.chunks_done(video_id, record.plan_id or "") == 0

    world.bus.drain()  # every chunk on "another instance", then the finish

    done = world.metadata.get_video(video_id)
    assert done is not None and done.status is VideoStatus.DONE
    assert (done.track_count, done.chunks_done, done.samples) == (2, 4, 10)
    assert done.finished_at and {"detect", "embed", "stitch"} <= set(done.timings_ms)
    tracks = world.metadata.list_tracks(video_id).items
    assert [t.track_id for t in tracks] == [f"{video_id}-t0", f"{video_id}-t1"]
    assert [list(t.spans) for t in tracks] == [SPANS["obama"], SPANS["biden"]]
    faces = world.metadata.list_faces(image_id=video_id).items
    assert [f.face_id for f in faces] == [t.track_id for t in tracks]
    for face, track in zip(faces, tracks, strict=True):
        assert (face.video_id, face.track_id, face.t_ms) == (
            video_id,
            track.track_id,
            track.best_t_ms,
        )
        assert face.quality["score"] > 0 and face.dims == 128
        assert abs(float(np.linalg.norm(track.mean_vector())) - 1.0) < 1e-4
        assert float(track.mean_vector() @ face.vector()) > 0.9
        crop, _ = world.crops.read(face.crop_url.rsplit("/crops/", 1)[1])  # type: ignore[union-attr]
        assert crop[:3] == b"\xff\xd8\xff"
    (sent,) = world.embeddings()
    assert sent.image_id == video_id and sent.face_ids == [f.face_id for f in faces]
    assert np.allclose(sent.vectors, np.stack([f.vector() for f in faces]))
    (event,) = world.events()
    assert (event.event, event.video_id, event.tracks) == ("video_done", video_id, 2)
    assert event.face_ids == [f.face_id for f in faces]
    assert world.work_files() == []  # chunk results are not kept once the video is done
    assert world.bus.dead_letters == []


def test_redelivery_of_every_message_changes_nothing(world: World, clip: bytes) -> None:
    source = world.upload("clip.mp4", clip)
    world.service.ingest(source)
    world.bus.drain()
    video_id = source.image_id
    before = world.metadata.get_video(video_id)
    tracks = world.metadata.list_tracks(video_id).items
    tasks = list(world.published(world.settings.storage.ingest_topic))
    assert len(tasks) == 5  # four chunks and the finish
    # the upload event again: the video is done
    assert world.service.ingest(source).outcome is Outcome.DUPLICATE
    # every chunk and the finish delivered again, twice over, in reverse order
    world.bus.publish(world.settings.storage.ingest_topic, [*reversed(tasks), *tasks])
    world.bus.drain()
    assert world.metadata.list_tracks(video_id).items == tracks
    assert world.metadata.counts().faces == 2 and world.metadata.counts().tracks == 2
    after = world.metadata.get_video(video_id)
    assert after is not None and before is not None
    assert (after.status, after.track_count, after.finished_at) == (
        VideoStatus.DONE,
        2,
        before.finished_at,
    )
    assert world.work_files() == []  # no chunk was processed again
    assert len(world.embeddings()) == 1  # no second set of faces for the indexer
    assert [e.event for e in world.events()] == ["video_done"]  # a done video stays quiet


def test_a_redelivered_upload_while_processing_requeues_its_chunks(
    world: World, clip: bytes
) -> None:
    """The planner may have died between storing the plan and publishing it: a redelivered
    upload event publishes the chunk tasks again; done chunks are not processed twice."""
    source = world.upload("clip.mp4", clip)
    assert world.service.ingest(source).outcome is Outcome.QUEUED
    first, *_ = world.published(world.settings.storage.ingest_topic)
    bus_handler(world.service)([first])  # chunk 0 done
    again = world.service.ingest(source)
    assert again.outcome is Outcome.DUPLICATE and again.reason == "processing, re-queued"
    assert [t.chunk for t in world.tasks()] == [0, 1, 2, 3, 0, 1, 2, 3]
    world.bus.drain()
    record = world.metadata.get_video(source.image_id)
    assert record is not None and record.status is VideoStatus.DONE
    assert world.metadata.counts().tracks == 2
    # (in this batch the re-queued chunks ran before the finish, so each queued one more;
    # those found the video done and did nothing)
    assert [e.event for e in world.events()] == ["video_done"]
    assert len(world.embeddings()) == 1


def test_progress_is_counted_per_chunk(world: World, clip: bytes) -> None:
    source = world.upload("clip.mp4", clip)
    world.service.ingest(source)
    record = world.metadata.get_video(source.image_id)
    assert record is not None and record.plan_id
    ingest_messages = world.published(world.settings.storage.ingest_topic)
    handle = bus_handler(world.service)
    for n, message in enumerate(ingest_messages[:3], 1):
        handle([message])
        assert world.metadata.chunks_done(source.image_id, record.plan_id) == n
    assert world.metadata.get_video(source.image_id).status is VideoStatus.PROCESSING  # type: ignore[union-attr]


def test_a_chunk_that_keeps_crashing_fails_its_video(
    world: World, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = world.upload("clip.mp4", clip)
    world.service.ingest(source)
    message = world.published(world.settings.storage.ingest_topic)[1]

    def crash(*args: object, **kwargs: object) -> None:
        raise MemoryError("the instance ran out of memory")

    monkeypatch.setattr("facesearch.ingest.video.process_chunk", crash)
    data = {"message": {"data": base64.b64encode(message.data).decode()}}
    for _ in range(MAX_CHUNK_ATTEMPTS):
        with pytest.raises(MemoryError):  # unexpected: raised, so Pub/Sub redelivers
            handle_event(PUBSUB_PUBLISHED, data, service=world.service)
    outcome = handle_event(PUBSUB_PUBLISHED, data, service=world.service)
    assert outcome is not None and outcome.outcome is Outcome.FAILED
    record = world.metadata.get_video(source.image_id)
    assert record is not None and record.status is VideoStatus.FAILED
    assert record.error_code == "too-many-attempts"
    assert world.events()[-1].event == "video_failed"


def test_a_finish_that_overtakes_a_chunk_is_retried(world: World, clip: bytes) -> None:
    source = world.upload("clip.mp4", clip)
    world.service.ingest(source)
    chunk = world.tasks()[0]
    finish = VideoTask("finish", chunk.video_id, chunk.plan_id, chunk.source)
    with pytest.raises(IncompleteVideo):  # retryable: raised, so the push is retried
        bus_handler(world.service)([finish.encode()])


def test_a_video_forgotten_while_processing_leaves_nothing(world: World, clip: bytes) -> None:
    source = world.upload("clip.mp4", clip)
    world.service.ingest(source)
    first, *rest = world.published(world.settings.storage.ingest_topic)
    bus_handler(world.service)([first])
    assert world.work_files()  # the first chunk's result
    world.metadata.delete_video(source.image_id)  # (the API's forget, without its crops)
    for name in world.work_files():
        world.crops.delete(name)
    bus_handler(world.service)(rest)  # late chunks: acknowledged, nothing written
    assert world.metadata.get_video(source.image_id) is None
    assert world.work_files() == [] and world.metadata.counts().tracks == 0


def test_a_video_from_a_url_is_fetched_once_and_staged_for_its_chunks(
    tmp_path: Path, pipeline: FacePipeline, clip: bytes
) -> None:
    """The Cloudinary path: an ingest request with media=video; the planner fetches it, stages
    it in the crops store, every chunk reads the staged copy, which goes once it is done."""
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return clip

    world = World(tmp_path, pipeline, fetch_video=fetch)
    url = "https://res.cloudinary.com/demo/video/upload/v1/team/clip.mp4"
    body = {
        "v": 1,
        "url": url,
        "source_id": "cloudinary-video://demo/team/clip#1",
        "media": "video",
    }
    source = request_from_ingest_message(json.dumps(body).encode())
    assert isinstance(source, SourceRef) and source.claims_video
    assert world.service.ingest(source).outcome is Outcome.QUEUED
    staged = world.work_files()
    assert staged == [f"videos/{source.image_id}/source"]
    assert world.tasks()[0].source == {"kind": "blob", "name": staged[0]}
    world.bus.drain()
    record = world.metadata.get_video(source.image_id)
    assert record is not None and record.status is VideoStatus.DONE and record.track_count == 2
    assert fetched == [url] and world.work_files() == []
    world.metadata.close()


def test_an_oversized_url_video_is_recorded_failed(tmp_path: Path, pipeline: FacePipeline) -> None:
    def fetch(url: str) -> bytes:
        raise ImageTooLarge("image exceeds the limit of 10 bytes")  # the fetcher's cap

    world = World(tmp_path, pipeline, fetch_video=fetch)
    body = {"v": 1, "url": "https://x/video/a.mp4", "source_id": "s", "media": "video"}
    source = request_from_ingest_message(json.dumps(body).encode())
    assert isinstance(source, SourceRef)
    outcome = world.service.ingest(source)
    assert (outcome.outcome, outcome.error_code) == (Outcome.FAILED, "video-too-large")
    assert world.metadata.get_video(source.image_id).status is VideoStatus.FAILED  # type: ignore[union-attr]
    world.metadata.close()


# --- the bad-video corpus, through ingest ------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[VideoCase]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


NOT_VIDEOS = {"empty", "text", "random_bytes", "jpeg_image", "heic_image"}


def test_the_bad_video_corpus_is_recorded_and_acknowledged(
    corpus: list[VideoCase], tmp_path: Path, pipeline: FacePipeline
) -> None:
    """Every case: a typed, final outcome on the video record (or not a video at all), and
    never an exception (an exception means a redelivery: the retry storm we must avoid)."""
    for case in corpus:
        overrides = {f"video_{k}": v for k, v in case.settings.items()}
        if case.name == "ten_hours_allowed":
            overrides["video_chunk_s"] = 60.0
        world = World(tmp_path / case.name, pipeline, **overrides)
        name = f"{case.name}.bin"  # no name claims anything: content decides
        source = world.upload(name, case.data)
        outcome = world.service.ingest(source)
        record = world.metadata.get_video(source.image_id)
        if case.name in NOT_VIDEOS:
            assert record is None and outcome.media == "image", case.name
            assert outcome.outcome in (Outcome.SKIPPED, Outcome.FAILED), case.name
            continue
        assert record is not None, case.name
        if case.name == "ten_hours_allowed":  # planned into 600 chunks; not run here
            assert outcome.outcome is Outcome.QUEUED and record.chunks_total == 600
            continue
        world.bus.drain()
        record = world.metadata.get_video(source.image_id)
        assert record is not None
        expected = VideoStatus.DONE if case.outcome == "ok" else VideoStatus.FAILED
        assert (record.status, record.error_code) == (
            expected,
            None if case.outcome == "ok" else case.outcome,
        ), f"{case.name}: {case.why}"
        assert world.bus.dead_letters == [], case.name
        world.metadata.close()
