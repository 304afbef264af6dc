"""The collection catalog's contract on both adapters, and isolation as a property.

Scoped stores (metadata and people) must never show or touch another collection's
records, whatever the interleaving of writes, reads, forgets and person edits; an
erasing collection takes no writes; purge leaves nothing. SQLite here, Firestore on
its emulator (``integration``).
"""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facesearch.errors import CollectionClosed, Conflict, NotFound
from facesearch.people.adapters import face_input
from facesearch.people.corrections import Corrections
from facesearch.people.ports import ChangeSet, face_key, person_key
from facesearch.people.types import ClusterFace, Person, Source
from facesearch.storage.catalog import Catalog, CollectionRecord, CollectionStatus
from facesearch.storage.gcp.catalog import FirestoreCatalog
from facesearch.storage.local.catalog import SqliteCatalog
from facesearch.storage.local.metadata import SqliteMetadataStore
from facesearch.storage.metadata import (
    DEFAULT_COLLECTION,
    FaceRecord,
    ImageRecord,
    ImageStatus,
    embedding_bytes,
)
from tests.support import emulators


def _face(image_id: str, index: int, seed: int) -> FaceRecord:
    vector = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return FaceRecord(
        face_id=f"{image_id}-{index}",
        image_id=image_id,
        face_index=index,
        bbox=(0.0, 0.0, 10.0, 10.0),
        landmarks=((1.0, 1.0),) * 5,
        det_score=0.99,
        embedding=embedding_bytes(vector / np.linalg.norm(vector)),
        model="m@1",
    )


def test_collections_are_created_once_and_listed(catalog: Catalog) -> None:
    assert catalog.get_collection("event-1") is None
    assert catalog.get_collection(DEFAULT_COLLECTION) is not None  # implicit, active
    made = catalog.create_collection(CollectionRecord("event-1", "Wedding", {"retention_days": 30}))
    assert made.status is CollectionStatus.ACTIVE and made.created_at > 0
    with pytest.raises(Conflict):
        catalog.create_collection(CollectionRecord("event-1"))
    catalog.create_collection(CollectionRecord("agency-b"))
    listed = [c.collection_id for c in catalog.list_collections().items]
    assert listed == ["agency-b", "event-1"]
    page = catalog.list_collections(limit=1)
    assert [c.collection_id for c in page.items] == ["agency-b"] and page.next_cursor
    rest = catalog.list_collections(cursor=page.next_cursor, limit=5)
    assert [c.collection_id for c in rest.items] == ["event-1"]
    renamed = catalog.update_collection("event-1", name="Wedding 2026")
    assert renamed.name == "Wedding 2026" and renamed.settings == {"retention_days": 30}
    with pytest.raises(NotFound):
        catalog.update_collection("nope", name="x")
    with pytest.raises(ValueError):
        catalog.create_collection(CollectionRecord("Bad_Id"))


def test_the_same_ids_in_two_collections_are_two_records(catalog: Catalog) -> None:
    for cid in ("a", "b"):
        catalog.create_collection(CollectionRecord(cid))
    a, b = catalog.store("a"), catalog.store("b")
    a.put_image(ImageRecord("img", "gs://x/a.jpg", ImageStatus.DONE, face_count=1))
    a.put_faces("img", [_face("img", 0, 1)])
    _new_person(catalog, "a", "p1", "Ann")
    _new_person(catalog, "b", "p1", "Bob")  # same id, other collection: no conflict
    names = [catalog.people(c).get_persons(["p1"])["p1"].name for c in ("a", "b")]
    assert names == ["Ann", "Bob"]
    assert b.get_image("img") is None and b.get_face("img-0") is None
    assert b.get_faces(["img-0"]) == {} and b.list_faces().items == []
    assert a.get_image("img").collection_id == "a"  # type: ignore[union-attr]
    assert (a.counts().faces, b.counts().faces) == (1, 0)
    with pytest.raises(NotFound):
        _label(catalog, "b", "img-0", "p1")  # b cannot label a's face
    assert b.delete_image("img") == [] and a.get_face("img-0") is not None


def test_an_erasing_collection_takes_no_writes_and_purges_to_nothing(catalog: Catalog) -> None:
    catalog.create_collection(CollectionRecord("gone"))
    store = catalog.store("gone")
    for n in range(3):
        store.put_image(ImageRecord(f"i{n}", "s", ImageStatus.DONE))
        store.put_faces(f"i{n}", [_face(f"i{n}", k, n * 10 + k) for k in range(2)])
    _new_person(catalog, "gone", "p", "P")
    catalog.update_collection("gone", status=CollectionStatus.ERASING)
    with pytest.raises(CollectionClosed):
        store.put_image(ImageRecord("late", "s"))
    with pytest.raises(CollectionClosed):
        store.put_faces("i0", [_face("i0", 0, 0)])
    with pytest.raises(CollectionClosed):
        _new_person(catalog, "gone", "q", "Q")
    assert store.get_image("i0") is not None  # reads still answer while erasing
    steps = 0
    while not store.purge(limit=2).done:
        steps += 1
        assert steps < 20
    counts = store.counts()
    assert (counts.images, counts.faces) == (0, 0)
    assert catalog.people("gone").purge().done  # (the erase job purges both stores)
    done = catalog.update_collection("gone", status=CollectionStatus.ERASED, erase_report={"x": 1})
    assert done.status is CollectionStatus.ERASED and done.erase_report == {"x": 1}
    with pytest.raises(CollectionClosed):
        catalog.update_collection("gone", status=CollectionStatus.ACTIVE)  # never undone
    with pytest.raises(Conflict):
        catalog.create_collection(CollectionRecord("gone"))  # an erased id is never reused


def test_writes_into_an_unknown_collection_are_refused(catalog: Catalog) -> None:
    with pytest.raises(NotFound):
        catalog.store("never-made").put_image(ImageRecord("i", "s"))


# --- isolation as a property ----------------------------------------------------------------

COLLECTIONS = ("c1", "c2", "c3")
FIXTURES_OK = [HealthCheck.function_scoped_fixture]  # each example makes its own catalog
ops = st.lists(
    st.tuples(
        st.sampled_from(["ingest", "forget", "person", "label", "unlabel"]),
        st.sampled_from(COLLECTIONS),
        st.integers(0, 3),  # image / person number
    ),
    min_size=1,
    max_size=25,
)


def _new_person(catalog: Catalog, cid: str, person_id: str, name: str) -> None:
    """A user-created person (what ``POST /v1/persons`` writes)."""
    person = Person(person_id, name=name, created_by=Source.USER)
    catalog.people(cid).apply(ChangeSet(expect={person_key(person_id): 0}, put_persons=(person,)))


def _label(catalog: Catalog, cid: str, face_id: str, person_id: str | None) -> None:
    """Put a face in a person (a move), or say it is not its person (a rejection)."""
    people = catalog.people(cid)
    if not people.get_faces([face_id]):
        record = catalog.store(cid).get_face(face_id)
        if record is None:
            raise NotFound(f"face {face_id} does not exist")
        clustered = ClusterFace.from_input(face_input(record))
        people.apply(ChangeSet(expect={face_key(face_id): 0}, put_faces=(clustered,)))
    if person_id is None:
        if people.get_faces([face_id])[face_id].person_id is not None:
            Corrections(people).reject(face_id)
    else:
        Corrections(people).move([face_id], to_person=person_id)


def _check_isolation(catalog: Catalog, model: dict[str, dict[str, Any]]) -> None:
    for cid in COLLECTIONS:
        store = catalog.store(cid)
        people = catalog.people(cid)
        faces = {f.face_id for f in store.list_faces(limit=1000).items}
        images = {i.image_id for i in store.list_images(limit=1000).items}
        persons = {p.person_id for p in people.list_persons(limit=1000).items}
        labelled = {f.face_id: f.person_id for f in people.list_faces(limit=1000).items}
        assert faces == model[cid]["faces"]
        assert images == model[cid]["images"]
        assert persons == model[cid]["persons"]
        assert labelled == model[cid]["labels"]
        assert all(f.collection_id == cid for f in store.list_faces(limit=1000).items)
        for other in COLLECTIONS:
            if other != cid:  # ids of other collections resolve to nothing here
                foreign = model[other]["faces"] - model[cid]["faces"]
                assert not store.get_faces(sorted(foreign))
                assert not people.get_faces(sorted(set(model[other]["labels"]) - set(labelled)))


def _run(catalog: Catalog, steps: list[tuple[str, str, int]]) -> None:
    for cid in COLLECTIONS:
        catalog.create_collection(CollectionRecord(cid))
    model: dict[str, dict[str, Any]] = {
        c: {"faces": set(), "images": set(), "persons": set(), "labels": {}} for c in COLLECTIONS
    }
    for op, cid, n in steps:
        store, state = catalog.store(cid), model[cid]
        image_id = f"{cid}-img{n}"  # ids are per collection, like real image ids
        if op == "ingest":
            store.put_image(ImageRecord(image_id, "s", ImageStatus.DONE, face_count=2))
            store.put_faces(image_id, [_face(image_id, k, n) for k in range(2)])
            state["images"].add(image_id)
            state["faces"] |= {f"{image_id}-0", f"{image_id}-1"}
        elif op == "forget":
            store.delete_image(image_id)
            state["images"].discard(image_id)
            state["faces"] -= {f"{image_id}-0", f"{image_id}-1"}
        elif op == "person" and f"p{n}" not in state["persons"]:
            _new_person(catalog, cid, f"p{n}", f"P{n}")
            state["persons"].add(f"p{n}")
        elif op in ("label", "unlabel") and f"{image_id}-0" in state["faces"]:
            person = f"p{n}" if op == "label" and f"p{n}" in state["persons"] else None
            _label(catalog, cid, f"{image_id}-0", person)
            state["labels"][f"{image_id}-0"] = person
        _check_isolation(catalog, model)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
def test_isolation_holds_for_any_interleaving_sqlite(
    tmp_path: Path, steps: list[tuple[str, str, int]]
) -> None:
    db = tmp_path / f"iso-{abs(hash(tuple(steps)))}.sqlite3"
    db.unlink(missing_ok=True)
    _run(SqliteCatalog(db), steps)


@pytest.mark.integration
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
def test_isolation_holds_for_any_interleaving_firestore(
    firestore_emulator: emulators.Emulator, steps: list[tuple[str, str, int]]
) -> None:
    import uuid

    project = f"fs-iso-{uuid.uuid4().hex[:10]}"
    client = importlib.import_module("google.cloud.firestore").Client(project=project)
    _run(FirestoreCatalog(client), steps)
    emulators.reset_firestore(firestore_emulator, project)


# --- the migration of files from before collections -----------------------------------------


def test_a_schema_1_file_opens_with_its_data_in_the_default_collection(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE images (image_id TEXT PRIMARY KEY, status TEXT NOT NULL,
            updated_at REAL NOT NULL, data TEXT NOT NULL);
        CREATE INDEX images_status ON images (status, updated_at DESC, image_id DESC);
        CREATE TABLE faces (face_id TEXT PRIMARY KEY, image_id TEXT NOT NULL,
            face_index INTEGER NOT NULL, person_id TEXT, created_at REAL NOT NULL,
            embedding BLOB NOT NULL, data TEXT NOT NULL);
        CREATE INDEX faces_image ON faces (image_id, face_index, face_id);
        CREATE INDEX faces_person ON faces (person_id, created_at DESC, face_id DESC);
        CREATE TABLE persons (person_id TEXT PRIMARY KEY, data TEXT NOT NULL);
        """
    )
    image = '{"image_id": "i1", "source": "s", "status": "done", "face_count": 1, "created_at": 5}'
    face = (
        '{"face_id": "i1-0", "image_id": "i1", "face_index": 0, "bbox": [0, 0, 1, 1],'
        ' "landmarks": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "det_score": 0.9, "model": "m@1",'
        ' "embedding_dims": 2, "created_at": 5}'
    )
    old.execute("INSERT INTO images VALUES ('i1', 'done', 5, ?)", (image,))
    old.execute(
        "INSERT INTO faces VALUES ('i1-0', 'i1', 0, 'p1', 5, ?, ?)",
        (embedding_bytes([0.6, 0.8]), face),
    )
    old.execute("INSERT INTO persons VALUES ('p1', ?)", ('{"person_id": "p1", "name": "Ann"}',))
    old.commit()
    old.close()
    store = SqliteMetadataStore(path)  # migrates on open (1 -> 2 -> 3)
    record = store.get_face("i1-0")
    assert record is not None and record.collection_id == "default"
    assert store.get_image("i1").status is ImageStatus.DONE  # type: ignore[union-attr]
    people = SqliteCatalog(path).people("default")  # the manual person and label, absorbed
    assert people.get_persons(["p1"])["p1"].name == "Ann"
    assert people.get_faces(["i1-0"])["i1-0"].person_id == "p1"
    SqliteMetadataStore(path).put_image(ImageRecord("i2", "s"))  # a second open is a no-op
    assert {i.image_id for i in store.list_images().items} == {"i1", "i2"}
    other = SqliteCatalog(path)
    other.create_collection(CollectionRecord("new"))
    assert other.store("new").get_face("i1-0") is None
