"""Person statistics, the effective view of a person, and person search.

A person's representative is its **quality-weighted centroid**: each own face adds
``w * x`` to ``vector_sum`` and ``w`` to ``weight`` with ``w = max(quality, floor)``.
Sums make every update O(1) and exact in both directions (join, leave, merge,
undo), and give the person's width for free: the mean similarity of its faces to
the centroid is ``|vector_sum| / weight`` (the mean resultant length), which is
what the width guard bounds. Alongside, each record keeps its best-quality faces
(``exemplars``, at most ``representative_faces``; the first is the cover) and the
first/last time it was seen. Removing a face that is an exemplar or a first/last
boundary needs the person's own faces to refill (the engine reads them; expected
cost is O(representative_faces) reads per removal, since a random face is an
exemplar with probability cap/n).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from facesearch.people.ports import PeopleStore, every_person
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import (
    ClusterFace,
    Exemplar,
    Person,
    Source,
    SumVector,
    Vector,
    frozen_vector,
)


def face_weight(quality: float, settings: PeopleSettings) -> float:
    return max(float(quality), settings.quality_weight_floor)


def _exemplar_key(e: Exemplar) -> tuple[float, str]:
    return (-e.quality, e.face_id)


def _add_vectors(total: SumVector, vector: npt.ArrayLike, sign: float) -> SumVector:
    v = np.asarray(vector, dtype=np.float64)
    base = total if len(total) else np.zeros(len(v), dtype=np.float64)
    out: SumVector = frozen_vector(base + sign * v, np.float64)
    return out


def add_face(person: Person, face: ClusterFace, settings: PeopleSettings) -> Person:
    """``person`` with ``face`` counted among its own faces (face.source says who put it)."""
    w = face_weight(face.quality, settings)
    exemplars = sorted(
        (*person.exemplars, Exemplar(face.face_id, float(face.quality), float(face.seen_at))),
        key=_exemplar_key,
    )[: settings.representative_faces]
    return replace(
        person,
        faces=person.faces + 1,
        user_faces=person.user_faces + (1 if face.source is Source.USER else 0),
        weight=person.weight + w,
        vector_sum=_add_vectors(person.vector_sum, w * face.embedding.astype(np.float64), 1.0),
        exemplars=tuple(exemplars),
        first_seen=face.seen_at
        if person.first_seen is None
        else min(person.first_seen, face.seen_at),
        last_seen=face.seen_at if person.last_seen is None else max(person.last_seen, face.seen_at),
    )


def without_faces(person: Person) -> Person:
    """``person`` with every statistic of its faces at zero (its identity, name, links
    and constraints kept): where a person's last face leaves and where recompute starts."""
    return replace(
        person,
        faces=0,
        user_faces=0,
        weight=0.0,
        vector_sum=frozen_vector((), np.float64),
        exemplars=(),
        first_seen=None,
        last_seen=None,
    )


def remove_face(person: Person, face: ClusterFace, settings: PeopleSettings) -> tuple[Person, bool]:
    """``person`` without ``face``; the flag says exemplars/first/last need a refill."""
    w = face_weight(face.quality, settings)
    faces = person.faces - 1
    if faces <= 0:
        return without_faces(person), False
    exemplars = tuple(e for e in person.exemplars if e.face_id != face.face_id)
    refill = (len(exemplars) < len(person.exemplars) and faces > len(exemplars)) or (
        face.seen_at in (person.first_seen, person.last_seen)
    )
    return (
        replace(
            person,
            faces=faces,
            user_faces=max(0, person.user_faces - (1 if face.source is Source.USER else 0)),
            weight=max(0.0, person.weight - w),
            vector_sum=_add_vectors(person.vector_sum, w * face.embedding.astype(np.float64), -1.0),
            exemplars=exemplars,
        ),
        refill,
    )


def refill(person: Person, own_faces: Iterable[ClusterFace], settings: PeopleSettings) -> Person:
    """Exemplars and first/last seen recomputed from the person's own faces."""
    faces = list(own_faces)
    exemplars = sorted(
        (Exemplar(f.face_id, float(f.quality), float(f.seen_at)) for f in faces),
        key=_exemplar_key,
    )[: settings.representative_faces]
    times = [f.seen_at for f in faces]
    return replace(
        person,
        exemplars=tuple(exemplars),
        first_seen=min(times) if times else None,
        last_seen=max(times) if times else None,
    )


def recompute(person: Person, own_faces: Iterable[ClusterFace], settings: PeopleSettings) -> Person:
    """Every statistic of ``person`` from scratch (re-cluster, repairs)."""
    faces = list(own_faces)
    blank = without_faces(person)
    if not faces:
        return blank
    weights = np.array([face_weight(f.quality, settings) for f in faces], dtype=np.float64)
    matrix = np.stack([f.embedding for f in faces]).astype(np.float64)
    base = replace(
        blank,
        faces=len(faces),
        user_faces=sum(1 for f in faces if f.source is Source.USER),
        weight=float(weights.sum()),
        vector_sum=frozen_vector(weights @ matrix, np.float64),
    )
    return refill(base, faces, settings)


@dataclass(frozen=True)
class PersonView:
    """A root person together with the persons merged into it: what users see as one."""

    root: Person
    members: tuple[Person, ...]  # the root first, then its aliases that exist

    @classmethod
    def of(cls, root: Person, records: Mapping[str, Person]) -> PersonView:
        aliases = tuple(records[a] for a in root.aliases if a in records)
        return cls(root, (root, *aliases))

    @property
    def person_id(self) -> str:
        return self.root.person_id

    @property
    def name(self) -> str | None:
        return self.root.name

    @property
    def faces(self) -> int:
        return sum(p.faces for p in self.members)

    @property
    def user_faces(self) -> int:
        return sum(p.user_faces for p in self.members)

    @property
    def weight(self) -> float:
        return sum(p.weight for p in self.members)

    @property
    def vector_sum(self) -> SumVector:
        parts = [p.vector_sum for p in self.members if len(p.vector_sum)]
        if not parts:
            out: SumVector = frozen_vector((), np.float64)
            return out
        total: SumVector = np.sum(parts, axis=0)
        return total

    @property
    def centroid(self) -> Vector | None:
        total = self.vector_sum
        norm = float(np.linalg.norm(total)) if len(total) else 0.0
        if norm == 0.0:
            return None
        out: Vector = (total / norm).astype(np.float32)
        return out

    @property
    def width(self) -> float:
        """Mean face-to-centroid similarity (1.0 for an empty or one-face person)."""
        return mean_similarity(self.vector_sum, self.weight)

    @property
    def exemplars(self) -> tuple[Exemplar, ...]:
        every = sorted((e for p in self.members for e in p.exemplars), key=_exemplar_key)
        return tuple(every)

    @property
    def cover(self) -> str | None:
        best = self.exemplars
        return best[0].face_id if best else None

    @property
    def first_seen(self) -> float | None:
        times = [p.first_seen for p in self.members if p.first_seen is not None]
        return min(times) if times else None

    @property
    def last_seen(self) -> float | None:
        times = [p.last_seen for p in self.members if p.last_seen is not None]
        return max(times) if times else None

    @property
    def distinct_from(self) -> frozenset[str]:
        return frozenset().union(*(p.distinct_from for p in self.members))

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(p.person_id for p in self.members)

    @property
    def confirmed(self) -> bool:
        """Named or holding user-assigned faces: a person a user has vouched for."""
        return self.name is not None or self.user_faces > 0


def mean_similarity(vector_sum: npt.ArrayLike, weight: float) -> float:
    total = np.asarray(vector_sum, dtype=np.float64)
    if weight <= 0.0 or not len(total):
        return 1.0
    return min(1.0, float(np.linalg.norm(total)) / weight)


def similarity_to(vector_sum: npt.ArrayLike, embedding: npt.ArrayLike) -> float:
    """Cosine similarity of a unit embedding to the direction of a weighted sum."""
    total = np.asarray(vector_sum, dtype=np.float64)
    norm = float(np.linalg.norm(total)) if len(total) else 0.0
    if norm == 0.0:
        return -1.0
    return float(np.dot(total, np.asarray(embedding, dtype=np.float64)) / norm)


def sum_after_adding(
    view: PersonView | None, face: ClusterFace, settings: PeopleSettings
) -> npt.NDArray[np.float64]:
    """The person's weighted vector sum with ``face`` added (``view`` None: a new person)."""
    total = view.vector_sum if view is not None and len(view.vector_sum) else 0.0
    return total + face_weight(face.quality, settings) * face.embedding.astype(np.float64)


def width_after_adding(view: PersonView, face: ClusterFace, settings: PeopleSettings) -> float:
    total = sum_after_adding(view, face, settings)
    return mean_similarity(total, view.weight + face_weight(face.quality, settings))


def width_after_merging(a: PersonView, b: PersonView) -> float:
    sa, sb = a.vector_sum, b.vector_sum
    if not len(sa) or not len(sb):
        return mean_similarity(sa if len(sa) else sb, a.weight + b.weight)
    return mean_similarity(sa + sb, a.weight + b.weight)


def centroid_similarity(a: PersonView, b: PersonView) -> float:
    ca, cb = a.centroid, b.centroid
    if ca is None or cb is None:
        return -1.0
    return float(np.dot(ca.astype(np.float64), cb.astype(np.float64)))


# --- person search -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonMatch:
    person_id: str
    similarity: float  # query face to the person's centroid
    name: str | None
    faces: int
    cover: str | None


def rank_persons(
    query: npt.ArrayLike,
    views: Sequence[PersonView],
    *,
    k: int = 10,
    min_similarity: float | None = None,
    settings: PeopleSettings | None = None,
) -> list[PersonMatch]:
    """Persons ranked by their centroid's similarity to a query face (a selfie).

    Brute force over the given centroids (a collection has far fewer persons than
    faces; at 100 000 persons this is one 100 000 x d matrix product). Ties break
    by more faces, then person id.
    """
    settings = settings or PeopleSettings()
    threshold = settings.person_match_similarity if min_similarity is None else min_similarity
    usable: list[tuple[PersonView, Vector]] = []
    for view in views:
        centroid = view.centroid
        if view.root.is_root and centroid is not None:
            usable.append((view, centroid))
    if not usable or k < 1:
        return []
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    matrix = np.stack([c for _, c in usable])
    sims = matrix @ q
    order = sorted(
        range(len(usable)),
        key=lambda i: (-float(sims[i]), -usable[i][0].faces, usable[i][0].person_id),
    )
    out: list[PersonMatch] = []
    for i in order:
        if float(sims[i]) < threshold or len(out) >= k:
            break
        view = usable[i][0]
        out.append(PersonMatch(view.person_id, float(sims[i]), view.name, view.faces, view.cover))
    return out


def load_views(store: PeopleStore) -> list[PersonView]:
    """Every root person of a store with its aliases (for person search and listings)."""
    records = {p.person_id: p for p in every_person(store)}
    return [PersonView.of(p, records) for p in records.values() if p.is_root]
