"""Reads a source's bytes: Cloud Storage objects, local files, or fetched URLs.

The bucket stores come from the composition root (one client, one store per
bucket); URL sources go through an injected fetcher (for ingest requests from
the Cloudinary webhook: only that cloud's delivery host).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from facesearch.errors import ConfigError, NotFound
from facesearch.ingest.sources import SourceRef
from facesearch.storage.blob import BlobStore

#: Fetches a URL source (allow-listed, size-capped); see facesearch.net for the real one.
UrlFetcher = Callable[[str], bytes]


class SourceLoader:
    """``loader(source) -> (bytes, generation or None)`` for every kind of source."""

    def __init__(
        self, bucket: Callable[[str], BlobStore], *, fetch_url: UrlFetcher | None = None
    ) -> None:
        self._bucket = bucket
        self.fetch_url = fetch_url

    def __call__(self, source: SourceRef) -> tuple[bytes, int | None]:
        if source.kind == "gcs":
            return self._bucket(source.bucket).read(source.name)
        if source.kind == "file":
            try:
                return Path(source.name).read_bytes(), None
            except FileNotFoundError as exc:
                raise NotFound(f"{source.name} does not exist") from exc
        if source.kind == "url":
            if self.fetch_url is None:
                raise ConfigError("URL ingest requests need a fetcher (none configured)")
            return self.fetch_url(source.name), None
        raise ConfigError(f"unknown source kind {source.kind!r}")
