"""The PeopleStore contract, written once and run on every adapter.

The in-memory reference (:mod:`facesearch.people.memory`), SQLite (embedded) and
Firestore (on its emulator, marked ``integration``): versioned all-or-nothing applies,
secondary lookups, stable paging, racing writers; then what only the real stores do —
collection scoping, writes refused once a collection is erasing, purge to zero — and
the absorption of manual persons and labels from before clustering (the schema-2
SQLite migration, and the old Firestore documents).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch.errors import ChangeSetInvalid, CollectionClosed, StaleRead
from facesearch.people.legacy import absorb_documents
from facesearch.people.memory import MemoryPeopleStore
from facesearch.people.ports import (
    MAX_WRITES_PER_APPLY,
    ChangeSet,
    PeopleCounts,
    PeopleStore,
    correction_key,
    face_key,
    person_key,
    tombstone_key,
)
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import (
    ClusterFace,
    Correction,
    CorrectionKind,
    Exemplar,
    FaceChange,
    Person,
    Source,
    Tombstone,
    correction_from_dict,
    correction_to_dict,
    face_from_dict,
    face_to_dict,
    frozen_vector,
    person_from_dict,
    person_to_dict,
    tombstone_from_dict,
    tombstone_to_dict,
    unit,
)
from facesearch.storage.catalog import Catalog, CollectionRecord, CollectionStatus
from facesearch.storage.gcp.people import FirestorePeopleStore
from facesearch.storage.local.catalog import SqliteCatalog
from facesearch.storage.metadata import DEFAULT_COLLECTION, FaceRecord, ImageRecord, embedding_bytes
from tests.support.catalogs import FIRESTORE, open_catalog


@pytest.fixture(params=["memory", "sqlite", FIRESTORE])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PeopleStore]:
    """Every adapter, on the default collection."""
    if request.param == "memory":
        yield MemoryPeopleStore()
        return
    with open_catalog(request.param, request, tmp_path) as catalog:
        yield catalog.people(DEFAULT_COLLECTION)


def face(
    face_id: str, image_id: str | None = None, person_id: str | None = None, **kw: object
) -> ClusterFace:
    rng = np.random.default_rng(abs(hash(face_id)) % 2**32)
    return ClusterFace(
        face_id=face_id,
        image_id=image_id or f"img-{face_id}",
        embedding=unit(rng.normal(size=8)),
        person_id=person_id,
        **kw,  # type: ignore[arg-type]
    )


def put(store: PeopleStore, *faces: ClusterFace, persons: tuple[Person, ...] = ()) -> None:
    expect = {face_key(f.face_id): 0 for f in faces}
    expect.update({person_key(p.person_id): 0 for p in persons})
    store.apply(ChangeSet(expect=expect, put_faces=faces, put_persons=persons))


def test_create_read_and_version(store: PeopleStore) -> None:
    put(store, face("a"), persons=(Person("p1", name="Ann"),))
    got = store.get_faces(["a", "missing"])
    assert set(got) == {"a"} and got["a"].version == 1
    assert store.get_persons(["p1"])["p1"].version == 1
    assert store.get_persons(["nope"]) == {}
    assert store.get_tombstones(["a"]) == {}
    assert store.get_corrections(["c"]) == {}


def test_each_write_adds_one_to_the_version_whatever_the_record_says(store: PeopleStore) -> None:
    put(store, face("a"))
    stale_copy = store.get_faces(["a"])["a"]
    store.apply(ChangeSet(expect={face_key("a"): 1}, put_faces=(stale_copy,)))
    assert store.get_faces(["a"])["a"].version == 2
    store.apply(ChangeSet(expect={face_key("a"): 2}, put_faces=(face("a", person_id=None),)))
    assert store.get_faces(["a"])["a"].version == 3


def test_create_of_an_existing_record_is_stale(store: PeopleStore) -> None:
    put(store, face("a"))
    with pytest.raises(StaleRead):
        put(store, face("a"))


def test_a_failed_expectation_writes_nothing(store: PeopleStore) -> None:
    put(store, face("a"))
    changes = ChangeSet(
        expect={face_key("a"): 7, face_key("b"): 0, person_key("p"): 0},
        put_faces=(face("b"),),
        put_persons=(Person("p"),),
    )
    with pytest.raises(StaleRead):
        store.apply(changes)
    assert store.get_faces(["b"]) == {} and store.get_persons(["p"]) == {}


def test_read_only_expectations_are_checked_too(store: PeopleStore) -> None:
    put(store, face("a"), face("b"))
    store.apply(ChangeSet(expect={face_key("a"): 1}, put_faces=(face("a", person_id=None),)))
    # a decision that read "a" at version 1 and writes only "b" must fail
    with pytest.raises(StaleRead):
        store.apply(ChangeSet(expect={face_key("a"): 1, face_key("b"): 1}, put_faces=(face("b"),)))
    # "absent" is a version too: a decision that saw "z" missing fails once it exists
    put(store, face("z"))
    with pytest.raises(StaleRead):
        store.apply(ChangeSet(expect={face_key("z"): 0, face_key("b"): 1}, put_faces=(face("b"),)))


def test_blind_and_duplicate_writes_and_oversized_sets_are_refused(store: PeopleStore) -> None:
    with pytest.raises(ChangeSetInvalid):
        store.apply(ChangeSet(expect={}, put_faces=(face("a"),)))
    with pytest.raises(ChangeSetInvalid):
        store.apply(ChangeSet(expect={face_key("a"): 0}, put_faces=(face("a"), face("a"))))
    many = tuple(face(f"f{i}") for i in range(MAX_WRITES_PER_APPLY + 1))
    with pytest.raises(ChangeSetInvalid):
        store.apply(ChangeSet(expect={face_key(f.face_id): 0 for f in many}, put_faces=many))
    assert store.get_faces(["a", "f0"]) == {}


def test_delete_then_recreate(store: PeopleStore) -> None:
    put(store, face("a", "img1", person_id="p"), persons=(Person("p", faces=1),))
    store.apply(
        ChangeSet(
            expect={face_key("a"): 1, person_key("p"): 1, tombstone_key("a"): 0},
            delete_faces=("a",),
            delete_persons=("p",),
            put_tombstones=(Tombstone("a", 5, 1.0),),
        )
    )
    assert store.get_faces(["a"]) == {} and store.get_persons(["p"]) == {}
    assert store.get_tombstones(["a"])["a"].removed_version == 5
    assert store.faces_of_images(["img1"]) == []
    assert store.faces_of_person("p").items == []
    put(store, face("a"))
    assert store.get_faces(["a"])["a"].version == 1


def test_secondary_lookups_follow_writes(store: PeopleStore) -> None:
    put(
        store,
        face("a", "img1", "p"),
        face("b", "img1"),
        face("c", "img2", "p"),
        persons=(Person("p"),),
    )
    assert [f.face_id for f in store.faces_of_images(["img1"])] == ["a", "b"]
    assert [f.face_id for f in store.faces_of_images(["img1", "img2", "none"])] == ["a", "b", "c"]
    assert [f.face_id for f in store.faces_of_person("p").items] == ["a", "c"]
    store.apply(ChangeSet(expect={face_key("a"): 1}, put_faces=(face("a", "img1", "q"),)))
    assert [f.face_id for f in store.faces_of_person("p").items] == ["c"]
    assert [f.face_id for f in store.faces_of_person("q").items] == ["a"]
    assert [f.face_id for f in store.list_faces(unassigned_only=True).items] == ["b"]


def test_paging_is_stable_under_writes(store: PeopleStore) -> None:
    put(store, *(face(f"f{i:03d}", person_id="p") for i in range(25)), persons=(Person("p"),))
    seen: list[str] = []
    page = store.list_faces(limit=10)
    seen += [f.face_id for f in page.items]
    put(store, face("f000a"), face("zzz"))  # one before the cursor, one after
    while page.next_cursor is not None:
        page = store.list_faces(cursor=page.next_cursor, limit=10)
        seen += [f.face_id for f in page.items]
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert "zzz" in seen and "f000a" not in seen
    person_pages: list[str] = []
    cursor = None
    while True:
        p = store.faces_of_person("p", cursor=cursor, limit=7)
        person_pages += [f.face_id for f in p.items]
        if p.next_cursor is None:
            break
        cursor = p.next_cursor
    assert person_pages == [f"f{i:03d}" for i in range(25)]


def test_persons_listing_roots_and_aliases(store: PeopleStore) -> None:
    put(
        store,
        persons=(
            Person("a", aliases=("b",)),
            Person("b", merged_into="a"),
            Person("c"),
        ),
    )
    assert [p.person_id for p in store.list_persons().items] == ["a", "c"]
    assert [p.person_id for p in store.list_persons(roots_only=False).items] == ["a", "b", "c"]
    page = store.list_persons(roots_only=False, limit=2)
    assert page.next_cursor is not None
    rest = store.list_persons(roots_only=False, cursor=page.next_cursor, limit=2)
    assert [p.person_id for p in rest.items] == ["c"] and rest.next_cursor is None


def test_correction_log_newest_first(store: PeopleStore) -> None:
    entries = tuple(
        Correction(f"{i:020d}-x", CorrectionKind.NAME, Source.USER, float(i), person_id="p")
        for i in range(5)
    )
    store.apply(
        ChangeSet(
            expect={correction_key(e.correction_id): 0 for e in entries}, put_corrections=entries
        )
    )
    newest = store.list_corrections(limit=2)
    assert [e.correction_id for e in newest] == [entries[4].correction_id, entries[3].correction_id]
    older = store.list_corrections(before=newest[-1].correction_id, limit=10)
    assert [e.correction_id for e in older] == [e.correction_id for e in entries[2::-1]]


def test_racing_creators_exactly_one_wins(store: PeopleStore) -> None:
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def create(n: int) -> None:
        barrier.wait()
        try:
            store.apply(
                ChangeSet(
                    expect={person_key("p"): 0},
                    put_persons=(Person("p", name=f"writer {n}"),),
                )
            )
            wins.append(n)
        except StaleRead:
            pass

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.get_persons(["p"])["p"].name == f"writer {wins[0]}"


def test_read_modify_write_with_retry_loses_no_update(store: PeopleStore) -> None:
    put(store, persons=(Person("p"),))
    # the emulator serialises contended transactions with locks and client back-off (up to
    # seconds per abort): fewer rounds there, the same property
    emulated = isinstance(store, FirestorePeopleStore)
    per_thread, threads_n = (6, 3) if emulated else (50, 6)

    def bump() -> None:
        for _ in range(per_thread):
            while True:
                current = store.get_persons(["p"])["p"]
                try:
                    store.apply(
                        ChangeSet(
                            expect={person_key("p"): current.version},
                            put_persons=(Person("p", faces=current.faces + 1),),
                        )
                    )
                    break
                except StaleRead:
                    continue

    threads = [threading.Thread(target=bump) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get_persons(["p"])["p"]
    assert final.faces == per_thread * threads_n
    assert final.version == 1 + per_thread * threads_n


def test_records_round_trip_through_dicts() -> None:
    f = ClusterFace(
        "f",
        "i",
        unit([1.0, 2.0, 3.0]),
        0.5,
        12.5,
        "p",
        Source.USER,
        True,
        3,
        frozenset({"q", "r"}),
        9,
        4,
    )
    g = face_from_dict(face_to_dict(f))
    assert g == f and np.array_equal(g.embedding, f.embedding)
    p = Person(
        "p",
        "Ann",
        {"team": "blue", "n": [1, 2]},
        3,
        1,
        2.5,
        frozen_vector([0.1, 0.2, 0.3], np.float64),
        (Exemplar("f", 0.9, 1.0),),
        1.0,
        2.0,
        None,
        ("b",),
        frozenset({"z"}),
        Source.USER,
        1.0,
        2.0,
        7,
    )
    q = person_from_dict(person_to_dict(p))
    assert q == p and np.array_equal(q.vector_sum, p.vector_sum)
    t = Tombstone("f", 3, 1.5, 2)
    assert tombstone_from_dict(tombstone_to_dict(t)) == t
    c = Correction(
        "1-a",
        CorrectionKind.MERGE,
        Source.MACHINE,
        1.0,
        "p",
        (FaceChange("f", "a", Source.MACHINE, "b", Source.USER, "a"),),
        ("x",),
        (("x", ("y",)),),
        None,
        "N",
        "q",
        (("a", "b"),),
        None,
        "2-b",
        "note",
        3,
    )
    assert correction_from_dict(correction_to_dict(c)) == c


# --- what only the real stores do: collections, erase, legacy persons -------------------------


def test_people_stores_are_scoped_by_collection(catalog: Catalog) -> None:
    for cid in ("a", "b"):
        catalog.create_collection(CollectionRecord(cid))
    a, b = catalog.people("a"), catalog.people("b")
    put(a, face("f", "img", person_id="p"), persons=(Person("p", name="Ann"),))
    put(b, face("f", "img"), persons=(Person("p", name="Bob"),))  # same ids: no conflict
    assert a.get_persons(["p"])["p"].name == "Ann" and b.get_persons(["p"])["p"].name == "Bob"
    assert a.get_faces(["f"])["f"].person_id == "p" and b.get_faces(["f"])["f"].person_id is None
    assert [f.face_id for f in b.faces_of_person("p").items] == []
    assert catalog.people(DEFAULT_COLLECTION).counts().records == 0
    assert (a.counts().faces, a.counts().persons, b.counts().persons) == (1, 1, 1)


def test_an_erasing_collection_takes_no_people_writes_and_purges_to_zero(
    catalog: Catalog,
) -> None:
    catalog.create_collection(CollectionRecord("doomed"))
    people = catalog.people("doomed")
    faces = tuple(face(f"f{i}", person_id="p") for i in range(7))
    put(people, *faces, persons=(Person("p", aliases=("q",)), Person("q", merged_into="p")))
    entry = Correction("1-x", CorrectionKind.NAME, Source.USER, 1.0, person_id="p")
    people.apply(ChangeSet(expect={correction_key("1-x"): 0}, put_corrections=(entry,)))
    assert people.counts() == PeopleCounts(faces=7, persons=1, aliases=1, corrections=1)
    catalog.update_collection("doomed", status=CollectionStatus.ERASING)
    with pytest.raises(CollectionClosed):
        put(people, face("late"))
    steps = []
    while True:
        purged = people.purge(limit=4)
        steps.append(purged.removed)
        if purged.done:
            break
    assert sum(steps) == 10 and max(steps) <= 4
    assert people.counts().records == 0 and people.purge().removed == 0


def _legacy_face(face_id: str, image_id: str, seed: int) -> FaceRecord:
    vector = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return FaceRecord(
        face_id=face_id,
        image_id=image_id,
        face_index=0,
        bbox=(0.0, 0.0, 10.0, 10.0),
        landmarks=((1.0, 1.0),) * 5,
        det_score=0.99,
        embedding=embedding_bytes(vector / np.linalg.norm(vector)),
        model="m@1",
        quality={"score": 0.8},
        created_at=100.0 + seed,
    )


def _assert_absorbed(people: PeopleStore) -> None:
    """p1 (two labels) and p2 (none) are user persons with their names and metadata; the
    labelled faces are user-assigned; the unlabelled face is not in the people store."""
    persons = people.get_persons(["p1", "p2"])
    ann, bo = persons["p1"], persons["p2"]
    assert (ann.name, dict(ann.metadata), ann.created_by) == ("Ann", {"team": "blue"}, Source.USER)
    assert (ann.faces, ann.user_faces, ann.first_seen, ann.last_seen) == (2, 2, 101.0, 102.0)
    assert np.isclose(ann.weight, 1.6) and len(ann.exemplars) == 2
    assert (bo.name, bo.faces, bo.created_by) == ("Bo", 0, Source.USER)
    faces = people.get_faces(["f1", "f2", "f3"])
    assert set(faces) == {"f1", "f2"}
    assert all(f.person_id == "p1" and f.source is Source.USER for f in faces.values())
    assert [p.person_id for p in people.list_persons().items] == ["p1", "p2"]


def test_sqlite_schema_2_manual_persons_and_labels_are_absorbed(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_2)
    for n, label in ((1, "p1"), (2, "p1"), (3, None)):
        record = _legacy_face(f"f{n}", f"img{n}", n)
        data = {
            "face_id": record.face_id,
            "image_id": record.image_id,
            "face_index": 0,
            "bbox": list(record.bbox),
            "landmarks": [1.0] * 10,
            "det_score": 0.99,
            "model": "m@1",
            "quality": {"score": 0.8},
            "person_id": label,
            "created_at": record.created_at,
            "collection_id": "default",
        }
        old.execute(
            "INSERT INTO faces VALUES ('default', ?, ?, 0, ?, ?, ?, ?)",
            (
                record.face_id,
                record.image_id,
                label,
                record.created_at,
                record.embedding,
                json.dumps(data),
            ),
        )
    for pid, name, meta in (("p1", "Ann", {"team": "blue"}), ("p2", "Bo", {})):
        doc = {"person_id": pid, "name": name, "metadata": meta, "created_at": 5.0}
        old.execute("INSERT INTO persons VALUES ('default', ?, ?)", (pid, json.dumps(doc)))
    old.execute("PRAGMA user_version = 2")
    old.commit()
    old.close()
    catalog = SqliteCatalog(path)
    _assert_absorbed(catalog.people(DEFAULT_COLLECTION))
    tables = {r[0] for r in catalog.db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not tables & {"legacy_persons", "legacy_labels"}
    assert catalog.store(DEFAULT_COLLECTION).get_face("f1") is not None
    again = SqliteCatalog(path)  # reopening absorbs nothing twice
    assert again.people(DEFAULT_COLLECTION).counts() == PeopleCounts(faces=2, persons=2)


@pytest.mark.integration
def test_firestore_manual_person_documents_and_labels_are_absorbed(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with open_catalog("firestore", request, tmp_path) as catalog:
        client = catalog.client  # type: ignore[attr-defined]
        metadata = catalog.store(DEFAULT_COLLECTION)
        for n, label in ((1, "p1"), (2, "p1"), (3, None)):
            record = _legacy_face(f"f{n}", f"img{n}", n)
            metadata.put_image(ImageRecord(record.image_id, f"gs://b/{n}.jpg"))
            metadata.put_faces(record.image_id, [record])
            if label:  # the label field as the old store wrote it
                client.collection("faces").document(record.face_id).update({"person_id": label})
        for pid, name, meta in (("p1", "Ann", {"team": "blue"}), ("p2", "Bo", {})):
            client.collection("persons").document(pid).set(
                {
                    "person_id": pid,
                    "name": name,
                    "metadata": meta,
                    "created_at": 5.0,
                    "updated_at": 5.0,
                    "collection_id": "default",
                }
            )
        people = catalog.people(DEFAULT_COLLECTION)
        report = absorb_documents(people, metadata, PeopleSettings())
        assert (report.persons, report.faces, report.moved) == (2, 2, 0)
        _assert_absorbed(people)
        assert "person_id" not in client.collection("faces").document("f1").get().to_dict()
        again = absorb_documents(people, metadata, PeopleSettings())
        assert (again.persons, again.faces) == (0, 0)


SCHEMA_2 = """
CREATE TABLE collections (
    collection_id TEXT PRIMARY KEY, status TEXT NOT NULL, data TEXT NOT NULL
);
CREATE TABLE images (
    collection_id TEXT NOT NULL, image_id TEXT NOT NULL, status TEXT NOT NULL,
    updated_at REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (collection_id, image_id)
);
CREATE INDEX images_status ON images (collection_id, status, updated_at DESC, image_id DESC);
CREATE TABLE faces (
    collection_id TEXT NOT NULL, face_id TEXT NOT NULL, image_id TEXT NOT NULL,
    face_index INTEGER NOT NULL, person_id TEXT, created_at REAL NOT NULL,
    embedding BLOB NOT NULL, data TEXT NOT NULL, PRIMARY KEY (collection_id, face_id)
);
CREATE INDEX faces_image ON faces (collection_id, image_id, face_index, face_id);
CREATE INDEX faces_person ON faces (collection_id, person_id, created_at DESC, face_id DESC);
CREATE TABLE persons (
    collection_id TEXT NOT NULL, person_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (collection_id, person_id)
);
"""
