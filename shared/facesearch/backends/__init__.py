"""The composition root: every client and adapter is built here, once per instance.

A :class:`Backend` turns :class:`~facesearch.config.Settings` into the objects
the services need — metadata store, bus, blob stores, nonce store, Cloudinary
ledger, crop URLs, key ring, the face pipeline — creating each on first use and
reusing it afterwards (a Cloud Run instance serves many requests with one set of
clients). :mod:`.gcp` wires Firestore, Cloud Storage and Pub/Sub (one client of
each); :mod:`.local` wires SQLite files, a directory and the in-process bus.
:mod:`.services` assembles the ingest, indexer, query and webhook services from a
backend. Ports and adapters never read settings or import each other; this is
the only package that knows which adapter goes with which port.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

from facesearch.config import Settings
from facesearch.errors import ConfigError
from facesearch.storage.blob import BlobStore, RetryPolicy
from facesearch.storage.metadata import DEFAULT_COLLECTION, collection_prefix

if TYPE_CHECKING:
    from facesearch.api.crops import CropUrls
    from facesearch.api.forget import IndexForgetter
    from facesearch.auth.keys import KeyRing
    from facesearch.collections.directory import CollectionDirectory
    from facesearch.collections.erase import EraseJob
    from facesearch.collections.retention import RetentionSweep
    from facesearch.index.reader import IndexReader
    from facesearch.index.writer import IndexWriter
    from facesearch.ops.sweep import StuckSweep
    from facesearch.people.ports import PeopleStore
    from facesearch.storage.bus import Bus, DeadLetters
    from facesearch.storage.catalog import Catalog
    from facesearch.storage.ledger import EventLedger
    from facesearch.storage.metadata import MetadataStore
    from facesearch.storage.nonces import NonceStore
    from facesearch.vision.pipeline import FacePipeline

T = TypeVar("T")


class Backend(ABC):
    """Lazily built, cached collaborators for one process (thread-safe)."""

    kind: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()

    def once(self, name: str, build: Callable[[], T]) -> T:
        """Build ``name`` on first use; later calls (any thread) get the same object."""
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            value: T = self._built[name]
            return value

    def override(self, **objects: Any) -> Backend:
        """Use these objects instead of building them (tests, embedded injection).

        Keys are method names (``bus=``, ``metadata=``, ``pipeline=``...); call before
        anything asks for them.
        """
        with self._lock:
            for name, value in objects.items():
                if not callable(getattr(self, name, None)):
                    raise AttributeError(f"{type(self).__name__} builds no {name!r}")
                if name in self._built:
                    raise RuntimeError(f"{name!r} was already built; override it earlier")
                self._built[name] = value
        return self

    # --- adapters that differ per backend -------------------------------------------------

    @abstractmethod
    def catalog(self) -> Catalog:
        """The collections, and a scoped metadata store for each."""

    def metadata(self, collection_id: str = DEFAULT_COLLECTION) -> MetadataStore:
        """The source of truth of one collection: its images and faces."""
        key = "metadata" if collection_id == DEFAULT_COLLECTION else f"metadata:{collection_id}"
        return self.once(key, lambda: self.catalog().store(collection_id))

    def people(self, collection_id: str = DEFAULT_COLLECTION) -> PeopleStore:
        """One collection's persons, their faces and the correction log (same database)."""
        key = "people" if collection_id == DEFAULT_COLLECTION else f"people:{collection_id}"
        return self.once(key, lambda: self.catalog().people(collection_id))

    @abstractmethod
    def bus(self) -> Bus:
        """Where services publish messages (Pub/Sub, or the in-process bus)."""

    @abstractmethod
    def dead_letters(self) -> DeadLetters:
        """The dead-letter queues of the consumed topics (``facesearch dlq``)."""

    @abstractmethod
    def nonces(self) -> NonceStore:
        """The signed API's replay guard."""

    @abstractmethod
    def cloudinary_ledger(self) -> EventLedger:
        """The webhook's create-if-absent dedupe ledger."""

    @abstractmethod
    def crop_urls(self) -> CropUrls:
        """Time-limited URLs for crops, and their deletion."""

    @abstractmethod
    def index_forgetter(self, collection_id: str = DEFAULT_COLLECTION) -> IndexForgetter:
        """Remove face ids from a collection's index: queued for the indexer, or now."""

    # --- shared ---------------------------------------------------------------------------

    def gcs_client(self) -> Any:
        """The one Cloud Storage client (``gs://`` URLs work on either backend)."""

        def build() -> Any:
            # importlib: keeps mypy from resolving google.cloud from a typed sibling package
            storage = importlib.import_module("google.cloud.storage")
            return storage.Client(project=self.settings.project)

        return self.once("gcs_client", build)

    def retry_policy(self) -> RetryPolicy:
        storage = self.settings.storage
        return RetryPolicy(
            attempts=storage.blob_retry_attempts, base_delay_s=storage.blob_retry_base_s
        )

    def blob_store(self, url: str | Path) -> BlobStore:
        """A store for ``gs://bucket/prefix``, ``file:///abs/dir`` or a plain path (cached)."""
        return self.once(f"blob:{url}", lambda: self._open_blob_store(str(url)))

    def _open_blob_store(self, text: str) -> BlobStore:
        if text.startswith("gs://"):
            parsed = urlparse(text)
            if not parsed.netloc:
                raise ConfigError(f"blob store URL {text!r} has no bucket name")
            from facesearch.storage.gcp.blob import GcsBlobStore

            return GcsBlobStore(
                parsed.netloc,
                parsed.path.strip("/"),
                client=self.gcs_client,  # created on first use, then shared
                retry=self.retry_policy(),
                timeout_s=self.settings.storage.blob_timeout_s,
            )
        if text.startswith("file://"):
            parsed = urlparse(text)
            if parsed.netloc not in ("", "localhost"):
                raise ConfigError(f"file URL {text!r} must be file:///absolute/path")
            text = unquote(parsed.path)
        elif "://" in text:
            raise ConfigError(f"unsupported blob store URL {text!r} (use gs://, file:// or a path)")
        from facesearch.storage.local.blob import LocalBlobStore

        return LocalBlobStore(Path(text))

    def crops(self) -> BlobStore:
        """Where ingest stores aligned face crops: the crops bucket, else ``<data_dir>/crops``."""
        bucket = self.settings.storage.crops_bucket
        return self.blob_store(f"gs://{bucket}" if bucket else self.settings.data_dir / "crops")

    def bucket(self, name: str) -> BlobStore:
        """A whole bucket (ingest reads uploaded objects through this)."""
        return self.blob_store(f"gs://{name}")

    def index_location(self, collection_id: str = DEFAULT_COLLECTION) -> str:
        """One index per collection: ``default`` at the configured root (where the index
        of the times before collections is), others under ``<root>/collections/<id>``."""
        root = self.settings.index.location(self.settings.data_dir).rstrip("/")
        prefix = collection_prefix(collection_id).rstrip("/")
        return f"{root}/{prefix}" if prefix else root

    def index_store(
        self, url: str | None = None, *, collection_id: str = DEFAULT_COLLECTION
    ) -> BlobStore:
        return self.blob_store(url or self.index_location(collection_id))

    def index_cache_dir(self, collection_id: str = DEFAULT_COLLECTION) -> Path:
        return self.settings.index.cache_path(self.settings.data_dir) / collection_prefix(
            collection_id
        )

    def index_writer(
        self, url: str | None = None, *, collection_id: str = DEFAULT_COLLECTION
    ) -> IndexWriter:
        from facesearch.index.writer import IndexWriter

        key = "index_writer" if url is None else f"index_writer:{url}"
        if collection_id != DEFAULT_COLLECTION:
            key = f"index_writer@{collection_id}"
        return self.once(
            key,
            lambda: IndexWriter(
                self.index_store(url, collection_id=collection_id),
                cache_dir=self.index_cache_dir(collection_id),
                params=self.settings.index,
            ),
        )

    def index_reader(
        self,
        *,
        expected_model: str | None = None,
        url: str | None = None,
        collection_id: str = DEFAULT_COLLECTION,
    ) -> IndexReader:
        """A new reader (each keeps its own snapshot; callers hold on to it)."""
        from facesearch.index.reader import IndexReader

        return IndexReader(
            self.index_store(url, collection_id=collection_id),
            cache_dir=self.index_cache_dir(collection_id),
            params=self.settings.index,
            expected_model=expected_model,
        )

    def pipeline(self, embedder: str | None = None) -> FacePipeline:
        """The vision pipeline (models load on first use); for a collection with its own
        embedder, a pipeline that shares the default one's detector and liveness model."""
        from facesearch.vision.pipeline import FacePipeline

        base = self.once("pipeline", lambda: FacePipeline(self.settings))
        if embedder is None or embedder == self.settings.vision.embedder:
            return base
        return self.once(
            f"pipeline:{embedder}",
            lambda: FacePipeline(
                self.settings.with_overrides(embedder=embedder),
                detector=base.detector,
                liveness=base.liveness,
            ),
        )

    def erase_job(self) -> EraseJob:
        from facesearch.collections.erase import EraseJob

        return self.once(
            "erase_job",
            lambda: EraseJob(
                self.catalog(),
                stores=self.metadata,
                people=self.people,
                crops=self.crops(),
                index_store=lambda cid: self.index_store(collection_id=cid),
                ledger=self.cloudinary_ledger(),
                caches=self.index_cache_dir,
            ),
        )

    def retention(self) -> RetentionSweep:
        from facesearch.collections.retention import RetentionSweep

        return self.once(
            "retention",
            lambda: RetentionSweep(
                self.catalog(),
                stores=self.metadata,
                crops=self.crops(),
                remove_from_index=self.remove_from_index,
            ),
        )

    def stuck_sweep(self) -> StuckSweep:
        """Re-queues images stuck in ``processing`` (``facesearch doctor``, the indexer's
        maintenance message)."""
        from facesearch.ops.sweep import StuckSweep

        return self.once(
            "stuck_sweep",
            lambda: StuckSweep(
                self.catalog(),
                stores=self.metadata,
                bus=self.bus(),
                ingest_topic=self.settings.storage.ingest_topic,
                older_than_s=self.settings.ops.stuck_after_s,
            ),
        )

    def remove_from_index(self, collection_id: str, face_ids: list[str]) -> None:
        """Tombstone faces in a collection's index *and announce it* on face-events, as
        every index change is (the clusterer takes the faces out of their persons)."""
        from facesearch.storage.messages import FaceEvent

        deleted = self.index_writer(collection_id=collection_id).delete(face_ids)
        event = FaceEvent(
            "face_removed", face_ids, None, deleted.manifest_version, collection_id=collection_id
        )
        self.bus().publish(self.settings.storage.events_topic, [event.encode()])

    @abstractmethod
    def start_erase(self, collection_id: str) -> None:
        """Mark a collection erasing and hand the work over (Pub/Sub, or a local thread)."""

    def collections(self) -> CollectionDirectory:
        """Collection records, cached briefly for the checks every request makes."""
        from facesearch.collections.directory import CollectionDirectory

        return self.once("collections", lambda: CollectionDirectory(self.catalog()))

    def keyring(self) -> KeyRing:
        """Secret Manager when ``signing_keys_secret`` is set, else ``FACESEARCH_SIGNING_KEYS``."""

        def build() -> KeyRing:
            from facesearch.api.settings import SigningKeySpec
            from facesearch.auth.keys import (
                RefreshingKeyRing,
                StaticKeyRing,
                secret_manager_loader,
            )

            api = self.settings.api
            if api.signing_keys_secret:
                return RefreshingKeyRing(
                    secret_manager_loader(api.signing_keys_secret), source=api.signing_keys_secret
                )
            return StaticKeyRing(
                {
                    key_id: value.as_ring_entry()
                    if isinstance(value, SigningKeySpec)
                    else value.get_secret_value()
                    for key_id, value in api.signing_keys.items()
                },
                source="FACESEARCH_SIGNING_KEYS",
            )

        return self.once("keyring", build)

    def cloudinary_secrets(self) -> Callable[[], tuple[str, ...]]:
        from facesearch.cloudinary.secret import secrets_from_settings

        return self.once(
            "cloudinary_secrets", lambda: secrets_from_settings(self.settings.cloudinary)
        )


def backend_for(settings: Settings) -> Backend:
    """The backend ``settings.backend`` names (``gcp`` or ``local``)."""
    if settings.backend == "gcp":
        from facesearch.backends.gcp import GcpBackend

        return GcpBackend(settings)
    from facesearch.backends.local import LocalBackend

    return LocalBackend(settings)


def open_blob_store(url: str | Path, settings: Settings | None = None) -> BlobStore:
    """A blob store for a URL, outside any service (CLI tools, tests, scripts)."""
    from facesearch.config import load_settings

    return backend_for(settings or load_settings()).blob_store(url)


__all__ = ["Backend", "backend_for", "open_blob_store"]
