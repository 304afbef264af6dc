"""Assemble the services from a backend: what each function's ``main.py`` and the CLI call.

One function per service, each taking the instance's :class:`Backend` (so the
services share its clients) and returning a ready object. Tests build services
the same way, or construct them directly with fakes.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from facesearch.backends import Backend
from facesearch.config import Settings
from facesearch.errors import BadRequest, ConfigError, NotFound

if TYPE_CHECKING:
    from facesearch.api.app import QueryApp
    from facesearch.api.collections import CollectionAdmin
    from facesearch.api.service import QueryService
    from facesearch.auth.verify import Verifier
    from facesearch.cloudinary.webhook import CloudinaryWebhook, ImageForgetter
    from facesearch.console.app import ConsoleApp
    from facesearch.indexer.service import IndexerService
    from facesearch.ingest.loader import UrlFetcher
    from facesearch.ingest.service import IngestService
    from facesearch.people.clusterer import ClustererService
    from facesearch.people.ports import NeighbourSearch
    from facesearch.people.service import PeopleService


def ingest_service(
    backend: Backend,
    *,
    fetch_url: UrlFetcher | None = None,
    fetch_video: UrlFetcher | None = None,
) -> IngestService:
    """Ingest: objects from buckets (and URLs through ``fetch_url`` / ``fetch_video``),
    crops, embeddings out; videos planned into chunk tasks on the ingest topic."""
    from facesearch.ingest.loader import SourceLoader
    from facesearch.ingest.service import IngestService
    from facesearch.ingest.video import VideoIngest

    loader = SourceLoader(
        backend.bucket,
        fetch_url=fetch_url,
        fetch_video=fetch_video,
        staging=backend.crops(),
        local_files=backend.kind == "local",  # a message never names a file in the cloud
    )
    return IngestService(
        backend.settings,
        stores=backend.metadata,
        pipelines=backend.pipeline,
        collections=backend.collections(),
        crops=backend.crops(),
        bus=backend.bus(),
        loader=loader,
        videos=VideoIngest(
            backend.settings,
            crops=backend.crops(),
            bus=backend.bus(),
            open_video=loader.open_video,
            fetch_video=fetch_video,
        ),
    )


def cloud_ingest_service(backend: Backend) -> IngestService:
    """The ingest function's service: URL requests come from the Cloudinary webhook, so they
    are fetched only from our Cloudinary delivery host (needs the cloud name here too)."""
    from facesearch.cloudinary.delivery import cloudinary_fetcher

    settings = backend.settings
    return ingest_service(
        backend,
        fetch_url=cloudinary_fetcher(settings),
        fetch_video=cloudinary_fetcher(settings, resource_type="video"),
    )


def indexer_service(backend: Backend) -> IndexerService:
    from facesearch.collections.maintenance import Maintenance
    from facesearch.indexer.service import IndexerService

    storage = backend.settings.storage
    return IndexerService(
        lambda collection_id: backend.index_writer(collection_id=collection_id),
        backend.bus(),
        events_topic=storage.events_topic,
        deletions_topic=storage.deletions_topic,
        require_active=lambda cid: backend.collections().require_active(cid, fresh=True),
        discard_index=lambda cid: backend.erase_job().discard_index(cid),
        maintenance=Maintenance(
            backend.erase_job(),
            backend.retention(),
            backend.bus(),
            storage.deletions_topic,
            stuck=backend.stuck_sweep(),
        ),
    )


def people_service(
    backend: Backend, collection_id: str, *, search: NeighbourSearch | None = None
) -> PeopleService:
    """One collection's persons: its people store, a neighbour search over its index (a
    reader of its own unless ``search`` is given), its metadata store as the face source."""
    from facesearch.people.adapters import IndexNeighbourSearch, MetadataFaceSource
    from facesearch.people.engine import PeopleEngine
    from facesearch.people.service import PeopleService

    return PeopleService(
        PeopleEngine(
            backend.people(collection_id),
            search or IndexNeighbourSearch(backend.index_reader(collection_id=collection_id)),
            MetadataFaceSource(backend.metadata(collection_id)),
            backend.settings.people,
        )
    )


def clusterer_service(backend: Backend) -> ClustererService:
    """face-events -> persons for every collection (the clusterer function, embedded mode)."""
    from facesearch.people.clusterer import ClustererService

    return backend.once(
        "clusterer",
        lambda: ClustererService(
            lambda collection_id: people_service(backend, collection_id),
            require_active=lambda cid: backend.collections().require_active(cid),
        ),
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

    directory = backend.collections()
    return backend.once(  # one per backend: the webhook's forget reuses it
        "query_service",
        lambda: QueryService(
            backend.settings,
            stores=backend.metadata,
            people=backend.people,
            crops=backend.crop_urls(),
            forget_index=backend.index_forgetter,
            pipelines=backend.pipeline,
            fetch=lambda url: fetch_image(url, policy).data,
            open_reader=lambda collection_id, model: backend.index_reader(
                expected_model=model, collection_id=collection_id
            ),
            policies=directory.settings,
            drop_cache=lambda collection_id: shutil.rmtree(
                backend.index_cache_dir(collection_id), ignore_errors=True
            ),
            crops_root=backend.crops().url,
        ),
    )


def query_app(backend: Backend) -> QueryApp:
    """The signed HTTP API. In the cloud it needs its public URL (links are built from it)."""
    from facesearch.api.app import QueryApp
    from facesearch.collections.quota import RequestQuota

    if backend.kind == "gcp" and not backend.settings.api.public_url:
        raise ConfigError(
            "the query service needs FACESEARCH_PUBLIC_URL (its own https URL): links are"
            " built from it, never from a request's Host header"
        )
    directory = backend.collections()
    quota = RequestQuota(lambda cid: directory.settings(cid).requests_per_s)
    return QueryApp(
        backend.settings,
        query_service(backend),
        verifier(backend),
        admin=collection_admin(backend),
        collections=directory,
        quota=quota,
    )


def collection_admin(
    backend: Backend, *, start_erase: Callable[[str], None] | None = None
) -> CollectionAdmin:
    """Create, list, read, change and erase collections (the API's and the CLI's).

    ``start_erase`` defaults to the backend's hand-over (Pub/Sub, or a local thread);
    the CLI passes one that erases before it returns.
    """
    from facesearch.api.collections import CollectionAdmin

    return CollectionAdmin(
        backend.catalog(),
        backend.collections(),
        query_service(backend),
        start_erase=start_erase or backend.start_erase,
        check_embedder=lambda name: check_embedder(backend.settings, name),
    )


def check_embedder(settings: Settings, name: str) -> None:
    """A collection may only name an embedder of the model manifest."""
    from facesearch.vision.registry import load_manifest

    spec = load_manifest(settings.vision.models_dir).get(name)
    if spec is None or spec.role != "embedder":
        raise BadRequest(f"no embedder {name!r} in the model manifest")


def api_forgetter(backend: Backend, kind: str = "image") -> ImageForgetter:
    """``forget_image`` (``DELETE /v1/images/{id}``) or, for ``kind="video"``,
    ``forget_video`` (``DELETE /v1/videos/{id}``) of the query service, built on the first
    delete so a webhook cold start does not load the query service's models."""
    lock = threading.Lock()

    def forget(collection_id: str, item_id: str) -> int:
        with lock:
            service = query_service(backend)
        forgetter = service.collection(collection_id).forgetter
        if kind == "video":
            return len(forgetter.forget_video(item_id).deleted_faces)
        return len(forgetter.forget_image(item_id).deleted_faces)

    return forget


def cloudinary_webhook(
    backend: Backend,
    *,
    forget_image: ImageForgetter | None = None,
    forget_video: ImageForgetter | None = None,
) -> CloudinaryWebhook:
    """The webhook; deletes go through the query API's forget unless given forgetters."""
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
        stores=backend.metadata,
        forget_image=forget_image or api_forgetter(backend),
        forget_video=forget_video or api_forgetter(backend, "video"),
        secrets=secrets,
    )


def console_app(backend: Backend, app: QueryApp | None = None) -> ConsoleApp:
    """The web console and share pages in front of the query API (``app``, else a new one).

    Photos are read where ingest found them (local file, bucket object); in embedded mode a
    failed image can be retried (ingest runs again in this process, and its faces are
    indexed before the call returns).
    """
    from facesearch.console.app import ConsoleApp
    from facesearch.console.collection_views import ConsoleParts
    from facesearch.console.tokens import console_key, derived_key
    from facesearch.ingest.loader import SourceLoader
    from facesearch.ingest.sources import SourceRef
    from facesearch.storage.metadata import ImageRecord

    query = app or query_app(backend)
    loader = SourceLoader(backend.bucket)

    def photos(record: ImageRecord) -> bytes:
        info = record.source_info
        kind = str(info.get("kind", ""))
        if kind not in ("file", "gcs"):
            raise NotFound(f"{kind or 'this'} source is not served")
        ref = SourceRef(kind, str(info["name"]), "", bucket=str(info.get("bucket", "")))
        return loader(ref)[0]

    retry: Callable[[str, ImageRecord], str] | None = None
    if backend.kind == "local":
        from facesearch.local import EmbeddedSystem

        systems: dict[str, EmbeddedSystem] = {}

        def retry_local(collection_id: str, record: ImageRecord) -> str:
            if record.source_info.get("kind") != "file":
                raise NotFound("only local files can be retried here")
            if collection_id not in systems:
                systems[collection_id] = EmbeddedSystem(
                    backend.settings, collection_id=collection_id
                )
            outcome = systems[collection_id].ingest_file(Path(str(record.source_info["name"])))
            systems[collection_id].flush()
            return str(outcome.outcome)

        retry = retry_local

    settings = backend.settings
    if settings.console.secret is None and backend.kind == "gcp":  # instances share no disk
        ring = backend.keyring()
        key = derived_key(s for k in ring.key_ids() if (s := ring.secret(k)) is not None)
    else:
        key = console_key(settings)
    return ConsoleApp(query, key, parts=ConsoleParts(photos=photos, retry=retry))
