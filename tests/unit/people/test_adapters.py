"""The engine on the project's real components: the USearch index reader as the
neighbour search and the SQLite metadata store as the face source."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesearch.index.params import IndexParams
from facesearch.index.reader import IndexReader
from facesearch.index.writer import IndexWriter
from facesearch.people.adapters import IndexNeighbourSearch, MetadataFaceSource, face_input
from facesearch.people.engine import PeopleEngine
from facesearch.people.memory import MemoryPeopleStore
from facesearch.people.ports import FaceSource, NeighbourSearch
from facesearch.storage.local.blob import LocalBlobStore
from facesearch.storage.local.metadata import SqliteMetadataStore
from facesearch.storage.messages import FaceEvent
from facesearch.storage.metadata import FaceRecord, ImageRecord, embedding_bytes
from tests.unit.people.support import identity_faces

MODEL = "test-embedder@1"
PARAMS = IndexParams(dtype="f32", build_threads=1, auto_compact=False)


def record(face_id: str, image_id: str, vector: np.ndarray, quality: float) -> FaceRecord:
    return FaceRecord(
        face_id=face_id,
        image_id=image_id,
        face_index=0,
        bbox=(0.0, 0.0, 10.0, 10.0),
        landmarks=((1.0, 1.0),) * 5,
        det_score=0.99,
        embedding=embedding_bytes(vector),
        model=MODEL,
        quality={"score": quality, "reasons": []},
    )


def test_engine_on_index_reader_and_sqlite_metadata(tmp_path: Path) -> None:
    faces, labels = identity_faces(3, 4, seed=50)
    metadata = SqliteMetadataStore(tmp_path / "metadata.sqlite3")
    blobs = LocalBlobStore(tmp_path / "index")
    writer = IndexWriter(blobs, cache_dir=tmp_path / "writer-cache", params=PARAMS)
    reader = IndexReader(blobs, cache_dir=tmp_path / "reader-cache", params=PARAMS)
    search = IndexNeighbourSearch(reader)
    source = MetadataFaceSource(metadata)
    assert isinstance(search, NeighbourSearch) and isinstance(source, FaceSource)
    engine = PeopleEngine(MemoryPeopleStore(), search, source)
    for face in faces:
        metadata.put_image(ImageRecord(face.image_id, f"test://{face.image_id}"))
        metadata.put_faces(
            face.image_id, [record(face.face_id, face.image_id, face.embedding, face.quality)]
        )
        added = writer.add([face.face_id], face.embedding[None, :], MODEL)
        # the event names the manifest that holds the face: the reader refreshes itself
        engine.handle_event(FaceEvent("face_added", [face.face_id], MODEL, added.manifest_version))
    persons: dict[int, set[str | None]] = {}
    for face in faces:
        stored = engine.store.get_faces([face.face_id])[face.face_id]
        persons.setdefault(labels[face.face_id], set()).add(stored.person_id)
    assert all(len(p) == 1 and None not in p for p in persons.values())
    assert len({next(iter(p)) for p in persons.values()}) == 3
    # a removal through the index and the event
    gone = faces[0]
    metadata.delete_image(gone.image_id)
    deleted = writer.delete([gone.face_id])
    engine.handle_event(FaceEvent("face_removed", [gone.face_id], None, deleted.manifest_version))
    assert engine.store.get_faces([gone.face_id]) == {}


def test_face_input_from_a_record() -> None:
    vector = np.arange(1, 9, dtype=np.float32)
    r = record("f", "i", vector, 0.7)
    fi = face_input(r)
    assert fi.quality == 0.7 and np.isclose(np.linalg.norm(fi.embedding), 1.0)
    assert face_input(record("g", "i", vector, 3.0)).quality == 1.0
    bare = FaceRecord(**{**r.__dict__, "quality": {}})
    assert face_input(bare).quality == 1.0
