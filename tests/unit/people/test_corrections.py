"""Corrections and undo: what they change, what the machine may do afterwards."""

from __future__ import annotations

import pytest

from facesearch.errors import CorrectionRefused, NotFound, UndoRefused
from facesearch.people.corrections import Corrections
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import CorrectionKind, Source
from tests.unit.people.support import Harness, check_invariants, identity_faces, partition


@pytest.fixture
def world() -> tuple[Harness, Corrections, dict[int, str], list]:
    faces, labels = identity_faces(3, 5, seed=30)
    h = Harness()
    h.add(faces)
    persons = {labels[f.face_id]: h.assignment()[f.face_id] for f in faces}
    assert len(set(persons.values())) == 3 and None not in persons.values()
    clock = iter(range(1_000_000, 2_000_000))
    c = Corrections(h.store, h.settings, engine=h.engine, clock=lambda: float(next(clock)))
    return h, c, persons, faces  # type: ignore[return-value]


def snapshot(h: Harness) -> tuple[dict, dict]:
    faces = {f: (x.person_id, x.source, x.rejected) for f, x in h.faces().items()}
    persons = {
        p.person_id: (p.name, p.faces, p.merged_into, p.aliases, p.distinct_from)
        for p in h.store.list_persons(roots_only=False).items
    }
    return faces, persons


def test_name_and_undo(world) -> None:
    h, c, persons, _ = world
    entry = c.name(persons[0], "  Ann  ")
    assert h.store.get_persons([persons[0]])[persons[0]].name == "Ann"
    assert entry.kind is CorrectionKind.NAME and entry.old_name is None
    undo = c.undo(entry.correction_id)
    assert h.store.get_persons([persons[0]])[persons[0]].name is None
    assert (
        h.store.get_corrections([entry.correction_id])[entry.correction_id].undone_by
        == undo.correction_id
    )
    with pytest.raises(UndoRefused):
        c.undo(entry.correction_id)  # once only
    with pytest.raises(UndoRefused):
        c.undo(undo.correction_id)  # an undo is not undone
    with pytest.raises(CorrectionRefused):
        c.name(persons[0], " ")


def test_undo_of_a_rename_that_was_overtaken_is_refused(world) -> None:
    _h, c, persons, _ = world
    first = c.name(persons[0], "Ann")
    c.name(persons[0], "Anne")
    with pytest.raises(UndoRefused):
        c.undo(first.correction_id)


def test_undo_window(world) -> None:
    _h, c, persons, _ = world
    c.settings = PeopleSettings(undo_max_age_s=10)
    entry = c.name(persons[0], "Ann")
    c.clock = lambda: entry.at + 11
    with pytest.raises(UndoRefused):
        c.undo(entry.correction_id)


def test_merge_is_a_few_writes_and_undo_restores_the_structure(world) -> None:
    h, c, persons, faces = world
    c.name(persons[1], "Bob")
    before = snapshot(h)
    entry = c.merge(persons[0], [persons[1], persons[2]])
    assignment = h.assignment()
    assert len({assignment[f.face_id] for f in faces}) == 1
    root = h.store.get_persons([persons[0]])[persons[0]]
    assert root.name == "Bob"  # the unnamed target takes a source's name
    assert set(root.aliases) == {persons[1], persons[2]}
    assert h.view(persons[0]).faces == 15
    # faces were not rewritten: they still name their own records
    assert {x.person_id for x in h.faces().values()} == set(persons.values())
    check_invariants(h)
    c.undo(entry.correction_id)
    after_faces, after_persons = snapshot(h)
    assert after_faces == before[0]
    for person_id, (name, count, merged_into, aliases, _distinct) in before[1].items():
        now = after_persons[person_id]
        assert now[:4] == (name, count, merged_into, aliases)
    # undoing a merge says "these are different": the machine will not re-merge them
    assert persons[1] in after_persons[persons[0]][4] and persons[0] in after_persons[persons[1]][4]
    check_invariants(h)


def test_merge_of_merged_persons_flattens_and_undoes_in_any_order(world) -> None:
    h, c, persons, _faces = world
    first = c.merge(persons[1], [persons[2]])
    second = c.merge(persons[0], [persons[1]])
    p1 = h.store.get_persons([persons[1]])[persons[1]]
    p2 = h.store.get_persons([persons[2]])[persons[2]]
    assert p1.merged_into == persons[0] and p2.merged_into == persons[0]  # never chained
    c.undo(first.correction_id)  # the older one first
    assert h.store.get_persons([persons[2]])[persons[2]].merged_into is None
    assert h.store.get_persons([persons[1]])[persons[1]].merged_into == persons[0]
    c.undo(second.correction_id)
    assert len(partition(h.assignment())) == 3
    check_invariants(h)


def test_split_moves_chosen_faces_to_a_new_person_and_the_machine_respects_it(world) -> None:
    h, c, persons, faces = world
    chosen = [f.face_id for f in faces[:2]]  # two faces of identity 0
    entry = c.move(chosen, name="Ann's twin")
    new = entry.created_person
    assert new is not None and entry.kind is CorrectionKind.MOVE
    records = h.faces()
    assert all(records[f].person_id == new and records[f].source is Source.USER for f in chosen)
    assert h.store.get_persons([new])[new].name == "Ann's twin"
    assert persons[0] in h.store.get_persons([new])[new].distinct_from
    # the machine sees more faces of identity 0: they go to the old person, and the two
    # persons are never merged again although they look alike
    more, _ = identity_faces(3, 5, seed=30, prefix="more")
    for face in more[:5]:
        h.add([face])
    assignment = h.assignment()
    assert all(assignment[f] == new for f in chosen)
    assert {assignment[f.face_id] for f in more[:5]} <= {persons[0], new}
    assert h.store.get_persons([new])[new].merged_into is None
    assert h.store.get_persons([persons[0]])[persons[0]].merged_into is None
    assert h.engine.try_merge(persons[0], new).action == "merge-refused"
    for face_id in [f.face_id for f in faces[:5]]:
        h.engine.examine(face_id)
    assert all(h.assignment()[f] == new for f in chosen)
    check_invariants(h)
    c.undo(entry.correction_id)
    assignment = h.assignment()
    assert all(assignment[f] == persons[0] for f in chosen)
    # the person the split created goes with the undo, unless the machine filled it since
    still_used = any(v == new for v in assignment.values())
    assert (h.store.get_persons([new]) != {}) == still_used
    assert all(h.faces()[f].source is Source.MACHINE for f in chosen)
    check_invariants(h)


def test_assign_a_face_to_another_person(world) -> None:
    h, c, persons, faces = world
    entry = c.move([faces[0].face_id], to_person=persons[1])
    assert h.faces()[faces[0].face_id].person_id == persons[1]
    assert entry.created_person is None
    assert persons[1] in h.store.get_persons([persons[0]])[persons[0]].distinct_from
    h.engine.examine(faces[0].face_id)
    assert h.assignment()[faces[0].face_id] == persons[1]  # user faces never move
    with pytest.raises(CorrectionRefused):
        c.move([faces[0].face_id], to_person=persons[1])
    with pytest.raises(NotFound):
        c.move(["nope"], to_person=persons[1])
    with pytest.raises(NotFound):
        c.move([faces[1].face_id], to_person="nobody")


def test_move_limits(world) -> None:
    _h, c, _persons, faces = world
    c.settings = PeopleSettings(max_faces_per_correction=2)
    with pytest.raises(CorrectionRefused):
        c.move([f.face_id for f in faces[:3]])
    with pytest.raises(CorrectionRefused):
        c.move([])


def test_reject_is_remembered(world) -> None:
    h, c, persons, faces = world
    victim = faces[0].face_id
    entry = c.reject(victim)
    assert entry.kind is CorrectionKind.REJECT
    face = h.faces()[victim]
    assert face.person_id is None and persons[0] in face.rejected
    # re-examined (the correction did it) and again when the neighbourhood changes:
    # it never returns to the person it was rejected from
    more, _ = identity_faces(3, 5, seed=30, prefix="more")
    for f in more[:5]:
        h.add([f])
    h.engine.examine(victim)
    assert h.assignment()[victim] is None
    # ...even after that person is merged into another
    c.merge(persons[1], [persons[0]])
    h.engine.examine(victim)
    assert h.assignment()[victim] is None
    check_invariants(h)


def test_undo_reject_puts_the_face_back(world) -> None:
    h, c, persons, faces = world
    entry = c.reject(faces[0].face_id)
    c.undo(entry.correction_id)
    face = h.faces()[faces[0].face_id]
    assert face.person_id == persons[0] and not face.rejected


def test_reject_a_person_the_face_is_not_in(world) -> None:
    h, c, persons, faces = world
    c.reject(faces[0].face_id, persons[1])
    face = h.faces()[faces[0].face_id]
    assert face.person_id == persons[0] and face.rejected == frozenset({persons[1]})


def test_undo_skips_faces_a_later_user_correction_changed(world) -> None:
    h, c, persons, faces = world
    first = c.move([faces[0].face_id, faces[1].face_id], to_person=persons[1])
    c.move([faces[1].face_id], to_person=persons[2])
    undo = c.undo(first.correction_id)
    assignment = h.assignment()
    assert assignment[faces[0].face_id] == persons[0]
    assert assignment[faces[1].face_id] == persons[2]
    assert faces[1].face_id in undo.note
    check_invariants(h)


def test_undo_of_a_machine_merge(world) -> None:
    from facesearch.people.merge import merge_into
    from facesearch.people.plan import Plan
    from facesearch.people.reads import Reads

    h, c, persons, _faces = world
    reads = Reads(h.store)
    _, views = reads.views([persons[0], persons[1]])
    plan = Plan(reads, h.settings, "test")
    entry = merge_into(
        plan, views[persons[0]], [views[persons[1]]], now=1.0e6, actor=Source.MACHINE
    )
    h.store.apply(plan.change_set())
    c.undo(entry.correction_id)
    assert len(partition(h.assignment())) == 3
    assert h.engine.try_merge(persons[0], persons[1]).action == "merge-refused"


def test_machine_split_undo_pins_the_faces(world) -> None:
    h, c, persons, faces = world
    from dataclasses import replace

    from facesearch.people.plan import Plan
    from facesearch.people.reads import Reads
    from facesearch.people.types import Correction, FaceChange, Person, new_correction_id

    reads = Reads(h.store)
    plan = Plan(reads, h.settings, "test split")
    plan.put_person(Person("split-off"))
    record = reads.face(faces[0].face_id)
    assert record is not None
    after = replace(record, person_id="split-off")
    plan.put_face(record, after)
    plan.put_correction(
        Correction(
            new_correction_id(1.0e6),
            CorrectionKind.SPLIT,
            Source.MACHINE,
            1.0e6,
            persons[0],
            (FaceChange.between(record, after),),
        )
    )
    h.store.apply(plan.change_set())
    entry = h.store.list_corrections()[0]
    c.undo(entry.correction_id)
    face = h.faces()[faces[0].face_id]
    assert face.person_id == persons[0] and face.source is Source.USER
    assert h.store.get_persons(["split-off"]) == {}
    check_invariants(h)


def test_undo_into_a_person_merged_since_repairs_the_root(world) -> None:
    """A face comes back (by undo) into a person that was merged, meanwhile, into the
    person it had been rejected from: the machine must not leave it there."""
    h, c, persons, faces = world
    f = faces[5].face_id  # identity 1, in persons[1]
    c.reject(f, persons[0])  # "not persons[0]" while it sits in persons[1]
    moved = c.move([f])  # the user puts it alone
    c.merge(persons[0], [persons[1]])  # the user merges persons[1] into persons[0]
    c.undo(moved.correction_id)  # back to persons[1], i.e. into persons[0]'s tree
    face = h.faces()[f]
    assert face.person_id is None or h.root_of(face) != persons[0]
    check_invariants(h)
