"""Knobs of the indexer service (``FACESEARCH_INDEXER_*``)."""

from __future__ import annotations

from pydantic import Field

from facesearch.section import SettingsSection


class IndexerSettings(SettingsSection):
    """Group commit: how long concurrent pushes are gathered into one manifest swap."""

    env_prefix = "indexer_"

    commit_window_ms: float = Field(
        default=200.0, ge=0.0, description="Group commit: gather concurrent requests this long."
    )
    commit_max_vectors: int = Field(
        default=4096, ge=1, description="Group commit: flush early at this many vectors."
    )
