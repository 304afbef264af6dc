"""Synthetic identities and an in-memory clusterer harness for the people tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from facesearch.people.engine import PeopleEngine
from facesearch.people.memory import MemoryFaceSource, MemoryNeighbourSearch, MemoryPeopleStore
from facesearch.people.representative import PersonView
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace, FaceInput, Outcome, Source, unit

DIMS = 32


def identity_faces(
    identities: int,
    per_identity: int | Sequence[int],
    *,
    seed: int = 0,
    dims: int = DIMS,
    spread: float = 0.12,
    separation: float = 1.0,
    prefix: str = "img",
) -> tuple[list[FaceInput], dict[str, int]]:
    """Faces of well separated identities, one face per image; returns (faces, labels).

    Identity centres are random directions (pairwise cosine ~ 0 +- 1/sqrt(dims));
    a face is its centre plus noise of norm ~``spread``, so genuine pairs sit near
    cosine 1 - spread^2 and impostors far below any threshold.
    """
    rng = np.random.default_rng(seed)
    sizes = [per_identity] * identities if isinstance(per_identity, int) else list(per_identity)
    faces: list[FaceInput] = []
    labels: dict[str, int] = {}
    counter = itertools.count()
    for ident, size in enumerate(sizes):
        centre = rng.normal(size=dims) * separation
        centre /= np.linalg.norm(centre)
        for _ in range(size):
            noise = rng.normal(size=dims) * spread / np.sqrt(dims)
            n = next(counter)
            face = FaceInput(
                f"{prefix}{n}:0",
                f"{prefix}{n}",
                unit(centre + noise),
                0.5 + 0.5 * rng.random(),
                float(n),
            )
            faces.append(face)
            labels[face.face_id] = ident
    return faces, labels


def blend(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """A unit vector part way from a to b (0 = a)."""
    return unit((1 - t) * a + t * b)


@dataclass
class Harness:
    settings: PeopleSettings = field(default_factory=PeopleSettings)
    dims: int = DIMS
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        self.store = MemoryPeopleStore(latency_s=self.latency_s)
        self.search = MemoryNeighbourSearch(self.dims)
        self.source = MemoryFaceSource()
        self.version = 0
        self.ids = itertools.count()
        self.engine = self.new_engine()

    def new_engine(self) -> PeopleEngine:
        return PeopleEngine(
            self.store,
            self.search,
            self.source,
            self.settings,
            new_id=lambda: f"p{next(self.ids):05d}",
        )

    def index(self, faces: Iterable[FaceInput]) -> int:
        """What ingest + the indexer do before a face_added event: returns its version."""
        faces = list(faces)
        for face in faces:
            self.source.put(face)
        self.search.add([f.face_id for f in faces], np.stack([f.embedding for f in faces]))
        self.version += 1
        return self.version

    def unindex(self, face_ids: Sequence[str]) -> int:
        for face_id in face_ids:
            self.source.delete(face_id)
        self.search.remove(face_ids)
        self.version += 1
        return self.version

    def add(self, faces: Sequence[FaceInput]) -> list[Outcome]:
        version = self.index(faces)
        return self.engine.face_added([f.face_id for f in faces], manifest_version=version)

    def remove(self, face_ids: Sequence[str]) -> list[Outcome]:
        version = self.unindex(face_ids)
        return self.engine.face_removed(face_ids, manifest_version=version)

    # --- views ---------------------------------------------------------------------------

    def faces(self) -> dict[str, ClusterFace]:
        out: dict[str, ClusterFace] = {}
        cursor = None
        while True:
            page = self.store.list_faces(cursor=cursor, limit=1000)
            out.update((f.face_id, f) for f in page.items)
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    def root_of(self, face: ClusterFace) -> str | None:
        if face.person_id is None:
            return None
        person = self.store.get_persons([face.person_id])[face.person_id]
        return person.merged_into or person.person_id

    def assignment(self) -> dict[str, str | None]:
        return {f: self.root_of(face) for f, face in self.faces().items()}

    def view(self, person_id: str) -> PersonView:
        person = self.store.get_persons([person_id])[person_id]
        root = self.store.get_persons([person.merged_into or person_id])[
            person.merged_into or person_id
        ]
        return PersonView.of(root, self.store.get_persons(root.aliases))


def partition(assignment: dict[str, str | None]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for face, person in assignment.items():
        if person is not None:
            groups.setdefault(person, set()).add(face)
    return {frozenset(g) for g in groups.values()}


def check_invariants(h: Harness) -> None:
    """Store-wide invariants every test can assert."""
    faces = h.faces()
    persons = {}
    cursor = None
    while True:
        page = h.store.list_persons(roots_only=False, cursor=cursor, limit=1000)
        persons.update((p.person_id, p) for p in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    # statistics follow faces
    for person in persons.values():
        own = [f for f in faces.values() if f.person_id == person.person_id]
        assert person.faces == len(own), (person.person_id, person.faces, len(own))
        assert person.user_faces == sum(1 for f in own if f.source is Source.USER)
        if own:
            total = sum(
                max(f.quality, h.settings.quality_weight_floor) * f.embedding.astype(np.float64)
                for f in own
            )
            assert np.allclose(person.vector_sum, total, atol=1e-6)
        if person.merged_into is not None:
            root = persons[person.merged_into]
            assert root.merged_into is None, "aliases never chain"
            assert person.person_id in root.aliases
    for face in faces.values():
        if face.person_id is not None:
            assert face.person_id in persons, f"{face.face_id} points at a missing person"
    # cannot-link: two faces of one image are never one person (unless a user put them there)
    by_image: dict[str, list[ClusterFace]] = {}
    for face in faces.values():
        by_image.setdefault(face.image_id, []).append(face)
    for image_faces in by_image.values():
        machine_roots = [
            h.root_of(f) for f in image_faces if f.person_id and f.source is Source.MACHINE
        ]
        all_roots = [h.root_of(f) for f in image_faces if f.person_id]
        for root in machine_roots:
            assert all_roots.count(root) == 1, (
                f"cannot-link broken in image {image_faces[0].image_id}"
            )
