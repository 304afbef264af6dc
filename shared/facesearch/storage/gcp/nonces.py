"""Firestore adapter of the replay-guard port: ``nonces/{sha256(key_id, nonce)}``.

Terraform puts a TTL policy on ``nonces.expires_at``; the document also records
the key id for audits (never anything secret).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from facesearch.storage.gcp.firestore import create_if_absent
from facesearch.storage.nonces import nonce_id

COLLECTION = "nonces"


class FirestoreNonceStore:
    def __init__(self, client: Any, *, collection: str = COLLECTION) -> None:
        self._collection = client.collection(collection)

    def claim(self, key_id: str, nonce: str, expires_at: float) -> bool:
        return create_if_absent(
            self._collection.document(nonce_id(key_id, nonce)),
            {"key_id": key_id, "expires_at": datetime.fromtimestamp(expires_at, UTC)},
        )
