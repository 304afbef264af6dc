"""A decision's reads: every record read is remembered with its version, so the
apply can carry exactly those versions as preconditions (absent = 0)."""

from __future__ import annotations

from collections.abc import Iterable

from facesearch.errors import NotFound
from facesearch.people.ports import (
    PeopleStore,
    RecordKey,
    correction_key,
    face_key,
    person_key,
    tombstone_key,
)
from facesearch.people.representative import PersonView
from facesearch.people.types import ClusterFace, Correction, Person, Tombstone


class Reads:
    """Reads through ``store`` and records what was seen (``expect``)."""

    def __init__(self, store: PeopleStore) -> None:
        self.store = store
        self.expect: dict[RecordKey, int] = {}
        self.persons_seen: dict[str, Person] = {}
        #: faces as first read (None: absent), so a decision sees one snapshot of each and
        #: reads it from the store once however often its steps ask
        self.faces_seen: dict[str, ClusterFace | None] = {}

    def faces(self, face_ids: Iterable[str]) -> dict[str, ClusterFace]:
        ids = list(dict.fromkeys(face_ids))
        unseen = [f for f in ids if f not in self.faces_seen]
        if unseen:
            found = self.store.get_faces(unseen)
            for face_id in unseen:
                record = found.get(face_id)
                self.expect.setdefault(face_key(face_id), record.version if record else 0)
                self.faces_seen[face_id] = record
        return {f: record for f in ids if (record := self.faces_seen[f]) is not None}

    def face(self, face_id: str) -> ClusterFace | None:
        return self.faces([face_id]).get(face_id)

    def tombstone(self, face_id: str) -> Tombstone | None:
        found = self.store.get_tombstones([face_id])
        record = found.get(face_id)
        self.expect.setdefault(tombstone_key(face_id), record.version if record else 0)
        return record

    def correction(self, correction_id: str) -> Correction | None:
        record = self.store.get_corrections([correction_id]).get(correction_id)
        self.expect.setdefault(correction_key(correction_id), record.version if record else 0)
        return record

    def image_faces(self, image_ids: Iterable[str]) -> list[ClusterFace]:
        faces = self.store.faces_of_images(list(dict.fromkeys(image_ids)))
        for face in faces:
            self.expect.setdefault(face_key(face.face_id), face.version)
            self.faces_seen.setdefault(face.face_id, face)
        return faces

    def persons(self, person_ids: Iterable[str]) -> dict[str, Person]:
        ids = [p for p in dict.fromkeys(person_ids) if p not in self.persons_seen]
        if ids:
            found = self.store.get_persons(ids)
            for person_id in ids:
                record = found.get(person_id)
                self.expect.setdefault(person_key(person_id), record.version if record else 0)
                if record is not None:
                    self.persons_seen[person_id] = record
        return {p: self.persons_seen[p] for p in person_ids if p in self.persons_seen}

    def views(self, person_ids: Iterable[str]) -> tuple[dict[str, str], dict[str, PersonView]]:
        """Resolve person ids to roots (``roots``) and build each root's view."""
        ids = list(dict.fromkeys(person_ids))
        records = self.persons(ids)
        root_ids = {records[p].merged_into or p for p in ids if p in records}
        self.persons(root_ids)
        aliases = {
            a for r in root_ids if r in self.persons_seen for a in self.persons_seen[r].aliases
        }
        self.persons(aliases)
        roots: dict[str, str] = {}
        for person_id in ids:
            record = self.persons_seen.get(person_id)
            if record is None:
                continue
            root = record.merged_into or person_id
            if root in self.persons_seen and self.persons_seen[root].is_root:
                roots[person_id] = root
        views = {
            root: PersonView.of(self.persons_seen[root], self.persons_seen)
            for root in set(roots.values())
        }
        return roots, views

    def root(self, person_id: str) -> PersonView:
        """The person users see under ``person_id`` (its root); :class:`NotFound` if none."""
        roots, views = self.views([person_id])
        if person_id not in roots:
            raise NotFound(f"person {person_id} does not exist")
        return views[roots[person_id]]

    def expect_absent(self, key: RecordKey) -> None:
        self.expect.setdefault(key, 0)
