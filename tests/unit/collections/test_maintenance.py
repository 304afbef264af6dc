"""Erase and retention as the indexer runs them: bounded steps through control messages,
continuations on the bus, per-collection indexes, and proof that nothing is left."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from facesearch.backends.local import LocalBackend
from facesearch.backends.services import indexer_service
from facesearch.collections.erase import EraseJob
from facesearch.collections.retention import DAY_S, RetentionSweep
from facesearch.config import load_settings
from facesearch.indexer.service import IndexerService
from facesearch.ingest.outputs import crop_name
from facesearch.storage.bus import Message
from facesearch.storage.catalog import CollectionRecord, CollectionStatus
from facesearch.storage.local.bus import InProcessBus
from facesearch.storage.messages import ControlMessage, DeletionsMessage, EmbeddingsMessage
from facesearch.storage.metadata import (
    FaceRecord,
    ImageRecord,
    ImageStatus,
    collection_prefix,
    embedding_bytes,
)
from facesearch.storage.videos import TrackRecord, VideoRecord, VideoStatus
from facesearch.video.names import work_files

MODEL = "dlib-resnet-v1@2"


class Deployment:
    """The embedded backend with the indexer subscribed to its in-process bus."""

    def __init__(self, tmp: Path) -> None:
        self.settings = load_settings(
            data_dir=tmp, index_auto_compact=False, index_refresh_interval_s=0.0
        )
        self.bus = InProcessBus()
        self.backend = LocalBackend(self.settings).override(bus=self.bus)
        self.indexer: IndexerService = indexer_service(self.backend)
        topics = self.settings.storage
        self.bus.subscribe(topics.embeddings_topic, self.indexer.handle_batch)
        self.bus.subscribe(topics.deletions_topic, self.indexer.handle_batch)
        self.catalog = self.backend.catalog()

    def create(self, collection_id: str, **settings: object) -> None:
        self.catalog.create_collection(CollectionRecord(collection_id, settings=dict(settings)))

    def put(self, collection_id: str, image_id: str, faces: int, *, created: float) -> list[str]:
        """Records, crops and an embeddings message for one image, as ingest leaves them."""
        store = self.backend.metadata(collection_id)
        crops = self.backend.crops()
        rng = np.random.default_rng(abs(hash(image_id)) % 2**32)
        vectors = rng.normal(size=(faces, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = []
        for i in range(faces):
            name = f"{collection_prefix(collection_id)}{image_id}/{i}.jpg"
            crops.write(name, b"\xff\xd8\xff crop")
            records.append(
                FaceRecord(
                    face_id=f"{image_id}-{i}",
                    image_id=image_id,
                    face_index=i,
                    bbox=(0.0, 0.0, 10.0, 10.0),
                    landmarks=((1.0, 1.0),) * 5,
                    det_score=0.99,
                    embedding=embedding_bytes(vectors[i]),
                    model=MODEL,
                    crop_url=f"{crops.url}/{name}",
                )
            )
        store.put_image(
            ImageRecord(
                image_id=image_id,
                source=f"test://{image_id}",
                status=ImageStatus.DONE,
                face_count=faces,
                model=MODEL,
                created_at=created,
            )
        )
        store.put_faces(image_id, records)
        ids = [r.face_id for r in records]
        message = EmbeddingsMessage(image_id, MODEL, ids, vectors, collection_id=collection_id)
        self.bus.publish(self.settings.storage.embeddings_topic, [message.encode()])
        self.bus.drain()
        return ids

    def put_video(self, collection_id: str, video_id: str, *, created: float) -> list[str]:
        """A finished video as the finisher leaves it (two tracks), plus a chunk result and
        a marker a crashed finisher could leave behind; its faces indexed."""
        store = self.backend.metadata(collection_id)
        crops = self.backend.crops()
        store.put_video(
            VideoRecord(
                video_id,
                f"test://{video_id}",
                VideoStatus.DONE,
                plan_id="p",
                fps=2.0,
                chunk_ms=60000,
                chunks_total=1,
                track_count=2,
                created_at=created,
            )
        )
        store.finish_chunk(video_id, "p", 0)
        for name in work_files(store.get_video(video_id)):  # type: ignore[arg-type]
            crops.write(name, b"{}")
        vectors = np.random.default_rng(7).normal(size=(2, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        faces, tracks = [], []
        for i in range(2):
            name = crop_name(collection_id, video_id, i)
            crops.write(name, b"\xff\xd8\xff crop")
            track_id = f"{video_id}-t{i}"
            faces.append(
                FaceRecord(
                    face_id=track_id,
                    image_id=video_id,
                    face_index=i,
                    bbox=(0.0, 0.0, 10.0, 10.0),
                    landmarks=((1.0, 1.0),) * 5,
                    det_score=0.99,
                    embedding=embedding_bytes(vectors[i]),
                    model=MODEL,
                    crop_url=f"{crops.url}/{name}",
                    video_id=video_id,
                    track_id=track_id,
                    t_ms=0,
                )
            )
            tracks.append(
                TrackRecord(track_id, video_id, i, ((0, 500),), 3, 0, faces[-1].embedding, MODEL)
            )
        store.put_tracks(video_id, tracks, faces)
        ids = [f.face_id for f in faces]
        message = EmbeddingsMessage(video_id, MODEL, ids, vectors, collection_id=collection_id)
        self.bus.publish(self.settings.storage.embeddings_topic, [message.encode()])
        self.bus.drain()
        return ids

    def live(self, collection_id: str) -> set[str]:
        reader = self.backend.index_reader(collection_id=collection_id)
        return set(reader.face_ids())

    def control(self, message: ControlMessage) -> int:
        self.bus.publish(self.settings.storage.deletions_topic, [message.encode()])
        return self.bus.drain()


@pytest.fixture
def world(tmp_path: Path) -> Deployment:
    return Deployment(tmp_path)


def test_each_collection_commits_to_its_own_index(world: Deployment) -> None:
    world.create("a")
    world.create("b")
    in_a = world.put("a", "a1", 2, created=time.time())
    in_b = world.put("b", "b1", 3, created=time.time())
    in_default = world.put("default", "d1", 1, created=time.time())
    assert world.live("a") == set(in_a)
    assert world.live("b") == set(in_b)
    assert world.live("default") == set(in_default)
    # one batch holding messages of three collections: three commits, no mixing
    store = world.backend.index_store(collection_id="a")
    assert any(i.name.startswith("segments/") for i in store.list(""))


def test_erase_runs_in_bounded_steps_until_the_scan_is_clean(world: Deployment) -> None:
    world.create("event")
    world.create("other")
    for n in range(6):
        world.put("event", f"e{n}", 2, created=time.time())
    kept = world.put("other", "o1", 2, created=time.time())
    job: EraseJob = world.backend.erase_job()
    job.step_budget = 5
    job.start("event")
    steps = world.control(ControlMessage("erase", "event"))
    record = world.catalog.get_collection("event")
    assert record is not None and record.status is CollectionStatus.ERASED
    report = record.erase_report
    assert steps > 2 and report["steps"] >= 2  # continuations went round the bus
    assert report["verified"] and not any(report["leftovers"].values())
    assert report["removed"]["images"] == 6 and report["removed"]["faces"] == 12
    assert report["removed"]["crops"] == 12 and report["removed"]["index_objects"] >= 2
    assert job.scan("event") == dict.fromkeys(report["leftovers"], 0)
    assert world.live("other") == set(kept)  # untouched
    # late messages for the erased collection do not bring its index back
    late = EmbeddingsMessage(
        "late", MODEL, ["late-0"], np.ones((1, 128), np.float32), None, "event"
    )
    world.bus.publish(world.settings.storage.embeddings_topic, [late.encode()])
    removal = DeletionsMessage(["e0-0"], collection_id="event")
    world.bus.publish(world.settings.storage.deletions_topic, [removal.encode()])
    world.bus.drain()
    assert world.backend.index_store(collection_id="event").list("") == []
    assert world.bus.dead_letters == []


def test_erase_removes_videos_their_tracks_and_work_files(world: Deployment) -> None:
    world.create("event")
    world.put("event", "e1", 1, created=time.time())
    world.put_video("event", "v1", created=time.time())
    assert world.backend.erase_job().scan("event")["videos"] == 1
    report = world.backend.erase_job().run("event")
    assert report["verified"] and not any(report["leftovers"].values())
    assert report["leftovers"]["videos"] == 0 and report["leftovers"]["tracks"] == 0
    removed = report["removed"]
    assert (removed["videos"], removed["tracks"], removed["faces"]) == (2, 2, 3)  # + marker
    assert removed["crops"] == 1 + 2 + 2  # the photo's crop, two track crops, work files
    assert world.backend.crops().list(collection_prefix("event")) == []


def test_finish_refuses_while_anything_is_left(world: Deployment) -> None:
    world.create("event")
    world.put("event", "e1", 1, created=time.time())
    job = world.backend.erase_job()
    job.start("event")
    while not job.step("event").done:
        pass
    world.backend.crops().write(f"{collection_prefix('event')}stray.jpg", b"x")  # slipped in
    assert job.finish("event") is None
    record = world.catalog.get_collection("event")
    assert record is not None and record.status is CollectionStatus.ERASING
    assert job.run("event")["verified"] is True


def test_retention_forgets_only_expired_images_of_collections_that_keep_them(
    world: Deployment,
) -> None:
    now = time.time()
    world.create("short", retention_days=7)
    world.create("forever")
    old = world.put("short", "old", 2, created=now - 8 * DAY_S)
    new = world.put("short", "new", 1, created=now - 1 * DAY_S)
    ancient = world.put("forever", "ancient", 1, created=now - 400 * DAY_S)
    steps = world.control(ControlMessage("retention"))  # the scheduler's daily message
    assert steps == 2  # the fan-out, then one step for "short" (the only one due)
    store = world.backend.metadata("short")
    assert store.get_image("old") is None and store.get_image("new") is not None
    assert world.live("short") == set(new)
    assert not set(old) & world.live("short")
    crops = {i.name for i in world.backend.crops().list(collection_prefix("short"))}
    assert crops == {f"{collection_prefix('short')}new/0.jpg"}
    assert world.live("forever") == set(ancient)


def test_retention_forgets_expired_videos_too(world: Deployment) -> None:
    now = time.time()
    world.create("short", retention_days=7)
    old = world.put_video("short", "old", created=now - 8 * DAY_S)
    new = world.put_video("short", "new", created=now - 1 * DAY_S)
    world.control(ControlMessage("retention"))
    store = world.backend.metadata("short")
    assert store.get_video("old") is None and store.list_tracks("old").items == []
    assert store.get_face(old[0]) is None and store.get_video("new") is not None
    assert world.live("short") == set(new)
    names = {i.name for i in world.backend.crops().list(collection_prefix("short"))}
    assert not any("/old/" in n or n.startswith(f"{collection_prefix('short')}old/") for n in names)
    assert f"{collection_prefix('short')}new/0.jpg" in names


def test_retention_sweeps_a_large_collection_in_steps(world: Deployment) -> None:
    sweep: RetentionSweep = world.backend.retention()
    sweep.step_images = 2
    world.create("short", retention_days=1)
    for n in range(5):
        world.put("short", f"x{n}", 1, created=time.time() - 2 * DAY_S)
    step = sweep.step("short")
    assert (step.images, step.done) == (2, False)
    world.control(ControlMessage("retention", "short"))  # continues itself until done
    assert world.backend.metadata("short").counts().images == 0
    assert world.live("short") == set()


def test_control_messages_survive_the_wire(world: Deployment) -> None:
    message = ControlMessage("erase", "event").encode()
    assert message.attributes == {"kind": "control", "action": "erase"}
    assert json.loads(message.data) == {"v": 1, "action": "erase", "collection": "event"}
    assert ControlMessage.decode(Message(message.data, {})) == ControlMessage("erase", "event")


def test_a_commit_racing_the_erase_removes_what_it_wrote(world: Deployment) -> None:
    """The erase is marked while a commit is being written: the commit's own check after
    writing sees the mark and removes its objects; the erase then finds nothing left."""
    world.create("event")
    world.put("event", "e1", 1, created=time.time())
    writer = world.backend.index_writer(collection_id="event")
    job = world.backend.erase_job()
    original = writer.add

    def add_then_erase_starts(*args: object, **kwargs: object) -> object:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        job.start("event")  # another instance marks the collection right now
        return result

    writer.add = add_then_erase_starts  # type: ignore[method-assign]
    world.put("event", "e2", 1, created=time.time())
    assert world.backend.index_store(collection_id="event").list("") == []
    assert job.run("event")["verified"] is True
    assert world.bus.dead_letters == []
