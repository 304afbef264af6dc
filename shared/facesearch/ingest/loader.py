"""Reads a source's bytes: Cloud Storage objects, local files, or fetched URLs.

The bucket stores come from the composition root (one client, one store per
bucket); URL sources go through an injected fetcher (for ingest requests from
the Cloudinary webhook: only that cloud's delivery host). Videos are not read whole:
:meth:`SourceLoader.open_video` gives a seekable reader (ranged reads on GCS) of
where a video task says the video is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from facesearch.errors import BadMessage, ConfigError, NotFound
from facesearch.ingest.sources import SourceRef
from facesearch.storage.blob import BlobStore

#: Fetches a URL source (allow-listed, size-capped); see facesearch.net for the real one.
UrlFetcher = Callable[[str], bytes]


class SourceLoader:
    """``loader(source) -> (bytes, generation or None)`` for every kind of source.

    ``staging``: the store a video fetched from a URL is copied into for its chunks
    (the crops store); ``local_files``: video tasks may name local files (embedded mode
    only: in the cloud a message must never make ingest read its own file system).
    """

    def __init__(
        self,
        bucket: Callable[[str], BlobStore],
        *,
        fetch_url: UrlFetcher | None = None,
        fetch_video: UrlFetcher | None = None,
        staging: BlobStore | None = None,
        local_files: bool = False,
    ) -> None:
        self._bucket = bucket
        self.fetch_url = fetch_url
        self.fetch_video = fetch_video
        self.staging = staging
        self.local_files = local_files

    def __call__(self, source: SourceRef) -> tuple[bytes, int | None]:
        if source.kind == "gcs":
            return self._bucket(source.bucket).read(source.name)
        if source.kind == "file":
            try:
                return Path(source.name).read_bytes(), None
            except FileNotFoundError as exc:
                raise NotFound(f"{source.name} does not exist") from exc
        if source.kind == "url":
            fetch = self.fetch_video if source.claims_video else self.fetch_url
            if fetch is None:
                raise ConfigError("URL ingest requests need a fetcher (none configured)")
            return fetch(source.name), None
        raise ConfigError(f"unknown source kind {source.kind!r}")

    def open_video(self, where: Mapping[str, Any]) -> BinaryIO:
        """A seekable reader of a video task's source (see VideoTask.source)."""
        kind = where.get("kind")
        if kind == "gcs":
            generation = where.get("generation")
            return self._bucket(str(where["bucket"])).open_read(
                str(where["name"]), generation=None if generation is None else int(generation)
            )
        if kind == "blob":
            if self.staging is None:
                raise ConfigError("no staging store for fetched videos")
            return self.staging.open_read(str(where["name"]))
        if kind == "file" and self.local_files:
            try:
                return Path(str(where["path"])).open("rb")
            except FileNotFoundError as exc:
                raise NotFound(f"{where['path']} does not exist") from exc
        raise BadMessage(f"a video source of kind {kind!r} cannot be read here")
