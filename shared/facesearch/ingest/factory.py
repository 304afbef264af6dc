"""Build the ingest service's collaborators from settings (once per instance).

``backend=gcp``: objects from Cloud Storage, crops in the crops bucket, Pub/Sub,
Firestore. ``backend=local``: files, ``<data_dir>/crops``, an in-process bus,
SQLite. The same :class:`IngestService` runs on either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from facesearch.config import Settings
from facesearch.errors import ConfigError, NotFound
from facesearch.ingest.service import IngestService
from facesearch.ingest.sources import SourceRef
from facesearch.storage.blob import BlobStore, RetryPolicy, blob_store_from_url
from facesearch.storage.bus import Bus, InProcessBus
from facesearch.storage.metadata import MetadataStore, metadata_store_from_settings
from facesearch.vision.pipeline import FacePipeline

#: Fetches a URL source (allow-listed, size-capped); see facesearch.net for the real one.
UrlFetcher = Callable[[str], bytes]


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.blob_retry_attempts, base_delay_s=settings.blob_retry_base_s
    )


def crops_store(settings: Settings) -> BlobStore:
    if settings.crops_bucket:
        return blob_store_from_url(
            f"gs://{settings.crops_bucket}",
            retry=retry_policy(settings),
            timeout_s=settings.blob_timeout_s,
        )
    return blob_store_from_url(Path(settings.data_dir) / "crops")


def make_bus(settings: Settings) -> Bus:
    if settings.backend == "gcp":
        from facesearch.storage.bus_pubsub import PubSubBus

        return PubSubBus(settings.project)
    return InProcessBus()


class SourceLoader:
    """Reads a source's bytes: GCS objects (one store per bucket, reused), files, URLs."""

    def __init__(self, settings: Settings, *, fetch_url: UrlFetcher | None = None) -> None:
        self.settings = settings
        self.fetch_url = fetch_url
        self._stores: dict[str, BlobStore] = {}
        self._lock = threading.Lock()

    def _bucket(self, bucket: str) -> BlobStore:
        with self._lock:
            store = self._stores.get(bucket)
            if store is None:
                store = blob_store_from_url(
                    f"gs://{bucket}",
                    retry=retry_policy(self.settings),
                    timeout_s=self.settings.blob_timeout_s,
                )
                self._stores[bucket] = store
            return store

    def __call__(self, source: SourceRef) -> tuple[bytes, int | None]:
        if source.kind == "gcs":
            return self._bucket(source.bucket).read(source.name)
        if source.kind == "file":
            try:
                return Path(source.name).read_bytes(), None
            except FileNotFoundError as exc:
                raise NotFound(f"{source.name} does not exist") from exc
        if source.kind == "url":
            if self.fetch_url is None:
                raise ConfigError("URL ingest requests need a fetcher (none configured)")
            return self.fetch_url(source.name), None
        raise ConfigError(f"unknown source kind {source.kind!r}")


def build_ingest_service(
    settings: Settings,
    *,
    pipeline: FacePipeline | None = None,
    metadata: MetadataStore | None = None,
    bus: Bus | None = None,
    crops: BlobStore | None = None,
    fetch_url: UrlFetcher | None = None,
) -> IngestService:
    return IngestService(
        settings,
        pipeline=pipeline or FacePipeline(settings),
        metadata=metadata or metadata_store_from_settings(settings),
        crops=crops or crops_store(settings),
        bus=bus or make_bus(settings),
        loader=SourceLoader(settings, fetch_url=fetch_url),
    )
