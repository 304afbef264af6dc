"""What the two people-store adapters share: the port's reads, listings and counts, once.

Both adapters of :class:`facesearch.people.ports.PeopleStore` — SQLite
(:mod:`.local.people`) and Firestore (:mod:`.gcp.people`) — hold the same four record
kinds with the same query fields and answer the port's listings the same way:
ordered by record id, optionally where one field equals a value or is null, with the
same cursors. So :class:`PeopleStoreBase` writes those port methods once, over three
primitives each adapter implements in its own query language: ``_get`` (records by
id), ``_page`` (one page of a listing) and ``_count``. What differs between the two
(the conditional ``apply``, the correction log's order, the image query, the erase)
stays in each adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from facesearch.people.ports import Kind, PeopleCounts
from facesearch.people.types import ClusterFace, Correction, Person, Tombstone
from facesearch.storage.paging import Page

#: the people store pages up to this many records (a re-cluster reads everything)
MAX_PAGE = 5000

#: a listing's filter: (field, value) — the field equals the value, or is null for None
Equal = tuple[str, str | None]


def clamp_page(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE))


class PeopleStoreBase(ABC):
    """The port's record reads, id-ordered listings and counts over three primitives."""

    @abstractmethod
    def _get(self, kind: Kind, ids: Iterable[str]) -> dict[str, Any]:
        """The records of ``kind`` with these ids that exist, by id."""

    @abstractmethod
    def _page(
        self, kind: Kind, listing: str, equal: Equal | None, *, cursor: str | None, limit: int
    ) -> Page[Any]:
        """Records of ``kind`` by id (where ``equal`` holds), after the ``listing``
        cursor; ``limit`` is already clamped."""

    @abstractmethod
    def _count(self, kind: Kind, equal: Equal | None = None) -> int:
        """How many records of ``kind`` there are (where ``equal`` holds)."""

    def get_faces(self, face_ids: Iterable[str]) -> dict[str, ClusterFace]:
        return self._get(Kind.FACE, face_ids)

    def get_persons(self, person_ids: Iterable[str]) -> dict[str, Person]:
        return self._get(Kind.PERSON, person_ids)

    def get_tombstones(self, face_ids: Iterable[str]) -> dict[str, Tombstone]:
        return self._get(Kind.TOMBSTONE, face_ids)

    def get_corrections(self, correction_ids: Iterable[str]) -> dict[str, Correction]:
        return self._get(Kind.CORRECTION, correction_ids)

    def faces_of_person(
        self, person_id: str, *, cursor: str | None = None, limit: int = 500
    ) -> Page[ClusterFace]:
        return self._page(
            Kind.FACE,
            f"person-faces:{person_id}",
            ("person_id", person_id),
            cursor=cursor,
            limit=clamp_page(limit),
        )

    def list_faces(
        self, *, unassigned_only: bool = False, cursor: str | None = None, limit: int = 500
    ) -> Page[ClusterFace]:
        if unassigned_only:
            return self._page(
                Kind.FACE,
                "faces:unassigned",
                ("person_id", None),
                cursor=cursor,
                limit=clamp_page(limit),
            )
        return self._page(Kind.FACE, "faces", None, cursor=cursor, limit=clamp_page(limit))

    def list_persons(
        self, *, roots_only: bool = True, cursor: str | None = None, limit: int = 500
    ) -> Page[Person]:
        if roots_only:
            return self._page(
                Kind.PERSON,
                "persons:roots",
                ("merged_into", None),
                cursor=cursor,
                limit=clamp_page(limit),
            )
        return self._page(Kind.PERSON, "persons", None, cursor=cursor, limit=clamp_page(limit))

    def counts(self) -> PeopleCounts:
        persons = self._count(Kind.PERSON)
        roots = self._count(Kind.PERSON, ("merged_into", None))
        return PeopleCounts(
            faces=self._count(Kind.FACE),
            persons=roots,
            aliases=persons - roots,
            tombstones=self._count(Kind.TOMBSTONE),
            corrections=self._count(Kind.CORRECTION),
        )
