"""The whole-listing helpers of the people port: every record once, in order, whatever
the page size (the re-cluster, repairs, the cannot-link check and forgetting a person
read through them). The page walker under them is tested in tests/unit/storage."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from facesearch.people.memory import MemoryPeopleStore
from facesearch.people.ports import (
    ChangeSet,
    correction_key,
    every_correction,
    every_face,
    every_person,
    face_key,
    faces_of,
    person_key,
)
from facesearch.people.types import ClusterFace, Correction, CorrectionKind, Person, Source, unit


def _store(faces: int, persons: int, corrections: int) -> MemoryPeopleStore:
    store = MemoryPeopleStore()
    people = [Person(f"p{i:03d}") for i in range(persons)]
    records = [
        ClusterFace(
            f"f{i:03d}",
            f"img{i // 2}",
            unit([1.0, float(i)]),
            person_id=people[i % persons].person_id if persons and i % 3 else None,
        )
        for i in range(faces)
    ]
    entries = [
        Correction(f"{i:020d}-c", CorrectionKind.NAME, Source.USER, float(i))
        for i in range(corrections)
    ]
    store.apply(
        ChangeSet(
            expect={
                **{face_key(f.face_id): 0 for f in records},
                **{person_key(p.person_id): 0 for p in people},
                **{correction_key(c.correction_id): 0 for c in entries},
            },
            put_faces=tuple(records),
            put_persons=tuple(people),
            put_corrections=tuple(entries),
        )
    )
    return store


@settings(max_examples=25, deadline=None)
@given(
    faces=st.integers(min_value=0, max_value=30),
    persons=st.integers(min_value=0, max_value=6),
    corrections=st.integers(min_value=0, max_value=12),
    size=st.integers(min_value=1, max_value=7),
)
def test_every_listing_matches_the_store_whatever_the_page_size(
    faces: int, persons: int, corrections: int, size: int
) -> None:
    store = _store(faces, persons, corrections)
    all_faces = store.list_faces(limit=5000).items
    assert list(every_face(store, page_size=size)) == all_faces
    assert (
        list(every_person(store, page_size=size))
        == store.list_persons(roots_only=False, limit=5000).items
    )
    # newest first, each once, also when the log is a whole number of pages long
    assert list(every_correction(store, page_size=size)) == store.list_corrections(limit=5000)
    for person in store.list_persons(limit=5000).items:
        own = [f for f in all_faces if f.person_id == person.person_id]
        assert list(faces_of(store, person.person_id, page_size=size)) == own
