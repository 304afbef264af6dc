"""A re-cluster's result written to the people store next to live traffic.

The re-cluster (:mod:`.recluster`) decides from a snapshot; by the time it writes,
the event-driven clusterer or a user may have changed some of what it read. So
every write here is a chunk of at most :data:`FACE_CHUNK` records in one atomic
apply with the snapshot's versions as preconditions: a chunk that meets a changed
face is retried without the faces that changed (they are left as they are now,
and counted). Person statistics are then recomputed from the stored faces, person
by person, each with its record's version as the precondition — statistics
always follow the faces actually stored, whoever wrote them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from facesearch.errors import StaleRead
from facesearch.people.ports import (
    ChangeSet,
    PeopleStore,
    face_key,
    faces_of,
    person_key,
    tombstone_key,
)
from facesearch.people.representative import recompute
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace, Person, Source, Tombstone

#: faces written per apply
FACE_CHUNK = 450


def create_persons(store: PeopleStore, person_ids: Sequence[str], *, now: float) -> None:
    """Empty machine persons for the clusters that matched no old person (their faces
    follow; the statistics come last)."""
    for start in range(0, len(person_ids), FACE_CHUNK):
        batch_ids = person_ids[start : start + FACE_CHUNK]
        store.apply(
            ChangeSet(
                expect={person_key(pid): 0 for pid in batch_ids},
                put_persons=tuple(
                    Person(pid, created_by=Source.MACHINE, created_at=now, updated_at=now)
                    for pid in batch_ids
                ),
                reason="recluster: new persons",
            )
        )


def remove_faces(
    store: PeopleStore, removed: Sequence[str], stored: Mapping[str, ClusterFace], *, now: float
) -> int:
    """Delete faces the metadata store no longer has, leaving tombstones (a late
    ``face_added`` then stays ignored); returns how many were skipped as changed."""
    skipped = 0
    for start in range(0, len(removed), FACE_CHUNK):
        gone = removed[start : start + FACE_CHUNK]
        expect = {face_key(f): stored[f].version for f in gone}
        tombs = store.get_tombstones(gone)
        expect.update({tombstone_key(f): tombs[f].version if f in tombs else 0 for f in gone})
        try:
            store.apply(
                ChangeSet(
                    expect=expect,
                    delete_faces=tuple(gone),
                    put_tombstones=tuple(
                        Tombstone(f, tombs[f].removed_version if f in tombs else 0, now)
                        for f in gone
                    ),
                    reason="recluster: faces gone from the metadata store",
                )
            )
        except StaleRead:
            skipped += len(gone)
    return skipped


def write_faces(
    store: PeopleStore, targets: Mapping[str, ClusterFace], stored: Mapping[str, ClusterFace]
) -> tuple[int, int]:
    """Write the faces' new records, in face-id order; returns (written, skipped because
    another writer changed them since the snapshot)."""
    written = skipped = 0
    order = sorted(targets)
    for start in range(0, len(order), FACE_CHUNK):
        chunk = [targets[f] for f in order[start : start + FACE_CHUNK]]
        while chunk:
            expect = {
                face_key(f.face_id): stored[f.face_id].version if f.face_id in stored else 0
                for f in chunk
            }
            try:
                store.apply(
                    ChangeSet(expect=expect, put_faces=tuple(chunk), reason="recluster: faces")
                )
                written += len(chunk)
                break
            except StaleRead:
                now_faces = store.get_faces(f.face_id for f in chunk)
                keep = []
                for f in chunk:
                    current = now_faces.get(f.face_id)
                    expected = stored[f.face_id].version if f.face_id in stored else 0
                    if (current.version if current else 0) == expected:
                        keep.append(f)
                    else:
                        skipped += 1
                chunk = keep
    return written, skipped


def refresh_statistics(
    store: PeopleStore,
    settings: PeopleSettings,
    persons: Mapping[str, Person],
    retire: Iterable[str],
) -> None:
    """Recompute every person's statistics from its stored faces; a person in ``retire``
    (an old person no cluster kept) or an alias of one is deleted if it is left empty
    and unnamed."""
    retired = set(retire)
    for person_id in sorted(persons):
        record = persons[person_id]
        _refresh_person(
            store,
            person_id,
            settings,
            retire_if_empty=person_id in retired or record.merged_into in retired,
        )


def _refresh_person(
    store: PeopleStore, person_id: str, settings: PeopleSettings, *, retire_if_empty: bool
) -> None:
    for _ in range(settings.apply_attempts):
        person = store.get_persons([person_id]).get(person_id)
        if person is None:
            return
        faces = list(faces_of(store, person_id, page_size=5000))
        expect = {person_key(person_id): person.version}
        if not faces and retire_if_empty and person.name is None:
            changes = ChangeSet(
                expect=expect, delete_persons=(person_id,), reason="recluster: retire"
            )
        else:
            updated = recompute(person, faces, settings)
            marks = frozenset().union(*(f.rejected for f in faces)) - {person_id}
            if marks - updated.distinct_from:
                updated = replace(updated, distinct_from=updated.distinct_from | marks)
            if _same_stats(updated, person):
                return
            changes = ChangeSet(
                expect=expect, put_persons=(updated,), reason="recluster: statistics"
            )
        try:
            store.apply(changes)
            return
        except StaleRead:
            continue


def _same_stats(a: Person, b: Person) -> bool:
    return (
        a.faces == b.faces
        and a.user_faces == b.user_faces
        and abs(a.weight - b.weight) < 1e-9
        and a.exemplars == b.exemplars
        and a.first_seen == b.first_seen
        and a.last_seen == b.last_seen
        and len(a.vector_sum) == len(b.vector_sum)
        and (not len(a.vector_sum) or bool(np.allclose(a.vector_sum, b.vector_sum, atol=1e-9)))
    )
