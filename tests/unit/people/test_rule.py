"""The density rule in isolation: one face, a constructed neighbourhood, a decision."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from facesearch.people import rule
from facesearch.people.representative import PersonView, recompute
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace, Person, Source, unit

S = PeopleSettings(
    link_similarity=0.9,
    min_samples=3,
    join_similarity=0.95,
    merge_similarity=0.95,
    width_min_similarity=0.9,
)
AXIS = np.eye(16)


def near(base: np.ndarray, angle_cos: float, towards: int = 5) -> np.ndarray:
    """A unit vector at cosine ``angle_cos`` from ``base`` (base must be an axis)."""
    other = AXIS[towards]
    return unit(angle_cos * base + np.sqrt(1 - angle_cos**2) * other)


def cf(face_id: str, vector: np.ndarray, image: str | None = None, **kw: object) -> ClusterFace:
    return ClusterFace(face_id, image or f"img-{face_id}", unit(vector), **kw)  # type: ignore[arg-type]


def view(
    person_id: str,
    vectors: Sequence[np.ndarray],
    *,
    name: str | None = None,
    user: bool = False,
    **kw: object,
) -> PersonView:
    source = Source.USER if user else Source.MACHINE
    faces = [
        cf(f"{person_id}-{i}", v, person_id=person_id, source=source) for i, v in enumerate(vectors)
    ]
    person = recompute(Person(person_id, name=name, **kw), faces, S)  # type: ignore[arg-type]
    return PersonView(person, (person,))


def link(face_id: str, sim: float, person: str | None, core: bool = True) -> rule.Link:
    return rule.Link(face_id, sim, person, core)


def test_core_counts_the_face_itself() -> None:
    assert not rule.is_core(1, S) and rule.is_core(2, S)
    assert rule.is_core(0, PeopleSettings(min_samples=1))


def test_links_exclude_own_image_self_and_weak_neighbours() -> None:
    f = cf("f", AXIS[0], "img")
    neighbours = [
        (cf("f", AXIS[0], "img"), 1.0),
        (cf("g", AXIS[0], "img"), 0.99),  # same photo: cannot-link
        (cf("h", AXIS[0], person_id="p1"), 0.95),
        (cf("i", AXIS[0]), 0.85),  # below link_similarity
        (cf("j", AXIS[0], person_id="alias"), 0.97),
    ]
    links = rule.links_of(f, neighbours, {"p1": "p1", "alias": "root"}, S)
    assert [(x.face_id, x.person_id) for x in links] == [("j", "root"), ("h", "p1")]


def test_joins_the_best_fitting_person() -> None:
    f = cf("f", near(AXIS[0], 0.99))
    a = view("a", [AXIS[0], AXIS[0]])
    b = view("b", [near(AXIS[0], 0.96, 6), near(AXIS[0], 0.96, 7)])
    links = [link("a-0", 0.99, "a"), link("b-0", 0.97, "b")]
    d = rule.decide(f, links, {"a": rule.Candidate(a), "b": rule.Candidate(b)}, S)
    assert d.action is rule.Action.JOIN and d.person_id == "a" and d.core
    assert d.merges == ("b",)  # core face linked to a core face of another person


def test_a_non_core_face_proposes_no_merge_and_needs_support() -> None:
    f = cf("f", AXIS[0])
    a = view("a", [AXIS[0]])
    d = rule.decide(f, [link("a-0", 0.99, "a")], {"a": rule.Candidate(a)}, S)
    assert d.action is rule.Action.JOIN and not d.core and d.merges == ()
    strict = PeopleSettings(**{**S.model_dump(), "min_support": 2})
    d = rule.decide(f, [link("a-0", 0.99, "a")], {"a": rule.Candidate(a)}, strict)
    assert d.action is rule.Action.DEFER


def test_resembling_one_member_is_not_enough_centroid_test() -> None:
    """Single-link chaining stops here: close to one member, far from the person."""
    a = view("a", [AXIS[0], AXIS[0], AXIS[0], AXIS[0], near(AXIS[0], 0.93)])
    f = cf("f", near(AXIS[0], 0.90))  # 4 degrees from the outlier, 26 from the rest
    sim_to_centroid = float(np.dot(a.centroid, f.embedding))  # type: ignore[arg-type]
    assert sim_to_centroid < S.join_similarity
    d = rule.decide(f, [link("a-4", 0.997, "a")], {"a": rule.Candidate(a)}, S)
    assert d.action is rule.Action.DEFER and "centroid" in d.reason


def test_width_guard_refuses_a_join_that_widens_too_much() -> None:
    narrow = PeopleSettings(
        **{**S.model_dump(), "join_similarity": 0.5, "width_min_similarity": 0.999}
    )
    a = view("a", [AXIS[0], AXIS[0]])
    f = cf("f", near(AXIS[0], 0.97))
    d = rule.decide(f, [link("a-0", 0.97, "a")], {"a": rule.Candidate(a)}, narrow)
    assert d.action is rule.Action.DEFER and "width" in d.reason


def test_rejected_person_is_never_joined() -> None:
    f = cf("f", AXIS[0])
    a = view("a", [AXIS[0], AXIS[0]])
    links = [link("a-0", 0.99, "a"), link("a-1", 0.99, "a")]
    d = rule.decide(f, links, {"a": rule.Candidate(a, rejected=True)}, S)
    # core by density, but all of it belongs to the rejected person: no founding either
    assert d.action is rule.Action.DEFER


def test_cannot_link_user_sibling_blocks_and_worse_machine_sibling_is_evicted() -> None:
    f = cf("f", near(AXIS[0], 0.98), "photo")
    a = view("a", [AXIS[0], AXIS[0]])
    links = [link("a-0", 0.99, "a")]
    user = rule.Sibling("s", 0.5, Source.USER)
    d = rule.decide(f, links, {"a": rule.Candidate(a, siblings=(user,))}, S)
    assert d.action is rule.Action.DEFER and "cannot-link" in d.reason
    better = rule.Sibling("s", 0.999, Source.MACHINE)
    d = rule.decide(f, links, {"a": rule.Candidate(a, siblings=(better,))}, S)
    assert d.action is rule.Action.DEFER
    worse = rule.Sibling("s", 0.96, Source.MACHINE)
    d = rule.decide(f, links, {"a": rule.Candidate(a, siblings=(worse,))}, S)
    assert d.action is rule.Action.JOIN and d.evict == ("s",)


def test_found_when_core_and_nobody_fits_defer_otherwise() -> None:
    f = cf("f", AXIS[0])
    d = rule.decide(f, [link("x", 0.95, None, False), link("y", 0.93, None, False)], {}, S)
    assert d.action is rule.Action.FOUND and d.link_count == 2
    d = rule.decide(f, [link("x", 0.95, None, False)], {}, S)
    assert d.action is rule.Action.DEFER and not d.core


def test_assigned_face_keeps_its_person_and_reports_merge_evidence() -> None:
    f = cf("f", AXIS[0], person_id="a")
    links = [link("b-0", 0.97, "b"), link("x", 0.96, None), link("c-0", 0.95, "c", core=False)]
    d = rule.decide(f, links, {}, S, own_root="a")
    assert d.action is rule.Action.KEEP and d.person_id == "a" and d.merges == ("b",)


@pytest.mark.parametrize(
    ("a_kw", "b_kw", "b_vectors", "shared", "expected"),
    [
        ({}, {}, [AXIS[0], AXIS[0]], None, None),
        ({"distinct_from": frozenset({"b"})}, {}, [AXIS[0], AXIS[0]], None, "marked distinct"),
        ({"name": "Ann"}, {"name": "Bob"}, [AXIS[0], AXIS[0]], None, "both confirmed"),
        ({"name": "Ann"}, {"user": True}, [AXIS[0], AXIS[0]], None, "both confirmed"),
        ({"name": "Ann"}, {}, [AXIS[0], AXIS[0]], None, None),
        ({}, {}, [near(AXIS[0], 0.9), near(AXIS[0], 0.9)], None, "centroids"),
        ({}, {}, [AXIS[0], AXIS[0]], True, "a photo shows both"),
    ],
)
def test_merge_refusal(
    a_kw: dict[str, object],
    b_kw: dict[str, object],
    b_vectors: list[np.ndarray],
    shared: bool | None,
    expected: str | None,
) -> None:
    a = view("a", [AXIS[0], AXIS[0]], **a_kw)  # type: ignore[arg-type]
    b = view("b", b_vectors, **b_kw)  # type: ignore[arg-type]
    refusal = rule.merge_refusal(a, b, S, shared_image=shared)
    if expected is None:
        assert refusal is None
    else:
        assert refusal is not None and expected in refusal
    assert rule.merge_refusal(a, a, S) == "same person"


def test_merge_refused_when_together_too_wide() -> None:
    wide = PeopleSettings(
        **{**S.model_dump(), "merge_similarity": 0.5, "width_min_similarity": 0.99}
    )
    a = view("a", [AXIS[0], AXIS[0]])
    b = view("b", [near(AXIS[0], 0.95), near(AXIS[0], 0.95)])
    assert rule.merge_refusal(a, b, wide) == "too wide together"
