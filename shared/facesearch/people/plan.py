"""Turn one decision's face moves into a consistent change set.

Every path that changes a face's person (the engine, corrections, undo, the width
guard, repairs) goes through :class:`Plan`, so person statistics always follow
their faces: moving a face subtracts it from its old person record and adds it to
the new one, in the same atomic apply. A face that carries rejections marks the
person it enters as distinct from the persons it rejected. Exemplars and first/last seen that a
removal invalidates are refilled from the person's own faces before the apply.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace

from facesearch.errors import StaleRead, TransientError
from facesearch.people.ports import (
    ChangeSet,
    PeopleStore,
    correction_key,
    face_key,
    faces_of,
    person_key,
    tombstone_key,
)
from facesearch.people.reads import Reads
from facesearch.people.representative import add_face, refill, remove_face
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace, Correction, Person, Tombstone

_DELETED = object()


class Plan:
    def __init__(self, reads: Reads, settings: PeopleSettings, reason: str) -> None:
        self.reads = reads
        self.settings = settings
        self.reason = reason
        self._faces: dict[str, ClusterFace | None] = {}
        self._persons: dict[str, Person | None] = {}
        self._tombstones: dict[str, Tombstone] = {}
        self._corrections: dict[str, Correction] = {}
        self._refill: set[str] = set()

    # --- persons -----------------------------------------------------------------------

    def person(self, person_id: str) -> Person | None:
        if person_id in self._persons:
            return self._persons[person_id]
        return self.reads.persons([person_id]).get(person_id)

    def put_person(self, person: Person) -> None:
        if person.person_id not in self._persons:
            self.reads.persons([person.person_id])  # record the version we build on
        self._persons[person.person_id] = person

    def delete_person(self, person_id: str) -> None:
        self.reads.persons([person_id])
        self._persons[person_id] = None

    # --- faces -------------------------------------------------------------------------

    def face(self, face_id: str) -> ClusterFace | None:
        if face_id in self._faces:
            return self._faces[face_id]
        return self.reads.face(face_id)

    def put_face(self, before: ClusterFace | None, after: ClusterFace) -> None:
        """Write ``after``; person statistics move from before's person to after's."""
        self._move_stats(before, after)
        self._faces[after.face_id] = after

    def delete_face(self, before: ClusterFace) -> None:
        self._move_stats(before, None)
        self._faces[before.face_id] = None

    def _move_stats(self, before: ClusterFace | None, after: ClusterFace | None) -> None:
        old = before.person_id if before is not None else None
        new = after.person_id if after is not None else None
        same_source = before is not None and after is not None and before.source is after.source
        if old == new and (old is None or same_source):
            return
        if before is not None and old is not None:
            person = self.person(old)
            if person is not None:
                updated, needs_refill = remove_face(person, before, self.settings)
                self.put_person(updated)
                if needs_refill:
                    self._refill.add(old)
        if after is not None and new is not None:
            person = self.person(new)
            if person is None:
                raise LookupError(
                    f"{self.reason}: face {after.face_id} moves to unknown person {new}"
                )
            # a person holding a face that is "not P" is not P: the machine never merges them
            marks = after.rejected - {new} - person.distinct_from
            if marks:
                person = replace(person, distinct_from=person.distinct_from | marks)
            self.put_person(add_face(person, after, self.settings))

    # --- others -------------------------------------------------------------------------

    def put_tombstone(self, tombstone: Tombstone) -> None:
        self._tombstones[tombstone.face_id] = tombstone

    def put_correction(self, entry: Correction) -> None:
        self._corrections[entry.correction_id] = entry

    @property
    def empty(self) -> bool:
        return not (self._faces or self._persons or self._tombstones or self._corrections)

    def planned_persons(self) -> dict[str, Person | None]:
        return dict(self._persons)

    # --- build ---------------------------------------------------------------------------

    def _own_faces(self, person_id: str) -> list[ClusterFace]:
        """The person's own faces after this plan (store state + planned moves)."""
        out = {face.face_id: face for face in faces_of(self.reads.store, person_id)}
        for face_id, planned in self._faces.items():
            if planned is None or planned.person_id != person_id:
                out.pop(face_id, None)
            else:
                out[face_id] = planned
        return list(out.values())

    def change_set(self) -> ChangeSet:
        for person_id in sorted(self._refill):
            person = self._persons.get(person_id)
            if person is not None:
                self._persons[person_id] = refill(person, self._own_faces(person_id), self.settings)
        expect = dict(self.reads.expect)
        for face_id in self._faces:
            expect.setdefault(face_key(face_id), 0)
        for person_id in self._persons:
            expect.setdefault(person_key(person_id), 0)
        for face_id in self._tombstones:
            expect.setdefault(tombstone_key(face_id), 0)
        for correction_id in self._corrections:
            expect.setdefault(correction_key(correction_id), 0)
        return ChangeSet(
            expect=expect,
            put_faces=tuple(f for f in self._faces.values() if f is not None),
            delete_faces=tuple(k for k, f in self._faces.items() if f is None),
            put_persons=tuple(p for p in self._persons.values() if p is not None),
            delete_persons=tuple(k for k, p in self._persons.items() if p is None),
            put_tombstones=tuple(self._tombstones.values()),
            put_corrections=tuple(self._corrections.values()),
            reason=self.reason,
        )


def stamp(person: Person, now: float) -> Person:
    return replace(person, updated_at=now, created_at=person.created_at or now)


#: longest pause between two attempts of one decision (seconds)
MAX_BACKOFF_S = 0.5


def backoff(attempt: int) -> None:
    """Sleep before re-reading after a lost race: random ("full jitter"), growing
    exponentially up to :data:`MAX_BACKOFF_S`. Two instances handed the same event at the
    same moment (Pub/Sub redelivery, or two subscriptions) otherwise retry in lockstep:
    with Firestore's lock-based transactions each abort the other until they give up."""
    time.sleep(random.uniform(0, min(MAX_BACKOFF_S, 0.01 * 2**attempt)))


def apply_step(
    store: PeopleStore, settings: PeopleSettings, what: str, step: Callable[[Reads], Plan | None]
) -> None:
    """Read, decide (``step`` returns the plan, or None when there is nothing to do) and
    apply; a racing writer makes it re-read and re-decide, up to ``apply_attempts``."""
    for attempt in range(1, settings.apply_attempts + 1):
        plan = step(Reads(store))
        if plan is None or plan.empty:
            return
        try:
            store.apply(plan.change_set())
        except StaleRead:
            backoff(attempt)
            continue
        return
    raise TransientError(f"{what}: the records kept changing; try again")
