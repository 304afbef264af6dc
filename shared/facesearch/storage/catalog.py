"""The catalog port: the collections of a deployment, and a scoped store for each.

A collection is an independent set of images, faces and persons with its own policy.
The catalog keeps one record per collection (:class:`CollectionRecord`) and hands out
the stores scoped to one collection (:class:`facesearch.storage.metadata.MetadataStore`,
:class:`facesearch.people.ports.PeopleStore`). Two adapters implement it, each beside
the stores it hands out: :mod:`.local.catalog` (SQLite) and :mod:`.gcp.catalog`
(Firestore); ``tests/contracts/test_collections.py`` runs the same tests against both.
Collection ids and the ``default`` collection are the records' business and live in
:mod:`.metadata`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, Unpack, runtime_checkable

from facesearch.storage.paging import Page, iter_pages

if TYPE_CHECKING:
    from facesearch.people.ports import PeopleStore
    from facesearch.storage.metadata import MetadataStore


class CollectionStatus(StrEnum):
    """A collection takes writes only while active; erasing and erased are final."""

    ACTIVE = "active"
    ERASING = "erasing"
    ERASED = "erased"


class CollectionChange(TypedDict, total=False):
    """What :meth:`Catalog.update_collection` may change; a field absent or None is kept.
    One declaration for the port and both adapters: a new changeable field is added here."""

    name: str | None
    settings: Mapping[str, Any] | None
    status: CollectionStatus | None
    erase_report: Mapping[str, Any] | None


@dataclass(frozen=True)
class CollectionRecord:
    """``collections/{collection_id}``: an independent set of images, faces and persons.

    ``settings`` holds the collection's own policy (embedder, threshold, quality,
    retention, quotas), validated by :class:`facesearch.collections.CollectionSettings`.
    An erased collection keeps its record (status, erase report) so that its id is
    never reused and late messages for it are recognised and dropped.
    """

    collection_id: str
    name: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    status: CollectionStatus = CollectionStatus.ACTIVE
    erase_report: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@runtime_checkable
class Catalog(Protocol):
    """The collections of a deployment, and a scoped store for each."""

    def create_collection(self, record: CollectionRecord) -> CollectionRecord:
        """A new collection (Conflict if the id exists, erased ones included)."""
        ...

    def get_collection(self, collection_id: str) -> CollectionRecord | None:
        """The record; ``default`` exists implicitly (active) until it is written."""
        ...

    def list_collections(
        self, *, cursor: str | None = None, limit: int = 100
    ) -> Page[CollectionRecord]:
        """By ``collection_id``, erased ones included."""
        ...

    def update_collection(
        self, collection_id: str, **change: Unpack[CollectionChange]
    ) -> CollectionRecord:
        """Change the given fields. NotFound if absent; a status never goes back to active."""
        ...

    def store(self, collection_id: str) -> MetadataStore:
        """The scoped store of one collection (cheap; shares the catalog's connection)."""
        ...

    def people(self, collection_id: str) -> PeopleStore:
        """The scoped people store of one collection (persons, their faces, corrections),
        in the same database, refusing writes once the collection is erasing."""
        ...


def iter_collections(catalog: Catalog, *, page_size: int = 500) -> Iterator[CollectionRecord]:
    """Every collection record, erased ones included, page by page (the sweeps that visit
    each collection read from this)."""
    return iter_pages(lambda cursor: catalog.list_collections(cursor=cursor, limit=page_size))
