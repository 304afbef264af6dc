"""Knobs of the web console and of the public share pages (``FACESEARCH_CONSOLE_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from facesearch.section import Count, Fraction, SettingsSection


class ConsoleSettings(SettingsSection):
    """Who may open the console, how long a session lasts, how share links are limited."""

    env_prefix = "console_"

    mode: Literal["off", "local", "iap", "iam"] = "off"
    """off: no console; local: one-time login link -> session cookie (`facesearch serve --console`);
    iap: trust only a verified IAP JWT (x-goog-iap-jwt-assertion); iam: trust only the Cloud Run
    IAM-verified ID token's identity."""
    secret: SecretStr | None = None
    """HMAC key of session cookies, CSRF tokens and share links (>= 32 chars; cloud: from Secret
    Manager). None = a random key kept in <data_dir>/console.key."""
    session_ttl_s: int = Field(default=3600, ge=60, le=86_400)
    """Lifetime of a console session cookie."""
    login_link_ttl_s: int = Field(default=300, ge=10, le=3600)
    """A one-time login link expires after this."""
    iap_audience: str | None = None
    """iap/iam mode: the expected JWT audience (IAP: /projects/N/...; IAM: the service URL)."""
    share_max_ttl_s: int = Field(default=30 * 86_400, ge=60)
    """Longest lifetime a share link may be given."""
    share_threshold_margin: Fraction = 0.05
    """A share page's threshold is the collection's plus this (stricter)."""
    share_max_results: Count = Field(default=24, le=100)
    """Photos a share-page search returns at most."""
    share_link_per_min: Count = 60
    """Searches per minute through one share link (all guests)."""
    share_client_per_min: Count = 6
    """Searches per minute from one client through share links."""
    trust_forwarded_for: bool = False
    """Take the client address from X-Forwarded-For's last hop (set behind Cloud Run / a load
    balancer, which append it; never on a bare server)."""
    img_origins: list[str] = Field(default=[])
    """Extra origins the CSP allows images from (cloud: the signed-URL host
    https://storage.googleapis.com)."""
