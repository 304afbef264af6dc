"""Build the webhook's collaborators from settings, once per instance.

``backend=gcp``: Secret Manager secret, Firestore ledger and metadata, Pub/Sub.
``backend=local``: the secret from settings, SQLite files under ``data_dir``,
an in-process bus. Deletes reuse the query API's forget (crops, index entries,
records), built on the first delete so a cold start stays cheap.
"""

from __future__ import annotations

import threading

from facesearch.cloudinary.ledger import EventLedger, ledger_from_settings
from facesearch.cloudinary.secret import secrets_from_settings
from facesearch.cloudinary.signature import NotificationVerifier
from facesearch.cloudinary.webhook import CloudinaryWebhook, ImageForgetter
from facesearch.config import Settings
from facesearch.storage.bus import Bus, InProcessBus
from facesearch.storage.metadata import MetadataStore, metadata_store_from_settings


def make_bus(settings: Settings) -> Bus:
    if settings.backend == "gcp":
        from facesearch.storage.bus_pubsub import PubSubBus

        return PubSubBus(settings.project)
    return InProcessBus()


def api_forgetter(settings: Settings, metadata: MetadataStore) -> ImageForgetter:
    """``QueryService.forget_image``: the same path as ``DELETE /v1/images/{id}``."""
    lock = threading.Lock()
    built: list[ImageForgetter] = []

    def forget(image_id: str) -> int:
        with lock:
            if not built:
                from facesearch.api.factory import crop_urls, index_forgetter
                from facesearch.api.service import QueryService

                service = QueryService(
                    settings,
                    store=metadata,
                    crops=crop_urls(settings),
                    forget_index=index_forgetter(settings),
                )
                built.append(lambda i: len(service.forget_image(i).deleted_faces))
        return built[0](image_id)

    return forget


def build_webhook(
    settings: Settings,
    *,
    bus: Bus | None = None,
    metadata: MetadataStore | None = None,
    ledger: EventLedger | None = None,
    forget_image: ImageForgetter | None = None,
) -> CloudinaryWebhook:
    secrets = secrets_from_settings(settings)
    verifier = NotificationVerifier(
        secrets,
        algorithm=settings.cloudinary_signature_algorithm,
        max_age_s=settings.cloudinary_signature_max_age_s,
    )
    store = metadata or metadata_store_from_settings(settings)
    return CloudinaryWebhook(
        settings,
        verifier=verifier,
        ledger=ledger or ledger_from_settings(settings),
        bus=bus or make_bus(settings),
        metadata=store,
        forget_image=forget_image or api_forgetter(settings, store),
        secrets=secrets,
    )
