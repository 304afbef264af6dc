"""Records of the people feature: the clustering view of a face, persons, tombstones
and the correction log. All frozen; stores hand out and take whole records.

Every stored record carries a ``version`` that only the store sets: 0 means "not
stored", the first write makes it 1, each later write adds 1. Decisions are
applied with the versions they read as preconditions (:mod:`.ports`).

``to_dict`` / ``from_dict`` give each record a JSON-able form (embeddings as
little-endian float32 bytes, sums as float64 lists) for adapters that store
documents (Firestore maps, SQLite JSON columns).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
SumVector = npt.NDArray[np.float64]


class Source(StrEnum):
    """Who put a face in its person. The machine never moves a USER face."""

    MACHINE = "machine"
    USER = "user"


class CorrectionKind(StrEnum):
    NAME = "name"  # set or clear a person's name
    MERGE = "merge"  # persons merged into one (user, or machine on density evidence)
    MOVE = "move"  # chosen faces moved to another or a new person (split, assign)
    REJECT = "reject"  # "this face is not that person"
    SPLIT = "split"  # machine width guard moved machine faces out of a too-wide person
    UNDO = "undo"  # reverted an earlier entry


def new_person_id() -> str:
    return uuid.uuid4().hex


def new_correction_id(now: float) -> str:
    """Time-ordered, unique: ``<ns since epoch, 20 digits>-<random>``."""
    return f"{int(now * 1e9):020d}-{uuid.uuid4().hex[:12]}"


def frozen_vector(values: npt.ArrayLike, dtype: type[np.generic] = np.float32) -> Any:
    """A read-only numpy copy (records are shared between threads and must not change)."""
    array = np.array(values, dtype=dtype).reshape(-1)
    array.setflags(write=False)
    return array


def unit(vector: npt.ArrayLike) -> Vector:
    v = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("a face embedding must be a finite, non-zero vector")
    out: Vector = frozen_vector(v / norm)
    return out


@dataclass(frozen=True, slots=True)
class FaceInput:
    """What the clusterer learns about a face from the metadata store."""

    face_id: str
    image_id: str
    embedding: Vector = field(compare=False, repr=False)  # unit float32
    quality: float = 1.0  # 0..1 quality score from the vision pipeline
    seen_at: float = 0.0  # when the photo was taken (or ingested), epoch seconds


@dataclass(frozen=True, slots=True)
class ClusterFace:
    """The clustering view of one face (``person_faces/{face_id}``)."""

    face_id: str
    image_id: str
    embedding: Vector = field(compare=False, repr=False)
    quality: float = 1.0
    seen_at: float = 0.0
    person_id: str | None = None  # may name an alias (merged) person: resolve to its root
    source: Source = Source.MACHINE  # who set person_id
    core: bool = False  # DBSCAN core face (has >= min_samples - 1 linked neighbours)
    link_count: int = 0  # exact for non-core faces; a lower bound once core
    rejected: frozenset[str] = frozenset()  # persons a user said this face is not
    index_version: int = 0  # index manifest version of the face_added applied
    version: int = 0

    @property
    def assigned(self) -> bool:
        return self.person_id is not None

    @classmethod
    def from_input(cls, face: FaceInput, *, index_version: int = 0) -> ClusterFace:
        return cls(
            face_id=face.face_id,
            image_id=face.image_id,
            embedding=face.embedding,
            quality=face.quality,
            seen_at=face.seen_at,
            index_version=index_version,
        )


@dataclass(frozen=True, slots=True)
class Exemplar:
    """One of a person's best-quality faces (kept on the person record)."""

    face_id: str
    quality: float
    seen_at: float


def _zero_sum() -> SumVector:
    out: SumVector = frozen_vector((), np.float64)
    return out


@dataclass(frozen=True, slots=True)
class Person:
    """``persons/{person_id}``. Statistics cover the person's *own* faces only
    (``face.person_id == person_id``); a root's effective view adds its aliases'.

    A person merged into another keeps its record (and its faces keep pointing at
    it) with ``merged_into`` set: that is what makes a merge one small write and
    its undo exact. ``merged_into`` always names a root (aliases never chain).
    """

    person_id: str
    name: str | None = None
    #: free-form JSON a user attached (the API's person metadata); the machine never reads it
    metadata: Mapping[str, Any] = field(default_factory=dict)
    faces: int = 0
    user_faces: int = 0
    weight: float = 0.0  # sum of the own faces' centroid weights
    vector_sum: SumVector = field(default_factory=_zero_sum, compare=False, repr=False)
    exemplars: tuple[Exemplar, ...] = ()  # best quality first, at most representative_faces
    first_seen: float | None = None
    last_seen: float | None = None
    merged_into: str | None = None
    aliases: tuple[str, ...] = ()  # persons merged into this root
    distinct_from: frozenset[str] = frozenset()  # never machine-merge with these
    created_by: Source = Source.MACHINE
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 0

    @property
    def is_root(self) -> bool:
        return self.merged_into is None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A removed face, so that a late or repeated ``face_added`` cannot revive it."""

    face_id: str
    removed_version: int  # index manifest version of the removal (0 = unknown)
    at: float = 0.0
    version: int = 0


@dataclass(frozen=True, slots=True)
class FaceChange:
    """One face's assignment before and after a correction (what undo restores)."""

    face_id: str
    before_person: str | None
    before_source: Source
    after_person: str | None
    after_source: Source
    added_rejection: str | None = None

    @classmethod
    def between(
        cls, before: ClusterFace, after: ClusterFace, rejection: str | None = None
    ) -> FaceChange:
        """The change from ``before`` to ``after`` (``rejection``: the person the face
        was rejected from by the same correction)."""
        return cls(
            before.face_id,
            before.person_id,
            before.source,
            after.person_id,
            after.source,
            rejection,
        )


@dataclass(frozen=True, slots=True)
class Correction:
    """An entry of the correction log (``corrections/{correction_id}``).

    Ids sort by time. Everything undo needs is in the entry itself.
    """

    correction_id: str
    kind: CorrectionKind
    actor: Source
    at: float
    person_id: str | None = None  # the person acted on (merge target, move target, ...)
    faces: tuple[FaceChange, ...] = ()
    merged: tuple[str, ...] = ()  # MERGE: persons merged into person_id
    merged_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # their aliases before
    old_name: str | None = None
    new_name: str | None = None
    created_person: str | None = None  # MOVE/SPLIT into a person created for it
    distinct_added: tuple[tuple[str, str], ...] = ()
    undoes: str | None = None
    undone_by: str | None = None
    note: str = ""
    version: int = 0


# --- dict forms ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one event (or one re-examination, merge or split) did to one face or person."""

    face_id: str
    action: str  # joined, founded, deferred, kept, removed, merged, split, ignored-*
    person_id: str | None = None
    attempts: int = 1
    detail: str = ""


def embedding_to_bytes(vector: npt.ArrayLike) -> bytes:
    return np.asarray(vector, dtype="<f4").reshape(-1).tobytes()


def embedding_from_bytes(data: bytes) -> Vector:
    out: Vector = frozen_vector(np.frombuffer(data, dtype="<f4"))
    return out


def face_to_dict(face: ClusterFace) -> dict[str, Any]:
    return {
        "face_id": face.face_id,
        "image_id": face.image_id,
        "embedding": embedding_to_bytes(face.embedding),
        "quality": float(face.quality),
        "seen_at": float(face.seen_at),
        "person_id": face.person_id,
        "source": str(face.source),
        "core": face.core,
        "link_count": face.link_count,
        "rejected": sorted(face.rejected),
        "index_version": face.index_version,
        "version": face.version,
    }


def face_from_dict(data: Mapping[str, Any]) -> ClusterFace:
    return ClusterFace(
        face_id=data["face_id"],
        image_id=data["image_id"],
        embedding=embedding_from_bytes(bytes(data["embedding"])),
        quality=float(data.get("quality", 1.0)),
        seen_at=float(data.get("seen_at", 0.0)),
        person_id=data.get("person_id"),
        source=Source(data.get("source", Source.MACHINE)),
        core=bool(data.get("core", False)),
        link_count=int(data.get("link_count", 0)),
        rejected=frozenset(data.get("rejected") or ()),
        index_version=int(data.get("index_version", 0)),
        version=int(data.get("version", 0)),
    )


def person_to_dict(person: Person) -> dict[str, Any]:
    return {
        "person_id": person.person_id,
        "name": person.name,
        "metadata": dict(person.metadata),
        "faces": person.faces,
        "user_faces": person.user_faces,
        "weight": person.weight,
        "vector_sum": [float(v) for v in person.vector_sum],
        "exemplars": [[e.face_id, e.quality, e.seen_at] for e in person.exemplars],
        "first_seen": person.first_seen,
        "last_seen": person.last_seen,
        "merged_into": person.merged_into,
        "aliases": list(person.aliases),
        "distinct_from": sorted(person.distinct_from),
        "created_by": str(person.created_by),
        "created_at": person.created_at,
        "updated_at": person.updated_at,
        "version": person.version,
    }


def person_from_dict(data: Mapping[str, Any]) -> Person:
    return Person(
        person_id=data["person_id"],
        name=data.get("name"),
        metadata=dict(data.get("metadata") or {}),
        faces=int(data.get("faces", 0)),
        user_faces=int(data.get("user_faces", 0)),
        weight=float(data.get("weight", 0.0)),
        vector_sum=frozen_vector(data.get("vector_sum") or (), np.float64),
        exemplars=tuple(
            Exemplar(str(f), float(q), float(s)) for f, q, s in data.get("exemplars") or ()
        ),
        first_seen=data.get("first_seen"),
        last_seen=data.get("last_seen"),
        merged_into=data.get("merged_into"),
        aliases=tuple(data.get("aliases") or ()),
        distinct_from=frozenset(data.get("distinct_from") or ()),
        created_by=Source(data.get("created_by", Source.MACHINE)),
        created_at=float(data.get("created_at", 0.0)),
        updated_at=float(data.get("updated_at", 0.0)),
        version=int(data.get("version", 0)),
    )


def tombstone_to_dict(tombstone: Tombstone) -> dict[str, Any]:
    return {
        "face_id": tombstone.face_id,
        "removed_version": tombstone.removed_version,
        "at": tombstone.at,
        "version": tombstone.version,
    }


def tombstone_from_dict(data: Mapping[str, Any]) -> Tombstone:
    return Tombstone(
        face_id=data["face_id"],
        removed_version=int(data.get("removed_version", 0)),
        at=float(data.get("at", 0.0)),
        version=int(data.get("version", 0)),
    )


def _change_to_list(change: FaceChange) -> list[Any]:
    return [
        change.face_id,
        change.before_person,
        str(change.before_source),
        change.after_person,
        str(change.after_source),
        change.added_rejection,
    ]


def correction_to_dict(entry: Correction) -> dict[str, Any]:
    return {
        "correction_id": entry.correction_id,
        "kind": str(entry.kind),
        "actor": str(entry.actor),
        "at": entry.at,
        "person_id": entry.person_id,
        "faces": [_change_to_list(c) for c in entry.faces],
        "merged": list(entry.merged),
        "merged_aliases": [[p, list(a)] for p, a in entry.merged_aliases],
        "old_name": entry.old_name,
        "new_name": entry.new_name,
        "created_person": entry.created_person,
        "distinct_added": [list(pair) for pair in entry.distinct_added],
        "undoes": entry.undoes,
        "undone_by": entry.undone_by,
        "note": entry.note,
        "version": entry.version,
    }


def correction_from_dict(data: Mapping[str, Any]) -> Correction:
    def pairs(items: Iterable[Any]) -> tuple[tuple[str, str], ...]:
        return tuple((str(a), str(b)) for a, b in items)

    return Correction(
        correction_id=data["correction_id"],
        kind=CorrectionKind(data["kind"]),
        actor=Source(data["actor"]),
        at=float(data["at"]),
        person_id=data.get("person_id"),
        faces=tuple(
            FaceChange(f, bp, Source(bs), ap, Source(as_), rej)
            for f, bp, bs, ap, as_, rej in data.get("faces") or ()
        ),
        merged=tuple(data.get("merged") or ()),
        merged_aliases=tuple((str(p), tuple(a)) for p, a in data.get("merged_aliases") or ()),
        old_name=data.get("old_name"),
        new_name=data.get("new_name"),
        created_person=data.get("created_person"),
        distinct_added=pairs(data.get("distinct_added") or ()),
        undoes=data.get("undoes"),
        undone_by=data.get("undone_by"),
        note=str(data.get("note") or ""),
        version=int(data.get("version", 0)),
    )


def with_version(record: Any, version: int) -> Any:
    """The same record with the store's version stamped on it."""
    return replace(record, version=version)
