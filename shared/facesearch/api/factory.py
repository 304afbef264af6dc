"""Wire the query service from settings: the same code for Cloud Run and ``facesearch serve``.

``backend=gcp``: Firestore metadata and nonces, GCS V4 signed crop URLs,
forgotten faces queued on the face-deletions topic for the indexer (the query
service only reads the index bucket). ``backend=local``: SQLite, local crop
URLs, tombstones written straight into the local index.
"""

from __future__ import annotations

from facesearch.api.app import QueryApp
from facesearch.api.crops import CropUrls, GcsCropUrls, LocalCropUrls
from facesearch.api.service import IndexForgetter, QueryService
from facesearch.auth import verifier_from_settings
from facesearch.config import Settings
from facesearch.storage.metadata import metadata_store_from_settings


def index_forgetter(settings: Settings) -> IndexForgetter:
    if settings.backend == "gcp":
        from facesearch.storage.bus_messages import DeletionsMessage
        from facesearch.storage.bus_pubsub import PubSubBus

        bus = PubSubBus(settings.project)

        def queue(face_ids: list[str]) -> str:
            bus.publish(
                settings.deletions_topic, [DeletionsMessage(face_ids, reason="api forget").encode()]
            )
            return "queued"

        return queue

    from facesearch.index import IndexWriter

    writer = IndexWriter.from_settings(settings)

    def tombstone(face_ids: list[str]) -> str:
        writer.delete(face_ids)
        return "tombstoned"

    return tombstone


def crop_urls(settings: Settings) -> CropUrls:
    if settings.backend == "gcp":
        return GcsCropUrls(
            settings.signed_url_ttl_s, service_account=settings.signing_service_account
        )
    return LocalCropUrls.from_data_dir(settings.data_dir, settings.signed_url_ttl_s)


def build_service(settings: Settings) -> QueryService:
    return QueryService(
        settings,
        store=metadata_store_from_settings(settings),
        crops=crop_urls(settings),
        forget_index=index_forgetter(settings),
    )


def build_app(settings: Settings, *, public_url: str | None = None) -> QueryApp:
    return QueryApp(
        settings,
        build_service(settings),
        verifier_from_settings(settings),
        public_url=public_url,
    )
