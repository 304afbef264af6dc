"""Where the deployment keeps things: buckets, topics, the Firestore database, retries.

Flat environment names (``FACESEARCH_CROPS_BUCKET``, ``FACESEARCH_INGEST_TOPIC``,
``FACESEARCH_BLOB_RETRY_ATTEMPTS``...): Terraform sets them on every service.
"""

from __future__ import annotations

from pydantic import NonNegativeFloat, PositiveFloat

from facesearch.section import Count, SettingsSection


class StorageSettings(SettingsSection):
    """Cloud resource names (the local backend uses ``data_dir`` instead) and blob retries."""

    firestore_database: str = "(default)"
    """Firestore database id."""
    uploads_bucket: str | None = None
    """Watched uploads bucket; ingest skips finalize events from any other bucket."""
    crops_bucket: str | None = None
    """Face crops bucket. None = <data_dir>/crops (local)."""
    ingest_topic: str = "ingest-requests"
    """Topic id: ingest requests."""
    embeddings_topic: str = "face-embeddings"
    """Topic id: embeddings for the indexer."""
    deletions_topic: str = "face-deletions"
    """Topic id: face ids to remove from the index."""
    events_topic: str = "face-events"
    """Topic id: face_added / face_removed events."""
    blob_retry_attempts: Count = 5
    """Tries for a transient blob-store error."""
    blob_retry_base_s: NonNegativeFloat = 0.2
    """First retry delay (exponential backoff)."""
    blob_timeout_s: PositiveFloat = 60.0
    """Per-request blob-store timeout."""
