"""The metadata port's video half on both adapters: videos, chunk markers, tracks.

SQLite here, Firestore on its emulator (``integration``). Also: the collection scoping
and closed-collection refusals of the video records, their purge, and the migration of
a schema-2 SQLite file (from before videos).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from facesearch.errors import CollectionClosed, InvalidCursor
from facesearch.storage.catalog import Catalog, CollectionRecord, CollectionStatus
from facesearch.storage.local.catalog import SCHEMA_VERSION
from facesearch.storage.local.metadata import SqliteMetadataStore
from facesearch.storage.metadata import FaceRecord, embedding_bytes
from facesearch.storage.videos import TrackRecord, VideoRecord, VideoStatus


def _unit(seed: int, dims: int = 8) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dims).astype(np.float32)
    return vector / np.linalg.norm(vector)


def track(video_id: str, n: int, spans: tuple[tuple[int, int], ...] = ((0, 500),)) -> TrackRecord:
    return TrackRecord(
        track_id=f"{video_id}-t{n}",
        video_id=video_id,
        track_index=n,
        spans=spans,
        hits=3 + n,
        best_t_ms=spans[0][0],
        mean_embedding=embedding_bytes(_unit(100 + n)),
        model="m@1",
    )


def track_face(video_id: str, n: int) -> FaceRecord:
    return FaceRecord(
        face_id=f"{video_id}-t{n}",
        image_id=video_id,
        face_index=n,
        bbox=(10.0, 20.0, 60.0, 80.0),
        landmarks=((1.0, 2.0),) * 5,
        det_score=0.99,
        embedding=embedding_bytes(_unit(n)),
        model="m@1",
        quality={"score": 0.7, "reasons": []},
        crop_url=f"crops/{video_id}/t{n}.jpg",
        video_id=video_id,
        track_id=f"{video_id}-t{n}",
        t_ms=250 * n,
    )


def test_video_round_trip_and_upsert(catalog: Catalog) -> None:
    store = catalog.store("default")
    assert store.get_video("v1") is None
    first = store.put_video(
        VideoRecord(
            "v1",
            "gs://uploads/clip.mp4#7",
            VideoStatus.PROCESSING,
            source_info={"kind": "gcs", "name": "clip.mp4"},
            container="mp4",
            codec="h264",
            width=1280,
            height=720,
            duration_ms=9960,
            frame_rate=25.0,
            plan_id="p1",
            fps=2.0,
            chunk_ms=60000,
            chunks_total=3,
            model="m@1",
            attempts=1,
        )
    )
    assert first.created_at > 0 and first.collection_id == "default"
    assert store.get_video("v1") == first
    done = store.put_video(
        VideoRecord(
            "v1",
            first.source,
            VideoStatus.DONE,
            plan_id="p1",
            chunks_total=3,
            chunks_done=3,
            track_count=2,
            timings_ms={"detect": 1.5},
            finished_at=123.0,
        )
    )
    got = store.get_video("v1")
    assert got == done and got.created_at == first.created_at
    assert got.status is VideoStatus.DONE and got.timings_ms == {"detect": 1.5}
    failed = store.put_video(
        VideoRecord("v2", "s", VideoStatus.FAILED, error_code="invalid-video", error_message="cut")
    )
    assert store.get_video("v2") == failed and failed.error_code == "invalid-video"
    counts = store.counts()
    assert (counts.videos, counts.tracks, counts.images) == (2, 0, 0)


def test_videos_created_before(catalog: Catalog) -> None:
    store = catalog.store("default")
    store.put_video(VideoRecord("old", "s", created_at=1000.0))
    store.put_video(VideoRecord("new", "s", created_at=5000.0))
    assert [v.video_id for v in store.videos_created_before(2000.0)] == ["old"]
    assert len(store.videos_created_before(9000.0, limit=1)) == 1


def test_chunk_markers_count_attempts_and_progress(catalog: Catalog) -> None:
    store = catalog.store("default")
    assert store.chunks_done("v", "p") == 0
    assert store.start_chunk("v", "p", 0).attempts == 1
    state = store.start_chunk("v", "p", 0)  # a redelivery of an unfinished chunk
    assert (state.attempts, state.done) == (2, False)
    assert store.finish_chunk("v", "p", 0) == 1
    assert store.start_chunk("v", "p", 0).done  # finished: reported, not counted again
    assert store.finish_chunk("v", "p", 0) == 1  # redelivered finish: idempotent
    assert store.finish_chunk("v", "p", 2) == 2  # a chunk finished without a recorded start
    store.start_chunk("v", "p", 1)
    assert store.chunks_done("v", "p") == 2
    store.finish_chunk("v", "other-plan", 1)  # another plan's markers never count
    assert store.chunks_done("v", "p") == 2 and store.chunks_done("v", "other-plan") == 1


def test_the_finish_is_claimed_once_per_plan(catalog: Catalog) -> None:
    store = catalog.store("default")
    assert not store.claim_finish("v", "p")  # no such video
    store.put_video(VideoRecord("v", "s", VideoStatus.PROCESSING, plan_id="p"))
    assert not store.claim_finish("v", "other")  # not its plan
    assert store.claim_finish("v", "p")
    assert not store.claim_finish("v", "p")  # the second of two last chunks
    assert store.get_video("v").finish_claimed == "p"  # type: ignore[union-attr]


def test_tracks_and_their_faces(catalog: Catalog) -> None:
    store = catalog.store("default")
    tracks = [track("v", n, ((n * 1000, n * 1000 + 500), (5000, 5500))) for n in range(3)]
    store.put_tracks("v", tracks, [track_face("v", n) for n in range(3)])
    got = store.get_tracks(["v-t1", "missing", "v-t1"])
    assert list(got) == ["v-t1"]
    one = got["v-t1"]
    assert one.spans == ((1000, 1500), (5000, 5500)) and one.hits == 4
    assert (one.first_ms, one.last_ms, one.face_id) == (1000, 5500, "v-t1")
    assert np.allclose(one.mean_vector(), _unit(101)) and one.created_at > 0
    page = store.list_tracks("v", limit=2)
    assert [t.track_id for t in page.items] == ["v-t0", "v-t1"] and page.next_cursor
    rest = store.list_tracks("v", cursor=page.next_cursor, limit=2)
    assert [t.track_id for t in rest.items] == ["v-t2"] and rest.next_cursor is None
    with pytest.raises(InvalidCursor):
        store.list_tracks("other", cursor=page.next_cursor)
    face = store.get_face("v-t2")
    assert face is not None and (face.video_id, face.track_id, face.t_ms) == ("v", "v-t2", 500)
    assert [f.face_id for f in store.list_faces(image_id="v").items] == ["v-t0", "v-t1", "v-t2"]
    assert store.counts().tracks == 3 and store.counts().faces == 3


def test_put_tracks_replaces_the_set(catalog: Catalog) -> None:
    store = catalog.store("default")
    store.put_tracks("v", [track("v", n) for n in range(3)], [track_face("v", n) for n in range(3)])
    store.put_tracks("w", [track("w", 0)], [track_face("w", 0)])
    first = store.get_tracks(["v-t0"])["v-t0"]
    # a re-run of the finisher (redelivery): the same ids, one fewer track
    store.put_tracks("v", [track("v", n) for n in range(2)], [track_face("v", n) for n in range(2)])
    assert [t.track_id for t in store.list_tracks("v").items] == ["v-t0", "v-t1"]
    assert store.get_face("v-t2") is None and store.get_tracks(["v-t2"]) == {}
    assert store.get_face("v-t0") is not None  # who it is lives in the people store
    assert store.get_tracks(["v-t0"])["v-t0"].created_at == first.created_at
    assert [t.track_id for t in store.list_tracks("w").items] == ["w-t0"]  # untouched
    with pytest.raises(ValueError):
        store.put_tracks("v", [track("w", 0)], [])
    with pytest.raises(ValueError):
        store.put_tracks("v", [], [track_face("w", 0)])


def test_delete_video_removes_everything_of_it(catalog: Catalog) -> None:
    store = catalog.store("default")
    store.put_video(VideoRecord("v", "s", VideoStatus.DONE, plan_id="p", chunks_total=2))
    store.start_chunk("v", "p", 0)
    store.finish_chunk("v", "p", 1)
    store.put_tracks("v", [track("v", n) for n in range(2)], [track_face("v", n) for n in range(2)])
    store.put_tracks("w", [track("w", 0)], [track_face("w", 0)])
    assert sorted(store.delete_video("v")) == ["v-t0", "v-t1"]
    assert store.get_video("v") is None and store.list_tracks("v").items == []
    assert store.get_face("v-t0") is None and store.chunks_done("v", "p") == 0
    assert store.get_face("w-t0") is not None
    assert store.delete_video("v") == []  # idempotent
    assert store.counts().tracks == 1


def test_video_records_are_scoped_refused_when_closed_and_purged(catalog: Catalog) -> None:
    catalog.create_collection(CollectionRecord("event"))
    event, default = catalog.store("event"), catalog.store("default")
    event.put_video(VideoRecord("v", "s", VideoStatus.PROCESSING, plan_id="p"))
    event.start_chunk("v", "p", 0)
    event.finish_chunk("v", "p", 0)
    event.put_tracks("v", [track("v", n) for n in range(3)], [track_face("v", n) for n in range(3)])
    default.put_video(VideoRecord("v", "other", VideoStatus.DONE))
    assert default.get_video("v").source == "other"  # type: ignore[union-attr]
    assert default.list_tracks("v").items == [] and default.chunks_done("v", "p") == 0
    assert event.get_tracks(["v-t0"]) and not default.get_tracks(["v-t0"])
    catalog.update_collection("event", status=CollectionStatus.ERASING)
    with pytest.raises(CollectionClosed):
        event.put_video(VideoRecord("late", "s"))
    with pytest.raises(CollectionClosed):
        event.start_chunk("v", "p", 1)
    with pytest.raises(CollectionClosed):
        event.finish_chunk("v", "p", 1)
    with pytest.raises(CollectionClosed):
        event.put_tracks("v", [track("v", 0)], [track_face("v", 0)])
    removed = {"videos": 0, "tracks": 0, "faces": 0}
    for _ in range(20):
        step = event.purge(limit=2)
        removed["videos"] += step.videos
        removed["tracks"] += step.tracks
        removed["faces"] += step.faces
        if step.done:
            break
    assert removed == {"videos": 2, "tracks": 3, "faces": 3}  # video + its chunk marker
    counts = event.counts()
    assert (counts.videos, counts.tracks, counts.faces) == (0, 0, 0)
    assert default.get_video("v") is not None


def test_a_schema_2_file_gets_the_video_tables(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE collections (collection_id TEXT PRIMARY KEY, status TEXT NOT NULL,
            data TEXT NOT NULL);
        CREATE TABLE images (collection_id TEXT NOT NULL, image_id TEXT NOT NULL,
            status TEXT NOT NULL, updated_at REAL NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (collection_id, image_id));
        CREATE TABLE faces (collection_id TEXT NOT NULL, face_id TEXT NOT NULL,
            image_id TEXT NOT NULL, face_index INTEGER NOT NULL, person_id TEXT,
            created_at REAL NOT NULL, embedding BLOB NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (collection_id, face_id));
        CREATE TABLE persons (collection_id TEXT NOT NULL, person_id TEXT NOT NULL,
            data TEXT NOT NULL, PRIMARY KEY (collection_id, person_id));
        PRAGMA user_version = 2;
        """
    )
    old.execute(
        "INSERT INTO images VALUES ('default', 'i1', 'done', 5, ?)",
        ('{"image_id": "i1", "source": "s", "status": "done", "created_at": 5}',),
    )
    old.commit()
    old.close()
    store = SqliteMetadataStore(path)  # migrates on open
    assert store.get_image("i1") is not None
    store.put_video(VideoRecord("v", "s"))
    store.put_tracks("v", [track("v", 0)], [track_face("v", 0)])
    assert store.counts().tracks == 1
    store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    check.close()
