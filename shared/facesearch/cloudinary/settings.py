"""Knobs of the Cloudinary webhook and delivery fetcher (``FACESEARCH_CLOUDINARY_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from facesearch.section import Count, SettingsSection


class CloudinarySettings(SettingsSection):
    """Which cloud we accept notifications from and fetch images of."""

    env_prefix = "cloudinary_"

    cloud_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,128}$")
    """Cloudinary cloud name; images are fetched only from its delivery host."""
    secret_name: str | None = None
    """projects/P/secrets/NAME holding the Cloudinary API secret (plain text); read versions/latest,
    refreshed every 5 min."""
    api_secret: SecretStr | None = None
    """Local/test Cloudinary API secret (cloud: cloudinary_secret_name)."""
    signature_max_age_s: Count = Field(default=7200, le=86400)
    """Notifications whose X-Cld-Timestamp is older than this are refused."""
    signature_algorithm: Literal["sha1", "sha256"] = "sha1"
    """The account's notification signature algorithm."""
    secure_distribution: str | None = None
    """Custom delivery host (private CDN CNAME) instead of res.cloudinary.com."""
    collection_from: Literal["none", "folder", "tag", "context"] = "none"
    """Which collection an upload goes to: 'folder' (first folder of the asset), 'tag' (a tag
    collection:<id>), 'context' (custom context key 'collection'), or 'none' (always 'default')."""
    max_side_px: int = Field(default=2048, ge=64, le=10000)
    """Ingest asks Cloudinary for a derivative no larger than this (c_limit)."""
