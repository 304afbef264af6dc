"""The event-driven clusterer: rule in context, delivery semantics, races, width guard."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from facesearch.errors import StaleRead, TransientError
from facesearch.people.engine import PeopleEngine
from facesearch.people.memory import MemoryPeopleStore
from facesearch.people.ports import ChangeSet
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import FaceInput, Source, unit
from facesearch.storage.messages import FaceEvent
from tests.unit.people.support import (
    DIMS,
    Harness,
    blend,
    check_invariants,
    identity_faces,
    partition,
)


def truth(labels: dict[str, int]) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for face, ident in labels.items():
        groups.setdefault(ident, set()).add(face)
    return {frozenset(g) for g in groups.values()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_separated_identities_any_order(seed: int) -> None:
    faces, labels = identity_faces(6, [1, 2, 3, 5, 8, 13], seed=seed)
    random.Random(seed).shuffle(faces)
    h = Harness()
    for face in faces:
        h.add([face])
    singleton = {f for f, i in labels.items() if i == 0}
    assert partition(h.assignment()) == truth(labels) - {frozenset(singleton)}
    assert h.assignment()[next(iter(singleton))] is None  # a one-off stranger waits
    check_invariants(h)


def test_outcomes_report_found_join_defer() -> None:
    faces, _ = identity_faces(1, 3, seed=3)
    h = Harness(PeopleSettings(min_samples=3, link_similarity=0.9, join_similarity=0.9))
    first = h.add([faces[0]])
    assert [o.action for o in first] == ["deferred"]
    second = h.add([faces[1]])
    # two faces are not enough (min_samples=3): both wait
    assert [o.action for o in second] == ["deferred"]
    third = h.add([faces[2]])
    actions = [o.action for o in third]
    assert actions[0] == "founded" and third[0].person_id is not None
    # the waiting neighbours were re-examined because their neighbourhood changed
    assert actions.count("joined") == 2
    assert len(set(h.assignment().values())) == 1


def test_batch_event_of_many_faces() -> None:
    faces, labels = identity_faces(4, 6, seed=4)
    h = Harness()
    h.add(faces)
    assert partition(h.assignment()) == truth(labels)
    check_invariants(h)


@pytest.mark.parametrize("seed", [0, 1])
def test_redelivery_times_ten_gives_the_same_persons(seed: int) -> None:
    faces, _labels = identity_faces(5, [2, 3, 4, 6, 7], seed=10 + seed)
    rng = random.Random(seed)
    rng.shuffle(faces)
    once = Harness()
    for face in faces:
        once.add([face])
    many = Harness()
    events: list[FaceEvent] = []
    for face in faces:
        version = many.index([face])
        events.append(FaceEvent("face_added", [face.face_id], "m@1", version))
    removed = [faces[0].face_id, faces[5].face_id]
    version = many.unindex(removed)
    events.append(FaceEvent("face_removed", removed, None, version))
    deliveries = [e for e in events for _ in range(10)]
    rng.shuffle(deliveries)  # duplicates, and some removals before their adds
    for event in deliveries:
        many.engine.handle_event(event)
    for face_id in removed:
        once.remove([face_id])
    assert partition(many.assignment()) == partition(once.assignment())
    assert set(many.faces()) == set(once.faces())
    check_invariants(many)


def test_removed_before_added_stays_removed() -> None:
    faces, _ = identity_faces(1, 3, seed=5)
    h = Harness()
    h.add(faces[:2])
    version_add = h.index([faces[2]])
    version_remove = h.unindex([faces[2].face_id])
    h.engine.face_removed([faces[2].face_id], manifest_version=version_remove)
    late = h.engine.face_added([faces[2].face_id], manifest_version=version_add)
    assert late[0].action == "ignored-removed"
    assert faces[2].face_id not in h.faces()
    # a genuinely newer add of the same id (re-ingest) is applied
    version_again = h.index([faces[2]])
    again = h.engine.face_added([faces[2].face_id], manifest_version=version_again)
    assert again[0].action == "joined"
    # and the old removal, delivered once more, neither removes nor revives anything
    stale = h.engine.face_removed([faces[2].face_id], manifest_version=version_remove)
    assert stale[0].action.startswith("ignored")
    assert faces[2].face_id in h.faces()


def test_add_without_versions_never_revives_a_tombstone() -> None:
    faces, _ = identity_faces(1, 2, seed=6)
    h = Harness()
    h.index(faces)
    h.engine.face_removed([faces[0].face_id])
    assert h.engine.face_added([faces[0].face_id])[0].action == "ignored-removed"
    assert h.engine.face_removed([faces[0].face_id])[0].action == "ignored-duplicate"


def test_face_missing_from_metadata_is_ignored() -> None:
    h = Harness()
    assert h.engine.face_added(["ghost"], manifest_version=1)[0].action == "ignored-missing"
    assert h.faces() == {}


def test_remove_updates_statistics_and_drops_empty_unnamed_persons() -> None:
    faces, _ = identity_faces(1, 3, seed=7)
    h = Harness()
    h.add(faces)
    (person,) = {p for p in h.assignment().values()}
    assert person is not None
    h.remove([faces[0].face_id])
    assert h.view(person).faces == 2
    check_invariants(h)
    h.remove([faces[1].face_id, faces[2].face_id])
    assert h.store.get_persons([person]) == {}
    check_invariants(h)


def test_named_person_survives_losing_all_faces() -> None:
    from facesearch.people.corrections import Corrections

    faces, _ = identity_faces(1, 2, seed=8)
    h = Harness()
    h.add(faces)
    (person,) = set(h.assignment().values())
    assert person is not None
    Corrections(h.store, h.settings).name(person, "Ann")
    h.remove([f.face_id for f in faces])
    assert h.store.get_persons([person])[person].name == "Ann"
    assert h.view(person).faces == 0


def test_link_counts_are_exact_after_adds_and_removes() -> None:
    s = PeopleSettings(min_samples=4, link_similarity=0.9, join_similarity=0.9)
    faces, _ = identity_faces(1, 3, seed=9)
    h = Harness(s)
    for face in faces:
        h.add([face])
    counts = {f: c.link_count for f, c in h.faces().items()}
    assert set(counts.values()) == {2}  # every pair counted once, by the later face
    h.remove([faces[1].face_id])
    assert {c.link_count for c in h.faces().values()} == {1}


def test_siblings_are_not_merged_through_a_bridging_face() -> None:
    """Immich's complaint: two look-alike people chained into one by in-between faces."""
    rng = np.random.default_rng(11)
    a_centre = unit(rng.normal(size=DIMS))
    b_centre = blend(a_centre, unit(rng.normal(size=DIMS)), 0.32)  # a sibling: cos ~0.9
    assert 0.85 < float(a_centre @ b_centre) < 0.95

    def around(centre: np.ndarray, n: int, tag: str) -> list[FaceInput]:
        return [
            FaceInput(f"{tag}{i}:0", f"{tag}{i}", unit(centre + rng.normal(size=DIMS) * 0.02), 1.0)
            for i in range(n)
        ]

    a, b = around(a_centre, 6, "a"), around(b_centre, 6, "b")
    bridges = [
        FaceInput(f"m{i}:0", f"m{i}", blend(a_centre, b_centre, t), 1.0)
        for i, t in enumerate([0.35, 0.5, 0.65])
    ]
    s = PeopleSettings(link_similarity=0.95, min_samples=2)
    # the scene is one where plain DBSCAN (no centroid or width test) chains A and B
    from facesearch.people.batch import BatchFaces, cluster, knn_exact

    every = a + b + bridges
    x = np.stack([f.embedding for f in every])
    plain = s.model_copy(
        update={"join_similarity": -1.0, "merge_similarity": -1.0, "width_min_similarity": -1.0}
    )
    labels = cluster(
        BatchFaces(x, np.arange(len(every)), np.ones(len(every))), *knn_exact(x, 16), plain
    ).labels
    assert labels[0] == labels[6] != -1
    h = Harness(s)
    for face in a + b + bridges:
        h.add([face])
    assignment = h.assignment()
    assert {assignment[f.face_id] for f in a}.isdisjoint({assignment[f.face_id] for f in b})
    assert len({assignment[f.face_id] for f in a}) == 1
    assert len({assignment[f.face_id] for f in b}) == 1
    check_invariants(h)


def test_two_halves_of_one_person_merge_when_a_bridge_appears() -> None:
    rng = np.random.default_rng(12)
    centre = unit(rng.normal(size=DIMS))
    side = unit(rng.normal(size=DIMS))
    left = [
        FaceInput(f"l{i}:0", f"l{i}", blend(centre, side, -0.12 + rng.normal() * 0.005), 1.0)
        for i in range(4)
    ]
    right = [
        FaceInput(f"r{i}:0", f"r{i}", blend(centre, side, 0.12 + rng.normal() * 0.005), 1.0)
        for i in range(4)
    ]
    s = PeopleSettings(
        link_similarity=0.985,
        min_samples=2,
        join_similarity=0.97,
        merge_similarity=0.97,
        width_min_similarity=0.97,
    )
    h = Harness(s)
    for face in left + right:
        h.add([face])
    before = h.assignment()
    assert len({before[f.face_id] for f in left + right}) == 2
    outcomes = h.add([FaceInput("mid:0", "mid", centre, 1.0)])
    assert "merged" in [o.action for o in outcomes]
    after = h.assignment()
    assert len({after[f.face_id] for f in left + right}) == 1
    (entry,) = h.store.list_corrections()
    assert entry.kind == "merge" and entry.actor is Source.MACHINE
    check_invariants(h)


def test_cannot_link_two_faces_of_one_photo() -> None:
    """A photo with a mirror: the same identity twice in one image is never one person."""
    faces, _ = identity_faces(1, 4, seed=13)
    mirror = FaceInput("img0:1", "img0", unit(faces[0].embedding + 0.001), 1.0)
    for order in ([*faces, mirror], [mirror, *faces]):
        h = Harness()
        for face in order:
            h.add([face])
        assignment = h.assignment()
        assert assignment["img0:0"] is None or assignment["img0:0"] != assignment["img0:1"]
        check_invariants(h)


def test_best_fit_wins_whatever_arrives_first() -> None:
    """Two faces of one photo both near a person: the closer one ends up in it."""
    faces, _ = identity_faces(1, 4, seed=14, prefix="p")
    centre = unit(sum(f.embedding for f in faces))
    close = FaceInput("group:0", "group", blend(centre, faces[0].embedding, 0.1), 1.0)
    farther = FaceInput("group:1", "group", blend(centre, unit(np.ones(DIMS)), 0.06), 1.0)
    results = []
    for extra in ([close, farther], [farther, close]):
        h = Harness(
            PeopleSettings(link_similarity=0.9, join_similarity=0.9, width_min_similarity=0.9)
        )
        for face in faces + extra:
            h.add([face])
        assignment = h.assignment()
        results.append((assignment["group:0"], assignment["group:1"]))
        check_invariants(h)
    assert all(a is not None and b != a for a, b in results)


def test_deferred_faces_are_retried_by_their_neighbourhood_not_a_sweep() -> None:
    s = PeopleSettings(min_samples=3, link_similarity=0.9, join_similarity=0.9)
    faces, labels = identity_faces(3, 3, seed=15)
    h = Harness(s)
    # one face of each identity first: all wait
    firsts = [faces[0], faces[3], faces[6]]
    for face in firsts:
        h.add([face])
    assert set(h.assignment().values()) == {None}
    for face in faces:
        if face not in firsts:
            h.add([face])
    assert partition(h.assignment()) == truth(labels)


def test_racing_clusterers_found_one_person_per_identity() -> None:
    faces, labels = identity_faces(6, 5, seed=16)
    h = Harness(latency_s=0.0005)
    engines = [h.new_engine(), h.new_engine()]
    version = h.index(faces)
    order = list(faces)
    random.Random(3).shuffle(order)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(engine: PeopleEngine, chunk: list[FaceInput]) -> None:
        barrier.wait()
        try:
            for face in chunk:
                engine.face_added([face.face_id], manifest_version=version)
        except BaseException as exc:
            errors.append(exc)

    # interleaved halves: the faces of every identity are split across the instances
    threads = [
        threading.Thread(target=work, args=(engines[0], order[0::2])),
        threading.Thread(target=work, args=(engines[1], order[1::2])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert partition(h.assignment()) == truth(labels)
    assert h.store.counts().persons == 6
    assert h.store.stale > 0  # the races did happen and were resolved by re-deciding
    check_invariants(h)


def test_same_face_on_two_instances_at_once_is_stored_once() -> None:
    faces, _ = identity_faces(1, 1, seed=17)
    h = Harness(latency_s=0.001)
    version = h.index(faces)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def deliver() -> None:
        engine = h.new_engine()
        barrier.wait()
        outcomes.extend(
            o.action for o in engine.face_added([faces[0].face_id], manifest_version=version)
        )

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(h.faces()) == 1
    assert outcomes.count("deferred") == 1 and outcomes.count("ignored-duplicate") == 3


def test_a_correction_racing_the_clusterer_is_never_lost() -> None:
    from facesearch.people.corrections import Corrections

    faces, _ = identity_faces(2, 6, seed=18)
    h = Harness(latency_s=0.0003)
    h.add(faces[:3] + faces[6:9])
    corrections = Corrections(h.store, h.settings)
    person = h.assignment()[faces[0].face_id]
    assert person is not None
    version = h.index(faces[3:6] + faces[9:])
    done = threading.Event()

    def cluster() -> None:
        h.engine.face_added([f.face_id for f in faces[3:6] + faces[9:]], manifest_version=version)
        done.set()

    thread = threading.Thread(target=cluster)
    thread.start()
    corrections.name(person, "Ann")
    moved = corrections.move([faces[1].face_id], name="Not Ann")
    thread.join()
    assert done.is_set()
    assert h.store.get_persons([person])[person].name == "Ann"
    face = h.faces()[faces[1].face_id]
    assert face.person_id == moved.created_person and face.source is Source.USER
    check_invariants(h)


def test_gives_up_with_a_retryable_error_when_always_stale() -> None:
    class AlwaysStale(MemoryPeopleStore):
        def apply(self, changes: ChangeSet) -> None:
            raise StaleRead("someone else, always")

    faces, _ = identity_faces(1, 1, seed=19)
    h = Harness(PeopleSettings(apply_attempts=3))
    h.store = AlwaysStale()
    h.engine = h.new_engine()
    h.index(faces)
    with pytest.raises(TransientError) as info:
        h.engine.face_added([faces[0].face_id], manifest_version=1)
    assert info.value.retryable


def test_width_guard_splits_machine_faces_and_keeps_user_faces() -> None:
    from facesearch.people.corrections import Corrections

    rng = np.random.default_rng(20)
    a_centre, b_centre = unit(rng.normal(size=DIMS)), unit(rng.normal(size=DIMS))
    a = [
        FaceInput(f"a{i}:0", f"a{i}", unit(a_centre + rng.normal(size=DIMS) * 0.02), 1.0)
        for i in range(5)
    ]
    b = [
        FaceInput(f"b{i}:0", f"b{i}", unit(b_centre + rng.normal(size=DIMS) * 0.02), 1.0)
        for i in range(5)
    ]
    h = Harness()
    h.add(a + b)
    corrections = Corrections(h.store, h.settings)
    pa = h.assignment()["a0:0"]
    pb = h.assignment()["b0:0"]
    assert pa and pb and pa != pb
    corrections.move([a[0].face_id], to_person=pa)  # a user vouches for one face of A
    # a legacy/maintenance write that put B's faces into A (e.g. made before a setting change)
    from dataclasses import replace

    from facesearch.people.plan import Plan
    from facesearch.people.reads import Reads

    reads = Reads(h.store)
    plan = Plan(reads, h.settings, "legacy")
    for face in b:
        record = reads.face(face.face_id)
        assert record is not None
        plan.put_face(record, replace(record, person_id=pa))
    h.store.apply(plan.change_set())
    assert h.view(pa).width < h.settings.width_min_similarity
    # any removal from the person runs the guard
    outcomes = h.remove([a[4].face_id])
    assert "split" in [o.action for o in outcomes]
    assignment = h.assignment()
    assert {assignment[f.face_id] for f in a[:4]} == {pa}
    b_persons = {assignment[f.face_id] for f in b}
    assert len(b_persons) == 1 and None not in b_persons and pa not in b_persons
    assert h.view(pa).width >= h.settings.width_min_similarity
    assert h.faces()[a[0].face_id].source is Source.USER
    split = [e for e in h.store.list_corrections() if e.kind == "split"]
    assert len(split) == 1 and split[0].actor is Source.MACHINE
    check_invariants(h)
