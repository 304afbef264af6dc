"""Full re-cluster: same answer as the batch rule, stable ids and names, constraints kept."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from facesearch.people.corrections import Corrections
from facesearch.people.recluster import recluster
from facesearch.people.settings import PeopleSettings
from facesearch.people.stable_ids import match_by_overlap
from facesearch.people.types import Source
from tests.unit.people.support import Harness, check_invariants, identity_faces, partition


def counter_ids(prefix: str) -> object:
    numbers = itertools.count()
    return lambda: f"{prefix}{next(numbers):04d}"


def test_match_by_overlap_is_one_to_one_and_maximal() -> None:
    # greedy (largest first) would give c1->A (5) and leave c2 with nothing useful;
    # the optimum is c1->B, c2->A (4 + 4 = 8 > 5 + 1)
    overlaps = {(1, "A"): 5, (1, "B"): 4, (2, "A"): 4, (2, "B"): 1, (3, "C"): 2}
    assert match_by_overlap(overlaps) == {1: "B", 2: "A", 3: "C"}
    assert match_by_overlap({}) == {}


def test_recluster_of_an_unchanged_store_changes_nothing() -> None:
    faces, _ = identity_faces(5, [3, 4, 5, 6, 7], seed=40)
    random.Random(1).shuffle(faces)
    h = Harness()
    for face in faces:
        h.add([face])
    Corrections(h.store, h.settings).name(h.assignment()[faces[0].face_id], "Ann")  # type: ignore[arg-type]
    before = {f: (x.person_id, x.version) for f, x in h.faces().items()}
    persons_before = {p.person_id: p.name for p in h.store.list_persons().items}
    report = recluster(h.store, h.settings, new_id=counter_ids("new"))
    after = {f: (x.person_id, x.version) for f, x in h.faces().items()}
    assert {f: p for f, (p, _) in after.items()} == {f: p for f, (p, _) in before.items()}
    assert {p.person_id: p.name for p in h.store.list_persons().items} == persons_before
    assert report.new_ids == 0 and report.retired_ids == 0
    check_invariants(h)


def test_stable_ids_and_names_across_a_parameter_change() -> None:
    faces, _labels = identity_faces(4, 6, seed=41)
    h = Harness(PeopleSettings(link_similarity=0.9, join_similarity=0.9, merge_similarity=0.9))
    for face in faces:
        h.add([face])
    corrections = Corrections(h.store, h.settings)
    named = h.assignment()[faces[0].face_id]
    assert named is not None
    corrections.name(named, "Ann")
    ids_before = set(partition(h.assignment()))
    persons_before = {p.person_id for p in h.store.list_persons().items}
    stricter = PeopleSettings(link_similarity=0.95, join_similarity=0.95, merge_similarity=0.95)
    recluster(h.store, stricter, new_id=counter_ids("new"))
    assert set(partition(h.assignment())) == ids_before  # same clusters...
    assert {p.person_id for p in h.store.list_persons().items} == persons_before  # ...same ids
    assert h.store.get_persons([named])[named].name == "Ann"


def test_recluster_splits_a_wrong_merge_and_the_bigger_part_keeps_the_id() -> None:
    faces, labels = identity_faces(2, [6, 3], seed=42)
    lax = PeopleSettings(
        link_similarity=-1.0, join_similarity=-1.0, merge_similarity=-1.0, width_min_similarity=-1.0
    )
    h = Harness(lax)
    for face in faces:
        h.add([face])
    (only,) = set(h.assignment().values())
    assert only is not None
    report = recluster(h.store, PeopleSettings(), new_id=counter_ids("new"))
    assignment = h.assignment()
    big = {assignment[f] for f, i in labels.items() if i == 0}
    small = {assignment[f] for f, i in labels.items() if i == 1}
    assert big == {only} and len(small) == 1 and small != big
    assert report.kept_ids == 1 and report.new_ids == 1
    check_invariants(h)


def test_a_users_merge_survives_a_recluster_and_its_undo_is_respected() -> None:
    faces, labels = identity_faces(3, 4, seed=44)
    h = Harness()
    h.add(faces)
    corrections = Corrections(h.store, h.settings, engine=h.engine)
    first = h.assignment()[faces[0].face_id]
    second = h.assignment()[faces[4].face_id]
    third = h.assignment()[faces[8].face_id]
    assert first and second and third and len({first, second, third}) == 3
    corrections.merge(first, [second])  # the user says: one person (the machine disagrees)
    recluster(h.store, PeopleSettings(), new_id=counter_ids("new"))
    roots = {h.root_of(f) for f in h.faces().values() if labels[f.face_id] in (0, 1)}
    assert roots == {first}
    check_invariants(h)
    # a merge the user undid is not binding: the re-cluster keeps them apart again
    h2 = Harness()
    h2.add(faces)
    c2 = Corrections(h2.store, h2.settings, engine=h2.engine)
    entry = c2.merge(first, [second])
    c2.undo(entry.correction_id)
    recluster(h2.store, PeopleSettings(), new_id=counter_ids("new"))
    apart = {h2.root_of(f) for f in h2.faces().values() if labels[f.face_id] in (0, 1)}
    assert len(apart) == 2


def test_user_faces_rejections_and_distinct_marks_survive() -> None:
    faces, _labels = identity_faces(3, 5, seed=43)
    h = Harness()
    h.add(faces)
    corrections = Corrections(h.store, h.settings, engine=h.engine)
    p0 = h.assignment()[faces[0].face_id]
    p1 = h.assignment()[faces[5].face_id]
    assert p0 and p1
    # a user's odd but binding choice: a face of identity 0 belongs to person 1
    corrections.move([faces[1].face_id], to_person=p1)
    corrections.reject(faces[2].face_id)  # "not p0"
    twin = corrections.move([faces[3].face_id, faces[4].face_id], name="Twin")
    recluster(h.store, PeopleSettings(), new_id=counter_ids("new"))
    assignment = h.assignment()
    records = h.faces()
    assert assignment[faces[1].face_id] == p1 and records[faces[1].face_id].source is Source.USER
    assert assignment[faces[2].face_id] != p0
    assert assignment[faces[3].face_id] == twin.created_person == assignment[faces[4].face_id]
    assert assignment[faces[0].face_id] != twin.created_person  # distinct marks hold
    check_invariants(h)


def test_recluster_reconciles_with_the_metadata_store() -> None:
    faces, _ = identity_faces(2, 5, seed=44)
    h = Harness()
    h.add(faces[:8])
    missing_in_store = faces[8:]  # events never processed (an outage)
    gone = faces[0]  # deleted from metadata but its removal event was lost
    h.index(missing_in_store)
    h.unindex([gone.face_id])
    report = recluster(h.store, h.settings, faces=h.source.all(), new_id=counter_ids("new"))
    assert report.added == 2 and report.removed == 1
    stored = h.faces()
    assert gone.face_id not in stored and all(f.face_id in stored for f in missing_in_store)
    assert len(partition(h.assignment())) == 2
    assert h.store.get_tombstones([gone.face_id])
    check_invariants(h)


def test_event_driven_and_recluster_agree_on_separated_identities() -> None:
    faces, _labels = identity_faces(8, [2, 3, 3, 4, 5, 6, 8, 9], seed=45)
    h = Harness()
    random.Random(5).shuffle(faces)
    for face in faces:
        h.add([face])
    incremental = partition(h.assignment())
    fresh = Harness()
    recluster(fresh.store, fresh.settings, faces=faces, new_id=counter_ids("new"))
    assert partition(fresh.assignment()) == incremental
    check_invariants(fresh)


@pytest.mark.parametrize("k", [1, 4])
def test_knn_function_is_pluggable(k: int) -> None:
    from facesearch.people.batch import knn_exact

    calls = []

    def knn(x: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(x))
        return knn_exact(x, kk)

    faces, _ = identity_faces(2, 3, seed=46)
    h = Harness(PeopleSettings(neighbours_k=k))
    recluster(h.store, h.settings, faces=faces, knn=knn)
    assert calls == [6]
