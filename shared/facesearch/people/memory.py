"""An in-memory :class:`~.ports.PeopleStore`: the reference implementation of the contract.

Used by the unit tests, the benchmark and as the executable definition of what the
SQLite and Firestore adapters must do. One lock makes :meth:`apply` atomic and
serialisable; reads take the lock only long enough to copy references (records are
immutable), so, like the real stores, two reads may see different moments.

``latency_s`` sleeps (outside the lock) in every read and before every apply, so
racing threads interleave their read-decide-apply cycles the way two Cloud Run
instances would.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from facesearch.errors import StaleRead
from facesearch.people.ports import (
    ChangeSet,
    Kind,
    Neighbour,
    PeopleCounts,
    PeoplePurged,
    RecordKey,
)
from facesearch.people.types import ClusterFace, Correction, FaceInput, Person, Tombstone
from facesearch.storage.paging import Page, decode_cursor, encode_cursor

MAX_PAGE = 5000
R = TypeVar("R")


class MemoryPeopleStore:
    def __init__(self, *, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._faces: dict[str, ClusterFace] = {}
        self._persons: dict[str, Person] = {}
        self._tombstones: dict[str, Tombstone] = {}
        self._corrections: dict[str, Correction] = {}
        self._by_image: dict[str, set[str]] = {}
        self._by_person: dict[str, set[str]] = {}
        self._sorted_faces: list[str] | None = None
        #: counters for tests and benchmarks
        self.applies = 0
        self.stale = 0

    # --- reads -----------------------------------------------------------------------

    def _pause(self) -> None:
        if self.latency_s:
            time.sleep(self.latency_s)

    def get_faces(self, face_ids: Iterable[str]) -> dict[str, ClusterFace]:
        self._pause()
        with self._lock:
            return {f: self._faces[f] for f in face_ids if f in self._faces}

    def get_persons(self, person_ids: Iterable[str]) -> dict[str, Person]:
        self._pause()
        with self._lock:
            return {p: self._persons[p] for p in person_ids if p in self._persons}

    def get_tombstones(self, face_ids: Iterable[str]) -> dict[str, Tombstone]:
        self._pause()
        with self._lock:
            return {f: self._tombstones[f] for f in face_ids if f in self._tombstones}

    def get_corrections(self, correction_ids: Iterable[str]) -> dict[str, Correction]:
        self._pause()
        with self._lock:
            return {c: self._corrections[c] for c in correction_ids if c in self._corrections}

    def faces_of_images(self, image_ids: Iterable[str]) -> list[ClusterFace]:
        self._pause()
        with self._lock:
            ids = sorted({f for i in set(image_ids) for f in self._by_image.get(i, ())})
            return [self._faces[f] for f in ids]

    def faces_of_person(
        self, person_id: str, *, cursor: str | None = None, limit: int = 500
    ) -> Page[ClusterFace]:
        self._pause()
        with self._lock:
            ids = sorted(self._by_person.get(person_id, ()))
            return self._page(f"person-faces:{person_id}", ids, self._faces, cursor, limit)

    def list_faces(
        self, *, unassigned_only: bool = False, cursor: str | None = None, limit: int = 500
    ) -> Page[ClusterFace]:
        self._pause()
        with self._lock:
            if self._sorted_faces is None:
                self._sorted_faces = sorted(self._faces)
            ids = self._sorted_faces
            kind = "faces:unassigned" if unassigned_only else "faces"
            start = self._start(kind, ids, cursor)
            limit = max(1, min(limit, MAX_PAGE))
            items: list[ClusterFace] = []
            position = start
            while position < len(ids) and len(items) < limit:
                face = self._faces[ids[position]]
                position += 1
                if unassigned_only and face.person_id is not None:
                    continue
                items.append(face)
            more = position < len(ids)
            next_cursor = encode_cursor(kind, [ids[position - 1]]) if more and items else None
            return Page(items, next_cursor)

    def list_persons(
        self, *, roots_only: bool = True, cursor: str | None = None, limit: int = 500
    ) -> Page[Person]:
        self._pause()
        with self._lock:
            ids = sorted(
                p for p, person in self._persons.items() if not roots_only or person.is_root
            )
            kind = "persons:roots" if roots_only else "persons"
            return self._page(kind, ids, self._persons, cursor, limit)

    def list_corrections(self, *, before: str | None = None, limit: int = 100) -> list[Correction]:
        self._pause()
        with self._lock:
            ids = sorted(self._corrections, reverse=True)
            if before is not None:
                ids = [c for c in ids if c < before]
            return [self._corrections[c] for c in ids[: max(1, min(limit, MAX_PAGE))]]

    @staticmethod
    def _start(kind: str, ids: list[str], cursor: str | None) -> int:
        if cursor is None:
            return 0
        (last,) = decode_cursor(kind, cursor, 1)
        return bisect.bisect_right(ids, str(last))

    def _page(
        self,
        kind: str,
        ids: list[str],
        records: Mapping[str, R],
        cursor: str | None,
        limit: int,
    ) -> Page[R]:
        start = self._start(kind, ids, cursor)
        limit = max(1, min(limit, MAX_PAGE))
        chunk = ids[start : start + limit]
        more = start + limit < len(ids)
        items = [records[i] for i in chunk]
        return Page(items, encode_cursor(kind, [chunk[-1]]) if more else None)

    # --- the one write path --------------------------------------------------------------

    def _version(self, key: RecordKey) -> int:
        kind, ident = key
        record: ClusterFace | Person | Tombstone | Correction | None
        if kind is Kind.FACE:
            record = self._faces.get(ident)
        elif kind is Kind.PERSON:
            record = self._persons.get(ident)
        elif kind is Kind.TOMBSTONE:
            record = self._tombstones.get(ident)
        else:
            record = self._corrections.get(ident)
        return 0 if record is None else record.version

    def apply(self, changes: ChangeSet) -> None:
        changes.validate()
        self._pause()
        with self._lock:
            for key in changes.expect:
                try:
                    changes.check_version(key, self._version(key))
                except StaleRead:
                    self.stale += 1
                    raise
            self.applies += 1
            for face_id in changes.delete_faces:
                self._drop_face(face_id)
            for face in changes.put_faces:
                self._drop_face(face.face_id)
                stored = replace(face, version=changes.expect[(Kind.FACE, face.face_id)] + 1)
                self._faces[face.face_id] = stored
                self._by_image.setdefault(face.image_id, set()).add(face.face_id)
                if face.person_id is not None:
                    self._by_person.setdefault(face.person_id, set()).add(face.face_id)
                self._sorted_faces = None
            for person_id in changes.delete_persons:
                self._persons.pop(person_id, None)
            for person in changes.put_persons:
                key = (Kind.PERSON, person.person_id)
                self._persons[person.person_id] = replace(person, version=changes.expect[key] + 1)
            for tomb in changes.put_tombstones:
                key = (Kind.TOMBSTONE, tomb.face_id)
                self._tombstones[tomb.face_id] = replace(tomb, version=changes.expect[key] + 1)
            for entry in changes.put_corrections:
                key = (Kind.CORRECTION, entry.correction_id)
                self._corrections[entry.correction_id] = replace(
                    entry, version=changes.expect[key] + 1
                )

    def _drop_face(self, face_id: str) -> None:
        old = self._faces.pop(face_id, None)
        if old is None:
            return
        self._sorted_faces = None
        image_faces = self._by_image.get(old.image_id)
        if image_faces is not None:
            image_faces.discard(face_id)
            if not image_faces:
                del self._by_image[old.image_id]
        if old.person_id is not None:
            person_faces = self._by_person.get(old.person_id)
            if person_faces is not None:
                person_faces.discard(face_id)
                if not person_faces:
                    del self._by_person[old.person_id]

    # --- counts and erase ------------------------------------------------------------------

    def counts(self) -> PeopleCounts:
        with self._lock:
            return PeopleCounts(
                faces=len(self._faces),
                persons=sum(1 for p in self._persons.values() if p.is_root),
                aliases=sum(1 for p in self._persons.values() if not p.is_root),
                tombstones=len(self._tombstones),
                corrections=len(self._corrections),
            )

    def purge(self, *, limit: int = 500) -> PeoplePurged:
        with self._lock:
            removed = 0
            for face_id in list(self._faces)[: max(limit, 0)]:
                self._drop_face(face_id)
                removed += 1
            for table in (self._persons, self._tombstones, self._corrections):
                for key in list(table)[: max(limit - removed, 0)]:
                    del table[key]
                    removed += 1
            left = len(self._faces) + len(self._persons)
            left += len(self._tombstones) + len(self._corrections)
            return PeoplePurged(removed, left == 0)


class MemoryNeighbourSearch:
    """Exact cosine k-NN over an in-memory, mutable set of unit vectors.

    The reference :class:`~.ports.NeighbourSearch` for tests and small benchmarks (a
    matrix product per query; rows of removed faces are masked, the buffer grows by
    doubling).
    """

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self._lock = threading.Lock()
        self._matrix = np.zeros((1024, dims), dtype=np.float32)
        self._ids: list[str] = []
        self._live = np.zeros(1024, dtype=bool)
        self._row: dict[str, int] = {}

    def add(self, face_ids: Iterable[str], vectors: npt.ArrayLike) -> None:
        rows = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dims)
        with self._lock:
            for face_id, vector in zip(face_ids, rows, strict=True):
                if face_id in self._row:
                    continue
                n = len(self._ids)
                if n == len(self._matrix):
                    self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix)])
                    self._live = np.concatenate([self._live, np.zeros_like(self._live)])
                self._matrix[n] = vector
                self._live[n] = True
                self._ids.append(face_id)
                self._row[face_id] = n

    def remove(self, face_ids: Iterable[str]) -> None:
        with self._lock:
            for face_id in face_ids:
                row = self._row.pop(face_id, None)
                if row is not None:
                    self._live[row] = False

    def search(self, vectors: npt.ArrayLike, k: int) -> list[list[Neighbour]]:
        q = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dims)
        with self._lock:
            n = len(self._ids)
            matrix = self._matrix[:n]
            live = self._live[:n]
            ids = self._ids
            sims = q @ matrix.T
            sims[:, ~live] = -np.inf
            out: list[list[Neighbour]] = []
            count = min(k, int(live.sum()))
            for row in sims:
                if count <= 0:
                    out.append([])
                    continue
                top = np.argpartition(-row, count - 1)[:count]
                top = top[np.argsort(-row[top], kind="stable")]
                out.append([Neighbour(ids[i], float(row[i])) for i in top.tolist()])
            return out

    def at_least(self, version: int | None) -> None:
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._row)


class MemoryFaceSource:
    """A :class:`~.ports.FaceSource` over a dict (what the metadata store would hold)."""

    def __init__(self, faces: Iterable[FaceInput] = ()) -> None:
        self._lock = threading.Lock()
        self._faces = {f.face_id: f for f in faces}

    def put(self, face: FaceInput) -> None:
        with self._lock:
            self._faces[face.face_id] = face

    def delete(self, face_id: str) -> None:
        with self._lock:
            self._faces.pop(face_id, None)

    def get(self, face_ids: Sequence[str]) -> dict[str, FaceInput]:
        with self._lock:
            return {f: self._faces[f] for f in face_ids if f in self._faces}

    def all(self) -> list[FaceInput]:
        with self._lock:
            return list(self._faces.values())
