"""The Cloudinary event-ledger port: which notifications were already queued.

The key is public_id + version (hashed, see ``cloudinary.delivery.event_key``),
so Cloudinary's retries, a duplicate notification and the ``eager``
notification of the same upload all find the first claim. A claim is an atomic
create-if-absent: SQLite's primary key locally (:mod:`.local.ledger`), Firestore
``create`` in the cloud (:mod:`.gcp.ledger`); two concurrent duplicates cannot
both win. Records expire after :data:`LEDGER_TTL_S` (Firestore TTL policy on
``expires_at``; purged locally); a duplicate later than that is queued again
and ingest acknowledges it as already done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

LEDGER_TTL_S = 30 * 24 * 3600


class EventLedger(Protocol):
    def claim(self, key: str, info: Mapping[str, str], expires_at: float) -> bool:
        """Record the event; True when it is new, False when it was claimed before."""
        ...

    def release(self, key: str) -> None:
        """Forget a claim whose follow-up failed (missing is fine)."""
        ...

    def get(self, key: str) -> dict[str, str] | None:
        """The claim's info (unexpired), or None."""
        ...

    def put(self, key: str, info: Mapping[str, str], expires_at: float) -> None:
        """Create or overwrite a claim (e.g. mark it deleted)."""
        ...

    def purge_collection(self, collection_id: str, *, limit: int = 500) -> int:
        """Delete up to ``limit`` claims whose info names ``collection_id``; how many."""
        ...

    def count_collection(self, collection_id: str) -> int:
        """Claims (expired ones too) that still name ``collection_id``."""
        ...
