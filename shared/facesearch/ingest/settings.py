"""Knobs of the ingest service (``FACESEARCH_INGEST_*``)."""

from __future__ import annotations

from pydantic import Field

from facesearch.section import SettingsSection


class IngestSettings(SettingsSection):
    """What ingest ignores and how it batches the embeddings it publishes."""

    env_prefix = "ingest_"

    skip_prefixes: list[str] = Field(
        default=["crops/", "index/", "_facesearch/"],
        description="Object-name prefixes ingest ignores (our own outputs; JSON list).",
    )
    faces_per_message: int = Field(
        default=256, ge=1, le=2000, description="Embeddings per face-embeddings message."
    )
