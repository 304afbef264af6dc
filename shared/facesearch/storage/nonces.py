"""The replay-guard port: each (key id, nonce) of a signed request may be claimed once.

A claim is an atomic create-if-absent, so two concurrent replays of the same
request cannot both succeed: SQLite's primary key locally
(:mod:`.local.nonces`), Firestore's ``create`` in the cloud (:mod:`.gcp.nonces`).
Records only need to live as long as a timestamp is acceptable (the skew window
on both sides); after that the timestamp check alone rejects a replay, so
expired records are purged (SQLite) or left to Firestore's TTL policy.
"""

from __future__ import annotations

import hashlib
from typing import Protocol


class NonceStore(Protocol):
    def claim(self, key_id: str, nonce: str, expires_at: float) -> bool:
        """Record the nonce; True when it was new, False when it was seen before."""
        ...


def nonce_id(key_id: str, nonce: str) -> str:
    """A fixed-length record id (nonces are client-chosen text)."""
    return hashlib.sha256(f"{key_id}\n{nonce}".encode()).hexdigest()
