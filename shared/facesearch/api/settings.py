"""Knobs of the query API (signing, crop URLs, limits) and of its client."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from facesearch.api.serving import ServerName
from facesearch.section import Count, SettingsSection


class SigningKeySpec(BaseModel):
    """A key limited to some collections and scopes (a plain secret string allows all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    secret: SecretStr
    collections: list[str] | Literal["*"] = "*"
    scopes: list[str] = Field(default_factory=lambda: ["search", "ingest", "manage", "erase"])

    def as_ring_entry(self) -> dict[str, Any]:
        """The ``{secret, collections, scopes}`` object a key ring parses."""
        return {
            "secret": self.secret.get_secret_value(),
            "collections": self.collections,
            "scopes": self.scopes,
        }


def key_secret(value: SecretStr | SigningKeySpec) -> str:
    return (value.secret if isinstance(value, SigningKeySpec) else value).get_secret_value()


class ApiSettings(SettingsSection):
    """Signature checks, crop URL lifetime and per-request limits (flat names)."""

    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
    """Base URL clients reach the API at; links (crop URLs) are built from it, never from a
    request's Host header. Required with the gcp backend; `facesearch serve` defaults it to its
    own address."""
    signing_keys: dict[str, SecretStr | SigningKeySpec] = Field(default={})
    """Local signing keys, JSON {key_id: secret or {secret, collections, scopes}} (cloud: the Secret
    Manager secret)."""
    signing_keys_secret: str | None = None
    """projects/P/secrets/NAME holding JSON {key_id: secret}; read versions/latest."""
    signature_max_skew_s: Count = Field(default=300, le=3600)
    """Signed requests older/newer than this are refused."""
    nonce_db: Path | None = None
    """SQLite replay-guard file (local). None = <data_dir>/nonces.sqlite3."""
    signing_service_account: str | None = None
    """Service account that signs V4 crop URLs via IAM signBlob."""
    signed_url_ttl_s: Count = Field(default=900, le=7 * 24 * 3600)
    """Lifetime of signed crop URLs."""
    body_read_timeout_s: float = Field(default=30.0, gt=0.0, le=600.0)
    """Whole-body read deadline: a client that sends its body slower gets 408."""
    serve_server: ServerName = "waitress"
    """facesearch serve: the HTTP server (docs/api.md, Serving)."""
    serve_workers: Count = Field(default=1, le=64)
    """facesearch serve: worker processes (pre-fork)."""
    serve_threads: int | None = Field(default=None, ge=1, le=256)
    """facesearch serve: request threads per worker (None: 4 per CPU)."""
    open_collections_max: Count = 64
    """Collections a query instance keeps open (LRU)."""
    open_index_budget_mb: Count = 2048
    """Index segment megabytes the open collections may map; beyond it the least recently used
    collection is closed (and cold-opened again on demand)."""
    search_default_k: Count = Field(default=10, le=1000)
    """Matches per face."""
    search_max_k: Count = Field(default=100, le=1000)
    """Largest k accepted."""
    query_max_concurrent_images: Count = 4
    """Requests running detection at once; more get HTTP 429."""
    serve_max_connections: Count = 64
    """facesearch serve: connections handled at once; more are answered 503 with Retry-After at once
    (bounded threads and memory)."""


class ClientSettings(SettingsSection):
    """Where the Python client and ``--remote`` CLI commands send signed requests."""

    env_prefix = "client_"

    url: str | None = None
    """Client/CLI: base URL of the query API (--remote)."""
    key_id: str | None = None
    """Client/CLI: key id to sign with (default: the only local key)."""
    secret: SecretStr | None = None
    """Client/CLI: secret of key_id."""
