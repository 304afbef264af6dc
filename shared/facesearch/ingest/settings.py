"""Knobs of the ingest service (``FACESEARCH_INGEST_*``)."""

from __future__ import annotations

from pydantic import Field

from facesearch.section import Count, SettingsSection


class IngestSettings(SettingsSection):
    """What ingest ignores and how it batches the embeddings it publishes."""

    env_prefix = "ingest_"

    skip_prefixes: list[str] = Field(default=["crops/", "index/", "_facesearch/"])
    """Object-name prefixes ingest ignores (our own outputs; JSON list)."""
    collection_pattern: str = Field(
        default="collections/{collection}/", pattern=r"^[^{}]*\{collection\}[^{}]*$"
    )
    """Uploaded object names starting like this go to that collection (others to 'default'):
    collections/wedding-2026/a.jpg is in wedding-2026."""
    faces_per_message: Count = Field(default=256, le=2000)
    """Embeddings per face-embeddings message."""
