"""Where the deployment keeps things: buckets, topics, the Firestore database, retries.

Flat environment names (``FACESEARCH_CROPS_BUCKET``, ``FACESEARCH_INGEST_TOPIC``,
``FACESEARCH_BLOB_RETRY_ATTEMPTS``...): Terraform sets them on every service.
"""

from __future__ import annotations

from pydantic import Field

from facesearch.section import SettingsSection


class StorageSettings(SettingsSection):
    """Cloud resource names (the local backend uses ``data_dir`` instead) and blob retries."""

    firestore_database: str = Field(default="(default)", description="Firestore database id.")
    uploads_bucket: str | None = Field(
        default=None,
        description="Watched uploads bucket; ingest skips finalize events from any other bucket.",
    )
    crops_bucket: str | None = Field(
        default=None, description="Face crops bucket. None = <data_dir>/crops (local)."
    )
    ingest_topic: str = Field(default="ingest-requests", description="Topic id: ingest requests.")
    embeddings_topic: str = Field(
        default="face-embeddings", description="Topic id: embeddings for the indexer."
    )
    deletions_topic: str = Field(
        default="face-deletions", description="Topic id: face ids to remove from the index."
    )
    events_topic: str = Field(
        default="face-events", description="Topic id: face_added / face_removed events."
    )
    blob_retry_attempts: int = Field(
        default=5, ge=1, description="Tries for a transient blob-store error."
    )
    blob_retry_base_s: float = Field(
        default=0.2, ge=0.0, description="First retry delay (exponential backoff)."
    )
    blob_timeout_s: float = Field(
        default=60.0, gt=0.0, description="Per-request blob-store timeout."
    )
