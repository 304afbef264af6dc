"""Assemble the services from a backend: what each function's ``main.py`` and the CLI call.

One function per service, each taking the instance's :class:`Backend` (so the
services share its clients) and returning a ready object. Tests build services
the same way, or construct them directly with fakes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from facesearch.backends import Backend
from facesearch.errors import ConfigError

if TYPE_CHECKING:
    from facesearch.api.app import QueryApp
    from facesearch.api.service import QueryService
    from facesearch.auth.verify import Verifier
    from facesearch.cloudinary.webhook import CloudinaryWebhook, ImageForgetter
    from facesearch.indexer.service import IndexerService
    from facesearch.ingest.loader import UrlFetcher
    from facesearch.ingest.service import IngestService


def ingest_service(backend: Backend, *, fetch_url: UrlFetcher | None = None) -> IngestService:
    """Ingest: objects from buckets (and URLs through ``fetch_url``), crops, embeddings out."""
    from facesearch.ingest.loader import SourceLoader
    from facesearch.ingest.service import IngestService

    return IngestService(
        backend.settings,
        pipeline=backend.pipeline(),
        metadata=backend.metadata(),
        crops=backend.crops(),
        bus=backend.bus(),
        loader=SourceLoader(backend.bucket, fetch_url=fetch_url),
    )


def cloud_ingest_service(backend: Backend) -> IngestService:
    """The ingest function's service: URL requests come from the Cloudinary webhook, so they
    are fetched only from our Cloudinary delivery host (needs the cloud name here too)."""
    from facesearch.cloudinary.delivery import cloudinary_fetcher

    return ingest_service(backend, fetch_url=cloudinary_fetcher(backend.settings))


def indexer_service(backend: Backend) -> IndexerService:
    from facesearch.indexer.service import IndexerService

    storage = backend.settings.storage
    return IndexerService(
        backend.index_writer(),
        backend.bus(),
        events_topic=storage.events_topic,
        deletions_topic=storage.deletions_topic,
    )


def verifier(backend: Backend) -> Verifier:
    from facesearch.auth.verify import Verifier

    return Verifier(
        backend.keyring(),
        backend.nonces(),
        max_skew_s=backend.settings.api.signature_max_skew_s,
    )


def query_service(backend: Backend) -> QueryService:
    from facesearch.api.service import QueryService
    from facesearch.net.fetch import FetchPolicy, fetch_image

    policy = FetchPolicy.from_settings(backend.settings)

    return backend.once(  # one per backend: the webhook's forget reuses it
        "query_service",
        lambda: QueryService(
            backend.settings,
            store=backend.metadata(),
            crops=backend.crop_urls(),
            forget_index=backend.index_forgetter(),
            pipeline=backend.pipeline(),
            fetch=lambda url: fetch_image(url, policy).data,
            open_reader=lambda model: backend.index_reader(expected_model=model),
        ),
    )


def query_app(backend: Backend) -> QueryApp:
    """The signed HTTP API. In the cloud it needs its public URL (links are built from it)."""
    from facesearch.api.app import QueryApp

    if backend.kind == "gcp" and not backend.settings.api.public_url:
        raise ConfigError(
            "the query service needs FACESEARCH_PUBLIC_URL (its own https URL): links are"
            " built from it, never from a request's Host header"
        )
    return QueryApp(backend.settings, query_service(backend), verifier(backend))


def api_forgetter(backend: Backend) -> ImageForgetter:
    """``QueryService.forget_image``, the path of ``DELETE /v1/images/{id}``, built on the
    first delete so a webhook cold start does not load the query service's models."""
    lock = threading.Lock()

    def forget(image_id: str) -> int:
        with lock:
            service = query_service(backend)
        return len(service.forgetter.forget_image(image_id).deleted_faces)

    return forget


def cloudinary_webhook(
    backend: Backend, *, forget_image: ImageForgetter | None = None
) -> CloudinaryWebhook:
    """The webhook; deletes go through the query API's forget unless ``forget_image``."""
    from facesearch.cloudinary.signature import NotificationVerifier
    from facesearch.cloudinary.webhook import CloudinaryWebhook

    settings = backend.settings
    secrets = backend.cloudinary_secrets()
    return CloudinaryWebhook(
        settings,
        verifier=NotificationVerifier(
            secrets,
            algorithm=settings.cloudinary.signature_algorithm,
            max_age_s=settings.cloudinary.signature_max_age_s,
        ),
        ledger=backend.cloudinary_ledger(),
        bus=backend.bus(),
        metadata=backend.metadata(),
        forget_image=forget_image or api_forgetter(backend),
        secrets=secrets,
    )
