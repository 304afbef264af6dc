"""Firestore adapter of the Cloudinary event-ledger port: ``cloudinary_events/{key}``.

Documents carry ``expires_at`` for the TTL policy; one that has expired but not
yet been removed by it counts as absent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from facesearch.storage.gcp.firestore import (
    create_if_absent,
    firestore,
    snapshot_data,
    transient,
)

COLLECTION = "cloudinary_events"


def _document(info: Mapping[str, str], expires_at: float) -> dict[str, Any]:
    return {**info, "expires_at": datetime.fromtimestamp(expires_at, UTC)}


class FirestoreEventLedger:
    def __init__(self, client: Any, *, collection: str = COLLECTION) -> None:
        self._client = client
        self._collection = client.collection(collection)

    def claim(self, key: str, info: Mapping[str, str], expires_at: float) -> bool:
        return create_if_absent(self._collection.document(key), _document(info, expires_at))

    @transient
    def release(self, key: str) -> None:
        self._collection.document(key).delete()

    @transient
    def get(self, key: str) -> dict[str, str] | None:
        snapshot = self._collection.document(key).get()
        if not snapshot.exists:
            return None
        data = snapshot_data(snapshot)
        expires = data.pop("expires_at", None)
        if isinstance(expires, datetime) and expires.timestamp() < time.time():
            return None  # expired, the TTL policy has not removed it yet
        return {str(k): str(v) for k, v in data.items()}

    @transient
    def purge_collection(self, collection_id: str, *, limit: int = 500) -> int:
        query = self._of(collection_id).select([]).limit(max(limit, 0))
        refs = [snap.reference for snap in query.stream()] if limit > 0 else []
        for start in range(0, len(refs), 450):
            batch = self._client.batch()
            for ref in refs[start : start + 450]:
                batch.delete(ref)
            batch.commit()
        return len(refs)

    @transient
    def count_collection(self, collection_id: str) -> int:
        return int(self._of(collection_id).count().get()[0][0].value)

    def _of(self, collection_id: str) -> Any:
        return self._collection.where(
            filter=firestore.FieldFilter("collection", "==", collection_id)
        )

    @transient
    def put(self, key: str, info: Mapping[str, str], expires_at: float) -> None:
        self._collection.document(key).set(_document(info, expires_at))
