"""Person statistics, effective views and person search."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.config import load_settings
from facesearch.errors import ConfigError
from facesearch.people.representative import (
    PersonView,
    add_face,
    rank_persons,
    recompute,
    refill,
    remove_face,
    width_after_merging,
)
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace, Person, Source, unit
from facesearch.section import describe

S = PeopleSettings(representative_faces=3, quality_weight_floor=0.2)


def faces(n: int, seed: int = 0, person: str = "p") -> list[ClusterFace]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=16)
    return [
        ClusterFace(
            f"{person}{i}",
            f"img{person}{i}",
            unit(base + rng.normal(size=16) * 0.2),
            quality=float(rng.random()),
            seen_at=float(100 + i),
            person_id=person,
            source=Source.USER if i % 3 == 0 else Source.MACHINE,
        )
        for i in range(n)
    ]


def test_incremental_statistics_equal_a_recompute() -> None:
    fs = faces(10)
    person = Person("p")
    for f in fs:
        person = add_face(person, f, S)
    full = recompute(Person("p"), fs, S)
    assert person.faces == full.faces == 10 and person.user_faces == full.user_faces
    assert np.allclose(person.vector_sum, full.vector_sum) and person.weight == pytest.approx(
        full.weight
    )
    assert person.exemplars == full.exemplars and len(person.exemplars) == 3
    assert (person.first_seen, person.last_seen) == (100.0, 109.0)
    # remove the best exemplar and the first-seen face: refill restores exactness
    best = next(f for f in fs if f.face_id == person.exemplars[0].face_id)
    for victim in {best.face_id, "p0"}:
        face = next(f for f in fs if f.face_id == victim)
        person, needs = remove_face(person, face, S)
        assert needs
        fs = [f for f in fs if f.face_id != victim]
        person = refill(person, fs, S)
    assert person.exemplars == recompute(Person("p"), fs, S).exemplars
    assert person.first_seen == min(f.seen_at for f in fs)
    assert np.allclose(person.vector_sum, recompute(Person("p"), fs, S).vector_sum)


def test_removing_the_last_face_empties_the_person() -> None:
    (f,) = faces(1)
    person, needs = remove_face(add_face(Person("p"), f, S), f, S)
    assert (person.faces, person.weight, len(person.vector_sum), person.exemplars) == (
        0,
        0.0,
        0,
        (),
    )
    assert person.first_seen is None and not needs


def test_view_sums_root_and_aliases_and_width_is_mean_similarity() -> None:
    a = recompute(Person("a", aliases=("b",)), faces(4, 1, "a"), S)
    b = recompute(Person("b", merged_into="a"), faces(3, 1, "b"), S)
    view = PersonView.of(a, {"b": b})
    assert view.faces == 7 and view.ids == {"a", "b"}
    members = faces(4, 1, "a") + faces(3, 1, "b")
    weights = np.array([max(f.quality, 0.2) for f in members])
    centroid = view.centroid
    assert centroid is not None
    mean_sim = float(
        np.sum(weights * np.array([f.embedding @ centroid for f in members])) / weights.sum()
    )
    assert view.width == pytest.approx(mean_sim, abs=1e-5)
    assert view.cover == view.exemplars[0].face_id
    assert view.exemplars[0].quality == max(f.quality for f in members)
    other = PersonView.of(recompute(Person("c"), faces(3, 2, "c"), S), {})
    assert width_after_merging(view, other) < view.width


def test_rank_persons_by_centroid() -> None:
    views = [
        PersonView.of(recompute(Person(p), faces(5, seed, p), S), {})
        for p, seed in (("a", 1), ("b", 2), ("c", 3))
    ]
    query = faces(1, 2, "q")[0].embedding  # drawn around b's base
    ranked = rank_persons(query, views, k=3, min_similarity=-1.0)
    assert next(m.person_id for m in ranked) == "b"
    assert [m.similarity for m in ranked] == sorted((m.similarity for m in ranked), reverse=True)
    assert rank_persons(query, views, k=1, min_similarity=-1.0)[0].person_id == "b"
    assert rank_persons(query, views, min_similarity=0.9999) == []
    merged = PersonView.of(recompute(Person("x", merged_into="a"), faces(2), S), {})
    assert all(m.person_id != "x" for m in rank_persons(query, [merged], min_similarity=-1.0))


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_PEOPLE_JOIN_SIMILARITY", "0.97")
    s = load_settings().people
    assert s.join_similarity == 0.97 and s.min_samples == PeopleSettings().min_samples
    monkeypatch.setenv("FACESEARCH_PEOPLE_MIN_SAMPLES", "zero")
    with pytest.raises(ConfigError, match="FACESEARCH_PEOPLE_MIN_SAMPLES"):
        load_settings()
    monkeypatch.delenv("FACESEARCH_PEOPLE_MIN_SAMPLES")
    with pytest.raises(ConfigError):
        load_settings(people_min_support=40, people_neighbours_k=8)
    with pytest.raises(Exception):  # noqa: B017 - frozen
        s.join_similarity = 0.5  # type: ignore[misc]
    for name in PeopleSettings.model_fields:
        assert describe(PeopleSettings, name), f"{name} needs a description"


def test_person_search_over_a_clustered_store() -> None:
    from facesearch.people.corrections import Corrections
    from facesearch.people.representative import load_views
    from tests.unit.people.support import Harness, identity_faces

    faces, labels = identity_faces(3, 4, seed=60)
    h = Harness()
    h.add(faces[:-1])  # the last face is the "selfie"
    selfie = faces[-1]
    wanted = h.assignment()[faces[-2].face_id]
    assert wanted is not None and labels[faces[-2].face_id] == labels[selfie.face_id]
    corrections = Corrections(h.store, h.settings)
    split = corrections.move([faces[-2].face_id, faces[-3].face_id])  # two of its faces apart
    assert split.created_person is not None
    corrections.merge(wanted, [split.created_person])  # and back: now an alias
    views = load_views(h.store)
    assert len(views) == 3  # the merged pair shows as one person
    ranked = rank_persons(selfie.embedding, views, k=5)
    assert ranked and ranked[0].person_id == wanted
    assert ranked[0].faces == 3 and ranked[0].cover is not None
    assert all(m.person_id != split.created_person for m in ranked)
