"""Knobs of the indexer service (``FACESEARCH_INDEXER_*``)."""

from __future__ import annotations

from pydantic import NonNegativeFloat

from facesearch.section import Count, SettingsSection


class IndexerSettings(SettingsSection):
    """Group commit: how long concurrent pushes are gathered into one manifest swap."""

    env_prefix = "indexer_"

    commit_window_ms: NonNegativeFloat = 200.0
    """Group commit: gather concurrent requests this long."""
    commit_max_vectors: Count = 4096
    """Group commit: flush early at this many vectors."""
