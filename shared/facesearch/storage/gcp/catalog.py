"""Firestore adapter of the collection catalog: ``collections/{collection_id}`` documents.

The same documents are the parents of each collection's ``images`` and ``faces``
subcollections (:mod:`.metadata`) and its people records (``persons``,
``person_faces``, ``face_tombstones``, ``corrections``: :mod:`.people`), and every
write transaction there
reads its collection's document, so a status change here (erasing) stops writes
everywhere at once.
"""

from __future__ import annotations

from typing import Any, Unpack

from facesearch.errors import Conflict
from facesearch.storage.catalog import CollectionChange, CollectionRecord
from facesearch.storage.gcp.firestore import firestore, snapshot_data, transient
from facesearch.storage.gcp.metadata import COLLECTIONS, FirestoreMetadataStore
from facesearch.storage.gcp.people import FirestorePeopleStore
from facesearch.storage.metadata import check_collection_id, now
from facesearch.storage.paging import Page, clamp_limit, decode_cursor, page_of
from facesearch.storage.records import (
    collection_from_dict,
    collection_to_dict,
    current_collection,
    stored_collection,
    updated_collection,
)

_NAME = "__name__"


class FirestoreCatalog:
    def __init__(self, client: Any) -> None:
        self.client = client
        self._collections = client.collection(COLLECTIONS)

    def __repr__(self) -> str:
        return f"FirestoreCatalog({self.client.project})"

    def store(self, collection_id: str) -> FirestoreMetadataStore:
        return FirestoreMetadataStore(self.client, check_collection_id(collection_id))

    def people(self, collection_id: str) -> FirestorePeopleStore:
        return FirestorePeopleStore(self.client, check_collection_id(collection_id))

    @transient
    def create_collection(self, record: CollectionRecord) -> CollectionRecord:
        check_collection_id(record.collection_id)
        t = now()
        record = CollectionRecord(
            record.collection_id, record.name, dict(record.settings), record.status, {}, t, t
        )
        ref = self._collections.document(record.collection_id)

        def run(tx: Any) -> None:
            if ref.get(transaction=tx).exists:
                raise Conflict(f"collection {record.collection_id} already exists")
            tx.create(ref, collection_to_dict(record))

        firestore.transactional(run)(self.client.transaction())
        return record

    @transient
    def get_collection(self, collection_id: str) -> CollectionRecord | None:
        snap = self._collections.document(collection_id).get()
        return stored_collection(collection_id, snapshot_data(snap) if snap.exists else None)

    @transient
    def list_collections(
        self, *, cursor: str | None = None, limit: int = 100
    ) -> Page[CollectionRecord]:
        limit = clamp_limit(limit)
        query = self._collections.order_by(_NAME)
        if cursor:
            query = query.start_after(
                {_NAME: self._collections.document(decode_cursor("collections", cursor, 1)[0])}
            )
        items = [collection_from_dict(snapshot_data(s)) for s in query.limit(limit).stream()]
        return page_of(items, limit, "collections", lambda last: [last.collection_id])

    @transient
    def update_collection(
        self, collection_id: str, **change: Unpack[CollectionChange]
    ) -> CollectionRecord:
        ref = self._collections.document(collection_id)

        def run(tx: Any) -> CollectionRecord:
            snap = ref.get(transaction=tx)
            stored = snapshot_data(snap) if snap.exists else None
            current = current_collection(collection_id, stored)
            record = updated_collection(current, change)
            tx.set(ref, collection_to_dict(record))
            return record

        result: CollectionRecord = firestore.transactional(run)(self.client.transaction())
        return result
