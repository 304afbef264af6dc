"""Where an image comes from, and the stable id derived from it.

``image_id`` is a hash of the source's identity — bucket/object/generation for
a Cloud Storage object, the content hash for a local file, public_id/version
for Cloudinary — so every redelivery of the same event lands on the same
``images/{image_id}`` and the same ``faces/{image_id}-{index}``.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from facesearch import jsonsafe
from facesearch.errors import BadMessage
from facesearch.logs import log_fields
from facesearch.storage.messages import VideoTask
from facesearch.storage.metadata import DEFAULT_COLLECTION, check_collection_id

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
#: names a folder walk (``facesearch ingest FOLDER``) picks up as videos; the content decides
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".3gp", ".webm", ".mkv", ".avi", ".ts"})


def image_id_for(identity: str, collection_id: str = DEFAULT_COLLECTION) -> str:
    """Stable per collection: the same photo in two collections is two images (the
    ``default`` collection keeps the ids it had before collections existed)."""
    key = identity if collection_id == DEFAULT_COLLECTION else f"{collection_id}\n{identity}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def collection_for_object(name: str, pattern: str) -> str:
    """The collection an uploaded object's name puts it in (``default`` when none).

    ``pattern`` is a name prefix with a ``{collection}`` placeholder, e.g.
    ``collections/{collection}/``: ``collections/wedding-2026/a.jpg`` is in
    ``wedding-2026``; any other name is in ``default``.
    """
    before, _, after = pattern.partition("{collection}")
    match = re.match(re.escape(before) + r"([a-z0-9][a-z0-9-]{0,62})" + re.escape(after), name)
    return match.group(1) if match else DEFAULT_COLLECTION


def face_id_for(image_id: str, index: int) -> str:
    return f"{image_id}-{index}"


@dataclass(frozen=True)
class SourceRef:
    """One image to ingest.

    ``kind``: ``gcs`` (bucket/name/generation), ``file`` (a local path; name is the
    path), or ``url`` (fetched through an allow-listing fetcher). ``identity`` is the
    string hashed into the image id.
    """

    kind: str
    name: str
    identity: str
    bucket: str = ""
    generation: int | None = None
    size: int | None = None
    content_type: str | None = None
    created_time: float | None = None  # epoch seconds the upload happened
    extra: Mapping[str, Any] = field(default_factory=dict)
    collection_id: str = DEFAULT_COLLECTION

    @property
    def image_id(self) -> str:
        return image_id_for(self.identity, self.collection_id)

    def in_collection(self, collection_id: str) -> SourceRef:
        return replace(self, collection_id=check_collection_id(collection_id))

    @property
    def display(self) -> str:
        """What humans see as the source (a local file's path; otherwise the identity)."""
        return self.name if self.kind == "file" else self.identity

    def log_fields(self, **extra: Any) -> dict[str, Any]:
        """The ids every log line about this source carries (image, source, collection)."""
        return log_fields(
            image_id=self.image_id, source=self.display, collection=self.collection_id, **extra
        )

    @property
    def claims_video(self) -> bool:
        """An ingest request that says it is a video (a Cloudinary ``video`` resource)."""
        return self.extra.get("media") == "video"

    def claims_image(self) -> bool:
        """Does the name or content type say "image"? (Used only to decide skip vs fail.)"""
        if self.content_type and self.content_type.lower().startswith("image/"):
            return True
        return PurePosixPath(self.name).suffix.lower() in IMAGE_EXTENSIONS

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.bucket:
            out["bucket"] = self.bucket
        if self.generation is not None:
            out["generation"] = str(self.generation)
        if self.size is not None:
            out["size"] = self.size
        if self.content_type:
            out["content_type"] = self.content_type
        out.update(self.extra)
        return out

    @classmethod
    def gcs(
        cls,
        bucket: str,
        name: str,
        generation: int,
        *,
        size: int | None = None,
        content_type: str | None = None,
        created_time: float | None = None,
    ) -> SourceRef:
        return cls(
            kind="gcs",
            name=name,
            identity=f"gs://{bucket}/{name}#{generation}",
            bucket=bucket,
            generation=generation,
            size=size,
            content_type=content_type,
            created_time=created_time,
        )

    @classmethod
    def local_file(cls, path: str, data: bytes, *, created_time: float | None = None) -> SourceRef:
        """Local files are identified by content: ingesting a folder twice is a no-op."""
        digest = hashlib.sha256(data).hexdigest()
        return cls(
            kind="file",
            name=path,
            identity=f"sha256:{digest}",
            size=len(data),
            content_type=mimetypes.guess_type(path)[0],
            created_time=created_time,
        )

    @classmethod
    def local_large_file(cls, path: str, *, created_time: float | None = None) -> SourceRef:
        """A local file too large to read whole (a video): hashed as a stream, same identity
        as :meth:`local_file` would give it."""
        digest = hashlib.sha256()
        size = 0
        with Path(path).open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
        return cls(
            kind="file",
            name=path,
            identity=f"sha256:{digest.hexdigest()}",
            size=size,
            content_type=mimetypes.guess_type(path)[0],
            created_time=created_time,
        )


def rfc3339(value: object) -> float | None:
    """An RFC 3339 timestamp as epoch seconds (None when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _int(value: object, what: str) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError) as exc:
        raise BadMessage(f"{what} is not an integer: {value!r}") from exc


def source_from_storage_object(data: Mapping[str, Any]) -> SourceRef:
    """From the object resource Eventarc (or a GCS notification) carries."""
    try:
        bucket, name = str(data["bucket"]), str(data["name"])
    except (KeyError, TypeError) as exc:
        raise BadMessage(f"storage event without bucket/name: {exc!r}") from exc
    size = data.get("size")
    return SourceRef.gcs(
        bucket,
        name,
        _int(data.get("generation"), "generation"),
        size=None if size is None else _int(size, "size"),
        content_type=data.get("contentType"),
        created_time=rfc3339(data.get("timeCreated")),
    )


def request_from_ingest_message(body: bytes) -> SourceRef | VideoTask:
    """An ``ingest-requests`` message (e.g. from the Cloudinary webhook, or ingest itself).

    Schema v1, JSON: ``{"v": 1, "bucket": B, "name": N, "generation": G}`` for an
    object to (re-)ingest, ``{"v": 1, "url": U, "source_id": S}`` for an image to fetch
    (``S`` is its stable identity, e.g. ``cloudinary://cloud/public_id#version``;
    ``"media": "video"`` for a video), or ``{"v": 1, "video": {...}}`` for one step of a
    video being processed (:class:`facesearch.storage.messages.VideoTask`); each may name
    its ``"collection"`` (absent: ``default``).
    """
    request = jsonsafe.loads_object(body, error=BadMessage, what="ingest request")
    if request.get("v") != 1:
        raise BadMessage("ingest request: unknown schema version")
    if "video" in request:
        return VideoTask.from_body(request)
    try:
        collection = check_collection_id(request.get("collection", DEFAULT_COLLECTION))
    except ValueError as exc:
        raise BadMessage(f"ingest request: {exc}") from exc
    if "bucket" in request:
        return source_from_storage_object(request).in_collection(collection)
    url, source_id = request.get("url"), request.get("source_id")
    if not isinstance(url, str) or not isinstance(source_id, str) or not url or not source_id:
        raise BadMessage("ingest request needs bucket/name/generation or url + source_id")
    media = request.get("media")
    if media not in (None, "image", "video"):
        raise BadMessage(f"ingest request: unknown media {str(media)[:20]!r}")
    return SourceRef(
        kind="url",
        name=url,
        identity=source_id,
        content_type=request.get("content_type"),
        created_time=rfc3339(request.get("created_at")),
        extra={"url": url, **({"media": media} if media else {})},
        collection_id=collection,
    )
