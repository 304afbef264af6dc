"""Persons from before clustering, absorbed: manual persons and face labels.

Before the people feature a person was a name a user created, and faces were labelled
with it one by one (a ``persons`` record with ``name`` and ``metadata``; a
``person_id`` on the face record). There is one notion of person now, so each old
person becomes a *user-created* person (its id, name and metadata kept) and each
labelled face a *user-assigned* face of it: the machine never moves such a face, and
re-clustering keeps the person because it is named.

The embedded SQLite file does this once, when it is migrated to schema 3
(:func:`facesearch.storage.local.people.absorb_legacy`); a Firestore deployment when
``facesearch persons recluster`` first runs after the upgrade (the job reads the old
documents through :meth:`FirestorePeopleStore.legacy`). Idempotent: an absorbed person
is a versioned record and is not absorbed again; labels on faces the clusterer already
placed are applied as moves (:meth:`Corrections.move`), so statistics stay exact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from facesearch.errors import NotFound
from facesearch.logs import log_fields
from facesearch.people.adapters import face_input
from facesearch.people.corrections import Corrections
from facesearch.people.plan import Plan, apply_step, stamp
from facesearch.people.ports import PeopleStore
from facesearch.people.reads import Reads
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace, FaceInput, Person, Source
from facesearch.storage.metadata import MetadataStore

logger = logging.getLogger(__name__)

#: labelled faces written per apply (each adds one face record; the person is one more)
FACE_CHUNK = 400


@dataclass(frozen=True)
class LegacyPerson:
    """An old manual person as it was stored."""

    person_id: str
    name: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def of(cls, person_id: str, data: Mapping[str, Any]) -> LegacyPerson:
        """One from its stored fields (the same on both adapters; missing ones read as empty)."""
        return cls(
            person_id,
            str(data.get("name") or ""),
            dict(data.get("metadata") or {}),
            float(data.get("created_at") or 0.0),
            float(data.get("updated_at") or 0.0),
        )


@dataclass
class Absorbed:
    persons: int = 0
    faces: int = 0
    moved: int = 0  # labels of faces the clusterer had placed already
    missing: int = 0  # labels of faces the metadata store no longer has


def absorb(
    store: PeopleStore,
    persons: Sequence[LegacyPerson],
    labels: Mapping[str, str],
    faces: Mapping[str, FaceInput],
    settings: PeopleSettings,
    *,
    clock: Callable[[], float] = time.time,
) -> Absorbed:
    """Make ``persons`` user-created persons holding their labelled faces.

    ``labels`` maps face id -> old person id; ``faces`` holds the metadata store's
    faces (a label whose face is gone is skipped). Labels naming no old person are
    skipped too (the old store refused them; nothing can be restored for them).
    """
    report = Absorbed()
    by_person: dict[str, list[str]] = {}
    for face_id, person_id in sorted(labels.items()):
        if face_id in faces:
            by_person.setdefault(person_id, []).append(face_id)
        else:
            report.missing += 1
    corrections = Corrections(store, settings, clock=clock)
    for legacy in persons:
        _person(store, settings, legacy, clock())
        report.persons += 1
        face_ids = by_person.get(legacy.person_id, [])
        placed: list[str] = []
        for start in range(0, len(face_ids), FACE_CHUNK):
            chunk = face_ids[start : start + FACE_CHUNK]
            placed += _faces(store, settings, legacy.person_id, chunk, faces)
        report.faces += len(face_ids) - len(placed)
        step = settings.max_faces_per_correction
        for start in range(0, len(placed), step):
            corrections.move(placed[start : start + step], to_person=legacy.person_id)
            report.moved += len(placed[start : start + step])
    if report.persons or report.missing:
        logger.info("legacy persons absorbed", extra=log_fields(**vars(report)))
    return report


def _person(store: PeopleStore, settings: PeopleSettings, legacy: LegacyPerson, now: float) -> None:
    """The person record: created, or an unversioned old document rewritten."""

    def step(reads: Reads) -> Plan | None:
        current = reads.persons([legacy.person_id]).get(legacy.person_id)
        if current is not None and current.version > 0:
            return None  # absorbed already
        plan = Plan(reads, settings, f"absorb person {legacy.person_id}")
        plan.put_person(
            stamp(
                Person(
                    legacy.person_id,
                    name=legacy.name,
                    metadata=dict(legacy.metadata),
                    created_by=Source.USER,
                    created_at=legacy.created_at or now,
                ),
                legacy.updated_at or now,
            )
        )
        return plan

    apply_step(store, settings, f"absorb person {legacy.person_id}", step)


def _faces(
    store: PeopleStore,
    settings: PeopleSettings,
    person_id: str,
    face_ids: list[str],
    faces: Mapping[str, FaceInput],
) -> list[str]:
    """Add the labelled faces the people store does not hold yet, user-assigned; returns
    the ones it holds (the clusterer saw them first: the caller moves those)."""
    present: list[str] = []

    def step(reads: Reads) -> Plan:
        stored = reads.faces(face_ids)
        tombs = {f for f in face_ids if f not in stored and reads.tombstone(f) is not None}
        present[:] = sorted(stored)
        plan = Plan(reads, settings, f"absorb labels of {person_id}")
        if plan.person(person_id) is None:
            raise NotFound(f"person {person_id} vanished while its labels were absorbed")
        for face_id in face_ids:
            if face_id in stored or face_id in tombs:
                continue
            face = ClusterFace.from_input(faces[face_id])
            plan.put_face(None, replace(face, person_id=person_id, source=Source.USER))
        return plan

    apply_step(store, settings, f"absorb labels of {person_id}", step)
    return present


@runtime_checkable
class LegacyDocuments(Protocol):
    """A people store that can still hold documents from before clustering (Firestore:
    the old person documents share the ``persons`` collection; labels sit on faces)."""

    def legacy(self) -> tuple[list[LegacyPerson], dict[str, str]]: ...

    def clear_legacy_labels(self, face_ids: Iterable[str]) -> None: ...


def absorb_documents(
    store: PeopleStore, metadata: MetadataStore, settings: PeopleSettings
) -> Absorbed:
    """Absorb whatever old persons and labels ``store`` still holds (nothing for a store
    that never had any), then remove the labels from the face documents."""
    if not isinstance(store, LegacyDocuments):
        return Absorbed()
    persons, labels = store.legacy()
    if not persons and not labels:
        return Absorbed()
    faces = {face_id: face_input(r) for face_id, r in metadata.get_faces(sorted(labels)).items()}
    report = absorb(store, persons, labels, faces, settings)
    store.clear_legacy_labels(f for f in labels if f in faces)
    return report
