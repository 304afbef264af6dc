"""One contract for every metadata-store adapter.

``MetadataContract`` holds the tests; a subclass provides the ``store``
fixture. SQLite and Firestore (on its emulator, marked ``integration``)
both run it here.
"""

from __future__ import annotations

import importlib
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch.errors import InvalidCursor, TransientError
from facesearch.storage.gcp.metadata import FirestoreMetadataStore
from facesearch.storage.local.metadata import SqliteMetadataStore
from facesearch.storage.metadata import (
    FaceRecord,
    ImageRecord,
    ImageStatus,
    MetadataStore,
    embedding_bytes,
    iter_faces,
)
from tests.support import emulators


def make_face(image_id: str, index: int, *, seed: int = 0) -> FaceRecord:
    rng = np.random.default_rng(seed * 1000 + index)
    vector = rng.normal(size=128).astype(np.float32)
    vector /= np.linalg.norm(vector)
    return FaceRecord(
        face_id=f"{image_id}-{index}",
        image_id=image_id,
        face_index=index,
        bbox=(1.5 + index, 2.0, 50.0, 60.25),
        landmarks=((10.0, 11.0), (20.0, 11.0), (15.0, 20.0), (11.0, 30.0), (19.0, 30.0)),
        det_score=0.99,
        embedding=embedding_bytes(vector),
        model="dlib-resnet-v1@2",
        liveness=0.9,
        live=True,
        quality={"score": 0.8, "sharpness": 120.5, "reasons": ["small"]},
        crop_url=f"crops/{image_id}/{index}.jpg",
    )


def make_image(image_id: str, status: ImageStatus = ImageStatus.QUEUED) -> ImageRecord:
    return ImageRecord(
        image_id=image_id,
        source=f"gs://uploads/{image_id}.jpg#1",
        status=status,
        source_info={"bucket": "uploads", "object": f"{image_id}.jpg", "generation": "1"},
    )


class MetadataContract:
    """Behaviour every adapter must have; see the port's docstring."""

    def test_image_round_trip_and_upsert(self, store: MetadataStore) -> None:
        assert store.get_image("img1") is None
        first = store.put_image(make_image("img1"))
        assert first.created_at > 0 and first.updated_at >= first.created_at
        done = store.put_image(
            ImageRecord(
                image_id="img1",
                source=first.source,
                status=ImageStatus.DONE,
                face_count=2,
                width=640,
                height=480,
                format="jpeg",
                model="dlib-resnet-v1@2",
                timings_ms={"detect": 12.5},
                attempts=1,
            )
        )
        got = store.get_image("img1")
        assert got == done
        assert got.created_at == first.created_at  # kept across upserts
        assert got.status is ImageStatus.DONE and got.timings_ms == {"detect": 12.5}

    def test_failed_image_keeps_error(self, store: MetadataStore) -> None:
        store.put_image(
            ImageRecord(
                image_id="bad",
                source="gs://b/bad.jpg#1",
                status=ImageStatus.FAILED,
                error_code="invalid-image",
                error_message="truncated JPEG",
            )
        )
        got = store.get_image("bad")
        assert got is not None and got.error_code == "invalid-image"
        assert got.error_message == "truncated JPEG"

    def test_faces_round_trip(self, store: MetadataStore) -> None:
        faces = [make_face("img1", i) for i in range(3)]
        store.put_faces("img1", faces)
        got = store.get_face("img1-1")
        assert got is not None
        expected = faces[1]
        assert got.bbox == expected.bbox and got.landmarks == expected.landmarks
        assert got.embedding == expected.embedding and got.dims == 128
        assert np.allclose(got.vector(), np.frombuffer(expected.embedding, "<f4"))
        assert got.quality == expected.quality and got.model == expected.model
        assert got.liveness == pytest.approx(0.9) and got.live is True
        assert got.created_at > 0
        assert store.get_face("nope") is None
        batch = store.get_faces(["img1-0", "img1-2", "missing", "img1-0"])
        assert set(batch) == {"img1-0", "img1-2"}

    def test_put_faces_is_idempotent_and_replaces_the_set(self, store: MetadataStore) -> None:
        store.put_faces("img1", [make_face("img1", i) for i in range(3)])
        created = store.get_face("img1-0").created_at  # type: ignore[union-attr]
        for _ in range(3):  # redelivery rewrites the same records
            store.put_faces("img1", [make_face("img1", i) for i in range(2)])
        page = store.list_faces(image_id="img1")
        assert [f.face_id for f in page.items] == ["img1-0", "img1-1"]
        assert store.get_face("img1-0").created_at == created  # type: ignore[union-attr]
        assert store.counts().faces == 2

    def test_list_faces_pages_cover_everything_once(self, store: MetadataStore) -> None:
        for n in range(5):
            store.put_faces(f"img{n}", [make_face(f"img{n}", i) for i in range(3)])
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = store.list_faces(cursor=cursor, limit=4)
            seen += [f.face_id for f in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == sorted(f"img{n}-{i}" for n in range(5) for i in range(3))
        assert seen == sorted(seen)
        assert [f.face_id for f in iter_faces(store, page_size=2)] == seen

    def test_iter_faces_ranges_partition_the_faces(self, store: MetadataStore) -> None:
        """Job tasks split faces into (after, until] ranges: together every face, once."""
        for n in range(6):
            store.put_faces(f"img{n}", [make_face(f"img{n}", i) for i in range(2)])
        everything = [f.face_id for f in iter_faces(store, page_size=3)]
        bounds = [None, "img1-1", "img3-0", "img4", None]
        parts = [
            [f.face_id for f in iter_faces(store, page_size=2, after=lo, until=hi)]
            for lo, hi in itertools.pairwise(bounds)
        ]
        assert [face for part in parts for face in part] == everything
        assert parts[0][-1] == "img1-1" and parts[1][0] == "img2-0"
        assert parts[2] == ["img3-1"] and parts[3][0] == "img4-0"

    def test_existing_images_is_a_batched_membership_test(self, store: MetadataStore) -> None:
        """Backfill asks which of a batch's image ids are known, in one read."""
        for n in range(4):
            store.put_image(make_image(f"img{n}"))
        asked = [f"img{n}" for n in range(6)] + ["img1"]
        assert store.existing_images(asked) == {"img0", "img1", "img2", "img3"}
        assert store.existing_images([]) == set()
        many = [f"x{n}" for n in range(700)] + ["img3"]  # past SQLite's / Firestore's chunk
        assert store.existing_images(many) == {"img3"}

    def test_put_embeddings_keeps_everything_else(self, store: MetadataStore) -> None:
        """``reembed`` stores a second model's vector beside the face's own one."""
        store.put_faces("img1", [make_face("img1", i) for i in range(3)])
        before = store.get_face("img1-1")
        assert before is not None and before.embeddings == {}
        other = np.arange(256, dtype="<f4") / 256.0
        n = store.put_embeddings(
            "mobileface-v1@1",
            {"img1-1": other.tobytes(), "img1-2": other[::-1].copy().tobytes(), "gone-0": b""},
        )
        assert n == 2  # the missing face is skipped
        after = store.get_face("img1-1")
        assert after is not None
        assert after.embedding == before.embedding
        assert after.model == before.model and after.bbox == before.bbox
        own = after.vector_for(before.model)
        assert own is not None and np.array_equal(own, before.vector())
        alt = after.vector_for("mobileface-v1@1")
        assert alt is not None and np.array_equal(alt, other)
        assert after.vector_for("nobody@1") is None
        batch = store.get_faces(["img1-1", "img1-2"])
        assert set(batch["img1-2"].embeddings) == {"mobileface-v1@1"}
        listed = {f.face_id: f for f in store.list_faces(image_id="img1").items}
        assert listed["img1-1"].embeddings == after.embeddings
        # the face's own model: its own vector is replaced, no second copy appears
        own_model = (np.ones(128) / np.sqrt(128)).astype("<f4")
        assert store.put_embeddings(before.model, {"img1-0": own_model.tobytes()}) == 1
        replaced = store.get_face("img1-0")
        assert replaced is not None and replaced.embeddings == {}
        assert np.array_equal(replaced.vector(), own_model)
        # re-processing the image drops other models' vectors (they were of old detections)
        store.put_faces("img1", [make_face("img1", i, seed=9) for i in range(3)])
        redone = store.get_face("img1-1")
        assert redone is not None and redone.embeddings == {}

    def test_list_faces_by_image_in_face_order(self, store: MetadataStore) -> None:
        store.put_faces("img1", [make_face("img1", i) for i in (2, 0, 1)])
        store.put_faces("img2", [make_face("img2", 0)])
        page = store.list_faces(image_id="img1", limit=2)
        rest = store.list_faces(image_id="img1", cursor=page.next_cursor, limit=2)
        assert [f.face_index for f in page.items + rest.items] == [0, 1, 2]

    def test_bad_cursor_is_a_typed_error(self, store: MetadataStore) -> None:
        page_cursor = None
        store.put_faces("img1", [make_face("img1", i) for i in range(2)])
        page_cursor = store.list_faces(limit=1).next_cursor
        assert page_cursor is not None
        with pytest.raises(InvalidCursor):
            store.list_faces(cursor="garbage!!")
        with pytest.raises(InvalidCursor):
            store.list_images(cursor=page_cursor)  # a faces cursor is not an images cursor

    def test_delete_image_returns_its_faces(self, store: MetadataStore) -> None:
        store.put_image(make_image("img1", ImageStatus.DONE))
        store.put_faces("img1", [make_face("img1", i) for i in range(2)])
        store.put_faces("img2", [make_face("img2", 0)])
        assert sorted(store.delete_image("img1")) == ["img1-0", "img1-1"]
        assert store.get_image("img1") is None and store.get_face("img1-0") is None
        assert store.get_face("img2-0") is not None
        assert store.delete_image("img1") == []  # idempotent

    def test_counts_and_status_listing(self, store: MetadataStore) -> None:
        store.put_image(make_image("a", ImageStatus.DONE))
        store.put_image(make_image("b", ImageStatus.FAILED))
        store.put_image(make_image("c", ImageStatus.DONE))
        store.put_faces("a", [make_face("a", i) for i in range(2)])
        counts = store.counts()
        assert counts.images == 3 and counts.faces == 2
        assert counts.images_by_status["done"] == 2 and counts.images_by_status["failed"] == 1
        assert counts.images_by_status["queued"] == 0
        done = store.list_images(status=ImageStatus.DONE, limit=1)
        more = store.list_images(status=ImageStatus.DONE, cursor=done.next_cursor, limit=1)
        assert {i.image_id for i in done.items + more.items} == {"a", "c"}
        assert [i.image_id for i in store.list_images().items] == ["a", "b", "c"]

    def test_concurrent_put_faces_leave_one_consistent_set(self, store: MetadataStore) -> None:
        """Racing redeliveries: each one succeeds or asks for a retry; never a mixed set."""
        errors: list[BaseException] = []
        store.put_faces("img1", [make_face("img1", i) for i in range(6)])

        def work() -> None:
            try:
                store.put_faces("img1", [make_face("img1", i) for i in range(4)])
            except TransientError:
                pass  # contention: the platform would redeliver
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert [f.face_index for f in store.list_faces(image_id="img1").items] == [0, 1, 2, 3]


class TestSqliteMetadata(MetadataContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteMetadataStore]:
        store = SqliteMetadataStore(tmp_path / "meta.sqlite3")
        yield store
        store.close()


def test_sqlite_store_is_shared_between_connections(tmp_path: Path) -> None:
    """The CLI reads while an ingest writes from another connection (WAL)."""
    a = SqliteMetadataStore(tmp_path / "m.sqlite3")
    b = SqliteMetadataStore(tmp_path / "m.sqlite3")
    a.put_faces("img1", [make_face("img1", 0)])
    assert b.get_face("img1-0") is not None
    a.close()
    b.close()


@pytest.mark.integration
class TestFirestoreMetadata(MetadataContract):
    @pytest.fixture
    def store(
        self, firestore_emulator: emulators.Emulator, gcp_project: str
    ) -> Iterator[FirestoreMetadataStore]:
        store = FirestoreMetadataStore(
            importlib.import_module("google.cloud.firestore").Client(project=gcp_project)
        )
        yield store
        emulators.reset_firestore(firestore_emulator, gcp_project)
