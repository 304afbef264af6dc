"""Google Cloud wiring: one Firestore, one Cloud Storage and one Pub/Sub client per instance.

The clients honour the emulator variables (``FIRESTORE_EMULATOR_HOST``,
``STORAGE_EMULATOR_HOST``, ``PUBSUB_EMULATOR_HOST``), which is how the
integration tests run this exact wiring.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from facesearch.backends import Backend
from facesearch.config import Settings
from facesearch.errors import ConfigError
from facesearch.storage.metadata import DEFAULT_COLLECTION

if TYPE_CHECKING:
    from facesearch.api.crops import CropUrls
    from facesearch.api.forget import IndexForgetter
    from facesearch.storage.bus import Bus, DeadLetters
    from facesearch.storage.catalog import Catalog
    from facesearch.storage.ledger import EventLedger
    from facesearch.storage.nonces import NonceStore


class GcpBackend(Backend):
    kind = "gcp"

    def __init__(self, settings: Settings) -> None:
        if not settings.project:
            # refused at start, not on the first request that needs a topic path
            raise ConfigError("the gcp backend needs FACESEARCH_PROJECT")
        super().__init__(settings)

    # --- clients --------------------------------------------------------------------------

    def firestore_client(self) -> Any:
        def build() -> Any:
            # importlib: a static import of the typed google.cloud.firestore makes mypy
            # resolve the google.cloud namespace from it and lose google.cloud.storage.
            firestore = importlib.import_module("google.cloud.firestore")
            return firestore.Client(
                project=self.settings.project, database=self.settings.storage.firestore_database
            )

        return self.once("firestore_client", build)

    # --- adapters -------------------------------------------------------------------------

    def catalog(self) -> Catalog:
        from facesearch.storage.gcp.catalog import FirestoreCatalog

        return self.once("catalog", lambda: FirestoreCatalog(self.firestore_client()))

    def bus(self) -> Bus:
        from facesearch.storage.gcp.bus import PubSubBus

        return self.once("bus", lambda: PubSubBus(self.settings.project))

    def dead_letters(self) -> DeadLetters:
        """The ``<topic>-dlq-pull`` subscriptions Terraform creates for each pushed topic."""
        from facesearch.storage.gcp.dlq import PubSubDeadLetters

        storage = self.settings.storage
        topics = [storage.ingest_topic, storage.embeddings_topic, storage.deletions_topic]
        project = self.settings.project or ""
        return self.once("dead_letters", lambda: PubSubDeadLetters(project, topics, self.bus()))

    def nonces(self) -> NonceStore:
        from facesearch.storage.gcp.nonces import FirestoreNonceStore

        return self.once("nonces", lambda: FirestoreNonceStore(self.firestore_client()))

    def cloudinary_ledger(self) -> EventLedger:
        from facesearch.storage.gcp.ledger import FirestoreEventLedger

        return self.once("cloudinary_ledger", lambda: FirestoreEventLedger(self.firestore_client()))

    def crop_urls(self) -> CropUrls:
        from facesearch.api.crops import GcsCropUrls

        return self.once(
            "crop_urls",
            lambda: GcsCropUrls(
                self.settings.api.signed_url_ttl_s,
                service_account=self.settings.api.signing_service_account,
                client=self.gcs_client,
            ),
        )

    def index_forgetter(self, collection_id: str = DEFAULT_COLLECTION) -> IndexForgetter:
        """The query service only reads the index: deletions go to the indexer by Pub/Sub."""
        from facesearch.storage.messages import DeletionsMessage

        bus, topic = self.bus(), self.settings.storage.deletions_topic

        def queue(face_ids: list[str]) -> str:
            message = DeletionsMessage(face_ids, reason="api forget", collection_id=collection_id)
            bus.publish(topic, [message.encode()])
            return "queued"

        return queue

    def start_erase(self, collection_id: str) -> None:
        """The indexer does the work, one bounded step per control message."""
        from facesearch.storage.messages import ControlMessage

        self.erase_job().start(collection_id)
        self.bus().publish(
            self.settings.storage.deletions_topic,
            [ControlMessage("erase", collection_id).encode()],
        )
