"""Managing collections: create, list, read with counts, change, erase.

Collections are data, not infrastructure: creating one writes a record, and its
index, crops and records appear under its id as images arrive. Erasing one marks
it ``erasing`` at once (nothing more is written into it, nothing of it is
returned) and hands the work to :class:`facesearch.collections.erase.EraseJob` —
run by the indexer through Pub/Sub in the cloud, on a background thread in
embedded mode — whose report the collection's record then shows.
"""

from __future__ import annotations

from collections.abc import Callable

from facesearch.api.collection_schemas import (
    CollectionCreate,
    CollectionOut,
    CollectionPage,
    CollectionPatch,
)
from facesearch.api.service import QueryService
from facesearch.auth.keys import KeyGrant
from facesearch.collections.directory import CollectionDirectory
from facesearch.collections.policy import CollectionSettings
from facesearch.errors import BadRequest, CannotErase, NotFound
from facesearch.storage.catalog import Catalog, CollectionRecord, CollectionStatus
from facesearch.storage.metadata import DEFAULT_COLLECTION

#: start erasing a collection (mark it, then hand the work over)
EraseStarter = Callable[[str], None]
#: does this embedder exist (raises ModelError / BadRequest otherwise)
EmbedderCheck = Callable[[str], None]


class CollectionAdmin:
    def __init__(
        self,
        catalog: Catalog,
        directory: CollectionDirectory,
        queries: QueryService,
        *,
        start_erase: EraseStarter,
        check_embedder: EmbedderCheck,
    ) -> None:
        self.catalog = catalog
        self.directory = directory
        self.queries = queries
        self._start_erase = start_erase
        self._check_embedder = check_embedder

    def create(self, body: CollectionCreate) -> CollectionOut:
        if body.collection_id == DEFAULT_COLLECTION:
            raise BadRequest("'default' exists already: it holds images without a collection")
        if body.settings.embedder is not None:
            self._check_embedder(body.settings.embedder)
        record = self.catalog.create_collection(
            CollectionRecord(body.collection_id, body.name, body.settings.stored())
        )
        self.directory.forget(body.collection_id)
        return CollectionOut.from_record(record)

    def list(
        self, *, cursor: str | None, limit: int, grant: KeyGrant | None = None
    ) -> CollectionPage:
        """Collections the key may see (all, for an unlimited key), a page at a time.

        ``default`` comes first (it exists without a stored record: the images from
        before collections), then the others by id.
        """
        page = self.catalog.list_collections(cursor=cursor, limit=limit)
        records = [r for r in page.items if r.collection_id != DEFAULT_COLLECTION]
        if cursor is None:
            default = self.catalog.get_collection(DEFAULT_COLLECTION)
            records = [default, *records] if default is not None else records
        visible = [
            r
            for r in records
            if grant is None or grant.collections is None or r.collection_id in grant.collections
        ]
        return CollectionPage(
            items=[CollectionOut.from_record(r) for r in visible], next_cursor=page.next_cursor
        )

    def get(self, collection_id: str) -> CollectionOut:
        record = self.catalog.get_collection(collection_id)
        if record is None:
            raise NotFound(f"collection {collection_id} does not exist")
        stats = None
        if record.status is CollectionStatus.ACTIVE:
            stats = self.queries.collection(collection_id).operations.stats()
        return CollectionOut.from_record(record, stats)

    def update(self, collection_id: str, body: CollectionPatch) -> CollectionOut:
        record = self.directory.require_active(collection_id)
        settings = None
        if body.settings is not None:
            current = CollectionSettings.from_record(record.settings)
            if body.settings.embedder != current.embedder:
                raise BadRequest(
                    "a collection's embedder is fixed at creation (its index holds that model's"
                    " embeddings); create a new collection for another model"
                )
            settings = body.settings.stored()
        updated = self.catalog.update_collection(collection_id, name=body.name, settings=settings)
        self.directory.forget(collection_id)
        self.queries.close(collection_id)  # its threshold or quota may have changed
        return CollectionOut.from_record(updated)

    def erase(self, collection_id: str) -> CollectionOut:
        if collection_id == DEFAULT_COLLECTION:
            raise CannotErase(
                "the default collection cannot be erased; forget its images or persons instead"
            )
        self.directory.require(collection_id)
        self._start_erase(collection_id)
        self.directory.forget(collection_id)
        self.queries.close(collection_id, erased=True)
        return self.get(collection_id)
