"""The ports of the people feature: its store, the neighbour search, the face source.

``PeopleStore`` — one atomic apply per decision
-----------------------------------------------
Records (faces, persons, tombstones, corrections) are read with plain, per-call
reads that return whole records with their ``version``. Every change is one
:class:`ChangeSet` given to :meth:`PeopleStore.apply`, which is **atomic and
conditional**:

* ``expect`` maps each record the decision depended on to the version it read
  (``0`` = "did not exist"). The apply succeeds only if every one still has that
  version; otherwise nothing is written and :class:`~.errors.StaleRead` is raised.
* every record the change set writes or deletes must be in ``expect`` (no blind
  writes), so two deciders that read the same record can never both commit.
* a written record gets ``version = expected + 1`` (the version on the record
  passed in is ignored); a deleted one reads as absent (version 0) afterwards.
* at most :data:`MAX_WRITES_PER_APPLY` records are written or deleted (Firestore's
  transaction limit); larger changes are split by the caller into several
  applies, each consistent on its own.

SQLite implements this as ``BEGIN IMMEDIATE`` + version checks + writes; Firestore
as a transaction that reads every expected document, compares ``version`` fields
(absent = 0) and writes. :mod:`.memory` is the reference implementation and
``tests/contracts/test_people.py`` the shared contract suite, run on all three.

``NeighbourSearch`` — k-NN over the collection's live faces (the USearch index
reader in production; cosine similarity of unit float32 vectors).

``FaceSource`` — the metadata store's faces (embedding, image, quality, time):
the face events carry only ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar, runtime_checkable

from facesearch.errors import ChangeSetInvalid, StaleRead
from facesearch.people.types import ClusterFace, Correction, FaceInput, Person, Tombstone, Vector
from facesearch.storage.paging import Page, iter_pages

#: Records one apply may write or delete (Firestore allows 500 writes per transaction).
MAX_WRITES_PER_APPLY = 500

T = TypeVar("T")


class Kind(StrEnum):
    FACE = "face"
    PERSON = "person"
    TOMBSTONE = "tombstone"
    CORRECTION = "correction"


RecordKey = tuple[Kind, str]
#: a record of the people store
PeopleRecord = ClusterFace | Person | Tombstone | Correction
#: the field holding each kind's record id (the key adapters store it under)
ID_FIELDS: dict[Kind, str] = {
    Kind.FACE: "face_id",
    Kind.PERSON: "person_id",
    Kind.TOMBSTONE: "face_id",
    Kind.CORRECTION: "correction_id",
}


def face_key(face_id: str) -> RecordKey:
    return (Kind.FACE, face_id)


def person_key(person_id: str) -> RecordKey:
    return (Kind.PERSON, person_id)


def tombstone_key(face_id: str) -> RecordKey:
    return (Kind.TOMBSTONE, face_id)


def correction_key(correction_id: str) -> RecordKey:
    return (Kind.CORRECTION, correction_id)


@dataclass(frozen=True)
class ChangeSet:
    """One decision's writes and the versions it read. See the module docstring."""

    expect: Mapping[RecordKey, int]
    put_faces: tuple[ClusterFace, ...] = ()
    delete_faces: tuple[str, ...] = ()
    put_persons: tuple[Person, ...] = ()
    delete_persons: tuple[str, ...] = ()
    put_tombstones: tuple[Tombstone, ...] = ()
    put_corrections: tuple[Correction, ...] = ()
    #: free text for logs ("join", "found", "merge", ...)
    reason: str = field(default="", compare=False)

    def written_keys(self) -> list[RecordKey]:
        return [
            *(face_key(f.face_id) for f in self.put_faces),
            *(face_key(f) for f in self.delete_faces),
            *(person_key(p.person_id) for p in self.put_persons),
            *(person_key(p) for p in self.delete_persons),
            *(tombstone_key(t.face_id) for t in self.put_tombstones),
            *(correction_key(c.correction_id) for c in self.put_corrections),
        ]

    @property
    def empty(self) -> bool:
        return not self.written_keys()

    def check_version(self, key: RecordKey, actual: int) -> None:
        """Raise :class:`StaleRead` unless ``key`` is still at the version the decision
        read: every adapter compares each expected record with this, so the message a
        losing writer logs is the same on all of them."""
        expected = self.expect[key]
        if actual != expected:
            raise StaleRead(
                f"{self.reason or 'apply'}: {key[0]} {key[1]} is at version {actual},"
                f" the decision read version {expected}"
            )

    def deletes(self) -> Iterator[RecordKey]:
        """The records to delete; an adapter deletes them before it writes (:meth:`writes`)."""
        yield from (face_key(f) for f in self.delete_faces)
        yield from (person_key(p) for p in self.delete_persons)

    def writes(self) -> Iterator[tuple[RecordKey, PeopleRecord, int]]:
        """Each record to write with its key and the version it is stored with: the
        expected one + 1 (the version on the record passed in is ignored, see above)."""
        kinds: tuple[tuple[Kind, Sequence[PeopleRecord]], ...] = (
            (Kind.FACE, self.put_faces),
            (Kind.PERSON, self.put_persons),
            (Kind.TOMBSTONE, self.put_tombstones),
            (Kind.CORRECTION, self.put_corrections),
        )
        for kind, records in kinds:
            for record in records:
                key = (kind, str(getattr(record, ID_FIELDS[kind])))
                yield key, record, self.expect[key] + 1

    def validate(self) -> None:
        """Raise :class:`ChangeSetInvalid` for a change set no store may accept."""
        keys = self.written_keys()
        if len(keys) != len(set(keys)):
            raise ChangeSetInvalid(f"{self.reason}: a record is written twice in one change set")
        missing = [k for k in keys if k not in self.expect]
        if missing:
            raise ChangeSetInvalid(
                f"{self.reason}: blind write of {missing[:3]} (every written record needs an"
                " expected version)"
            )
        if len(keys) > MAX_WRITES_PER_APPLY:
            raise ChangeSetInvalid(
                f"{self.reason}: {len(keys)} writes exceed {MAX_WRITES_PER_APPLY} per apply"
            )
        if any(v < 0 for v in self.expect.values()):
            raise ChangeSetInvalid(f"{self.reason}: negative expected version")


@dataclass(frozen=True)
class PeopleCounts:
    """How many records of each kind a collection's people store holds."""

    faces: int = 0  # faces the clusterer has seen (assigned or waiting)
    persons: int = 0  # root persons (what users see)
    aliases: int = 0  # persons merged into another (kept for undo)
    tombstones: int = 0
    corrections: int = 0

    @property
    def records(self) -> int:
        return self.faces + self.persons + self.aliases + self.tombstones + self.corrections


@dataclass(frozen=True)
class PeoplePurged:
    """What one bounded purge step removed (collection erase), and whether anything is left."""

    removed: int = 0
    done: bool = True


@runtime_checkable
class PeopleStore(Protocol):
    """Faces (clustering view), persons, tombstones and the correction log.

    Implementations are thread-safe. Reads may be served from different moments
    (each call is consistent on its own); :meth:`apply` is the only write path.
    """

    def get_faces(self, face_ids: Iterable[str]) -> dict[str, ClusterFace]:
        """Records of the given faces; absent ones are missing from the dict."""
        ...

    def get_persons(self, person_ids: Iterable[str]) -> dict[str, Person]: ...

    def get_tombstones(self, face_ids: Iterable[str]) -> dict[str, Tombstone]: ...

    def get_corrections(self, correction_ids: Iterable[str]) -> dict[str, Correction]: ...

    def faces_of_images(self, image_ids: Iterable[str]) -> list[ClusterFace]:
        """Every stored face of these images (the cannot-link check)."""
        ...

    def faces_of_person(
        self, person_id: str, *, cursor: str | None = None, limit: int = 500
    ) -> Page[ClusterFace]:
        """Faces whose ``person_id`` is exactly this id (aliases not followed), by face_id."""
        ...

    def list_faces(
        self, *, unassigned_only: bool = False, cursor: str | None = None, limit: int = 500
    ) -> Page[ClusterFace]:
        """All faces (or those without a person), by face_id."""
        ...

    def list_persons(
        self, *, roots_only: bool = True, cursor: str | None = None, limit: int = 500
    ) -> Page[Person]:
        """Persons by person_id; by default only roots (not merged into another)."""
        ...

    def list_corrections(self, *, before: str | None = None, limit: int = 100) -> list[Correction]:
        """The log, newest first; ``before`` continues after that correction id."""
        ...

    def apply(self, changes: ChangeSet) -> None:
        """All of ``changes`` or nothing; :class:`~facesearch.errors.StaleRead` if an
        expectation fails. A store of a collection being erased refuses with
        :class:`~facesearch.errors.CollectionClosed` (checked in the same transaction)."""
        ...

    def counts(self) -> PeopleCounts:
        """Records per kind (stats, and the erase's verification scan)."""
        ...

    def purge(self, *, limit: int = 500) -> PeoplePurged:
        """Delete up to ``limit`` records of any kind (collection erase); idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class Neighbour:
    face_id: str
    similarity: float  # cosine, in [-1, 1]


@runtime_checkable
class NeighbourSearch(Protocol):
    """k-NN over the collection's live faces."""

    def search(self, vectors: Vector, k: int) -> list[list[Neighbour]]:
        """Top-``k`` faces per row of ``vectors`` ((n, dims) or (dims,)), best first."""
        ...

    def at_least(self, version: int | None) -> None:
        """Make later searches see the index as of manifest ``version`` (refresh if older)."""
        ...


@runtime_checkable
class FaceSource(Protocol):
    """The faces as the metadata store knows them."""

    def get(self, face_ids: Sequence[str]) -> dict[str, FaceInput]:
        """Faces that exist; deleted or unknown ids are missing from the dict."""
        ...


# --- whole listings, a page at a time ------------------------------------------------------------


def faces_of(store: PeopleStore, person_id: str, *, page_size: int = 1000) -> Iterator[ClusterFace]:
    """Every face whose ``person_id`` is exactly ``person_id`` (aliases not followed)."""
    return iter_pages(
        lambda cursor: store.faces_of_person(person_id, cursor=cursor, limit=page_size)
    )


def every_face(store: PeopleStore, *, page_size: int = 5000) -> Iterator[ClusterFace]:
    """Every face record of the store, by face id."""
    return iter_pages(lambda cursor: store.list_faces(cursor=cursor, limit=page_size))


def every_person(store: PeopleStore, *, page_size: int = 5000) -> Iterator[Person]:
    """Every person record, roots and aliases, by person id."""
    return iter_pages(
        lambda cursor: store.list_persons(roots_only=False, cursor=cursor, limit=page_size)
    )


def every_correction(store: PeopleStore, *, page_size: int = 1000) -> Iterator[Correction]:
    """The whole correction log, newest first (a short page is the last one)."""
    before: str | None = None
    while True:
        entries = store.list_corrections(before=before, limit=page_size)
        yield from entries
        if len(entries) < page_size:
            return
        before = entries[-1].correction_id
