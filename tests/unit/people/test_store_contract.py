"""The PeopleStore contract, written once for every adapter.

The ``store`` fixture is parametrised by adapter name; only the in-memory reference
exists today. A SQLite or Firestore adapter joins by adding its factory to
``FACTORIES`` (Firestore: in an integration module with the emulator fixture, as
``tests/integration/test_metadata_firestore.py`` does for the metadata store).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from facesearch.errors import ChangeSetInvalid, StaleRead
from facesearch.people.memory import MemoryPeopleStore
from facesearch.people.ports import (
    MAX_WRITES_PER_APPLY,
    ChangeSet,
    PeopleStore,
    correction_key,
    face_key,
    person_key,
    tombstone_key,
)
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

FACTORIES: dict[str, Callable[[], PeopleStore]] = {"memory": MemoryPeopleStore}


@pytest.fixture(params=sorted(FACTORIES))
def store(request: pytest.FixtureRequest) -> Iterator[PeopleStore]:
    yield FACTORIES[request.param]()


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
    per_thread, threads_n = 50, 6

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
