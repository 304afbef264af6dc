"""Embedded wiring: SQLite files and folders under ``data_dir``, one in-process bus.

Nothing here needs a network or a service. ``gs://`` URLs still work (through
one Cloud Storage client) for mixed setups such as the emulator tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facesearch.backends import Backend
from facesearch.storage.metadata import DEFAULT_COLLECTION

if TYPE_CHECKING:
    from facesearch.api.crops import CropUrls
    from facesearch.api.forget import IndexForgetter
    from facesearch.storage.bus import DeadLetters
    from facesearch.storage.catalog import Catalog
    from facesearch.storage.ledger import EventLedger
    from facesearch.storage.local.bus import InProcessBus
    from facesearch.storage.nonces import NonceStore


#: where ``facesearch serve`` listens by default; links use it when no public URL is set
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


class LocalBackend(Backend):
    kind = "local"

    def catalog(self) -> Catalog:
        from facesearch.storage.local.catalog import SqliteCatalog

        return self.once(
            "catalog", lambda: SqliteCatalog(self.settings.data_dir / "metadata.sqlite3")
        )

    def bus(self) -> InProcessBus:
        from facesearch.storage.local.bus import InProcessBus

        # durable: a message survives the process that published it (issue 18)
        return self.once("bus", lambda: InProcessBus(self.settings.data_dir / "bus.sqlite3"))

    def dead_letters(self) -> DeadLetters:
        from facesearch.storage.local.bus import LocalDeadLetters

        return self.once("dead_letters", lambda: LocalDeadLetters(self.bus()))

    def nonces(self) -> NonceStore:
        from facesearch.storage.local.nonces import SqliteNonceStore

        path = self.settings.api.nonce_db or self.settings.data_dir / "nonces.sqlite3"
        return self.once("nonces", lambda: SqliteNonceStore(path))

    def cloudinary_ledger(self) -> EventLedger:
        from facesearch.storage.local.ledger import SqliteEventLedger

        return self.once(
            "cloudinary_ledger",
            lambda: SqliteEventLedger(self.settings.data_dir / "cloudinary-events.sqlite3"),
        )

    def crop_urls(self) -> CropUrls:
        from facesearch.api.crops import LocalCropUrls

        return self.once(
            "crop_urls",
            lambda: LocalCropUrls.from_data_dir(
                self.settings.data_dir,
                self.settings.api.signed_url_ttl_s,
                base_url=self.settings.api.public_url or DEFAULT_PUBLIC_URL,
            ),
        )

    def index_forgetter(self, collection_id: str = DEFAULT_COLLECTION) -> IndexForgetter:
        """Embedded mode owns the index: tombstones are written right away."""
        writer = self.index_writer(collection_id=collection_id)

        def tombstone(face_ids: list[str]) -> str:
            writer.delete(face_ids)
            return "tombstoned"

        return tombstone

    def start_erase(self, collection_id: str) -> None:
        """Embedded mode: the whole erase on a background thread (the API answers 202)."""
        import threading

        job = self.erase_job()
        job.start(collection_id)
        threading.Thread(
            target=job.run, args=(collection_id,), name=f"erase-{collection_id}", daemon=True
        ).start()
