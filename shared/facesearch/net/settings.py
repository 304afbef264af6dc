"""Knobs of the SSRF-safe fetcher for ``image_url`` (``FACESEARCH_FETCH_*``)."""

from __future__ import annotations

from pydantic import Field, NonNegativeInt

from facesearch.section import SettingsSection


class FetchSettings(SettingsSection):
    """Which hosts a caller may make us fetch from, and how long we wait."""

    env_prefix = "fetch_"

    allowed_hosts: list[str] = Field(default=[])
    """Hosts an image_url may point at (JSON list; '*.example.com' allowed)."""
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)
    """Whole-download deadline for image_url."""
    max_redirects: NonNegativeInt = Field(default=3, le=10)
    """Redirects followed (each must be allow-listed)."""
