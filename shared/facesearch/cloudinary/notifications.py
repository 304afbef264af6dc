"""Parse a verified Cloudinary notification into what we act on.

Which ``notification_type`` does what (also in docs/cloudinary.md):

* ``upload`` of an ``image`` or ``video`` resource: ingest it (``UploadedImage``; a
  video is planned into chunks by ingest, docs/video.md).
* ``eager``: the derived versions of an upload are ready. The original was
  announced by its own ``upload`` notification; we treat the eager one as another
  announcement of the same original (public_id + version from the derived URL),
  so whichever arrives first queues it and the other is a duplicate.
* ``delete``: forget every ``image`` and ``video`` resource listed (``DeletedImages``).
* everything else (``rename``, ``moderation``, ``resource_tags_changed``,
  ``resource_context_changed``, ``resource_metadata_changed``, ``multi``,
  ``explode``, ``generate_archive``, folder events, ...), ``raw`` resources and eager
  versions of videos (their upload notification suffices): acknowledged with 200 and logged
  (``Ignored``), so Cloudinary does not retry what we will never process.

Identities are never taken from URLs we would fetch: the ingest URL is rebuilt
from the cloud name in *our* settings and the notification's public_id and
version (see :mod:`facesearch.cloudinary.delivery`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from facesearch import jsonsafe
from facesearch.errors import BadNotification
from facesearch.storage.metadata import DEFAULT_COLLECTION, check_collection_id

#: Longest public_id accepted (Cloudinary's own limit is 255 characters).
MAX_PUBLIC_ID_CHARS = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FORMAT = re.compile(r"^[a-z0-9]{1,10}$")
#: ``.../<resource_type>/<delivery type>/[transformations/]v<version>/<public_id>.<ext>``
#: resource types we ingest (and forget when deleted)
INGESTED_RESOURCES = frozenset({"image", "video"})
_DERIVED_URL = re.compile(r"/(image|video|raw)/([a-z_]+)/(?:.+/)?v([0-9]{1,12})/(.+)$")


@dataclass(frozen=True)
class UploadedImage:
    """An original image (or video: ``resource_type``) to ingest: one public_id at one
    version."""

    notification_type: str
    public_id: str
    version: int
    delivery_type: str  # upload | authenticated | private ...
    format: str | None
    size_bytes: int | None
    created_at: str | None
    api_key: str | None
    tags: tuple[str, ...] = ()
    context: tuple[tuple[str, str], ...] = ()  # the asset's custom context, key-value pairs
    asset_folder: str | None = None
    resource_type: str = "image"  # image | video


@dataclass(frozen=True)
class DeletedImage:
    public_id: str
    version: int | None
    delivery_type: str
    resource_type: str = "image"  # image | video


@dataclass(frozen=True)
class DeletedImages:
    images: tuple[DeletedImage, ...]


@dataclass(frozen=True)
class Ignored:
    notification_type: str
    reason: str


Notification = UploadedImage | DeletedImages | Ignored


def check_public_id(public_id: object) -> str:
    """A public_id we are willing to put into a delivery URL path.

    Refuses empty and over-long ids, control characters, backslashes and ``.``/``..``
    path segments, also percent-encoded (``%2e%2e``) since the delivery host decodes
    them: either would let a crafted id climb out of our cloud's path.
    """
    if not isinstance(public_id, str) or not public_id or len(public_id) > MAX_PUBLIC_ID_CHARS:
        raise BadNotification("public_id missing or too long")
    for form in (public_id, unquote(public_id)):
        if _CONTROL.search(form) or "\\" in form:
            raise BadNotification("public_id contains control characters or backslashes")
        if any(part in ("", ".", "..") for part in form.split("/")):
            raise BadNotification("public_id has empty, '.' or '..' path segments")
    return public_id


def _version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadNotification("version missing or not an integer")
    text = str(value)
    if not text.isdigit() or not 0 < int(text) < 10**12:
        raise BadNotification(f"version is not a positive integer: {text[:20]!r}")
    return int(text)


def _str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _format(value: object) -> str | None:
    if isinstance(value, str) and _FORMAT.match(value.lower()):
        return value.lower()
    return None


def _upload(body: Mapping[str, Any]) -> Notification:
    resource_type = _str(body, "resource_type") or "image"
    if resource_type not in INGESTED_RESOURCES:
        return Ignored("upload", f"resource_type {resource_type[:32]} is not ingested")
    size = body.get("bytes")
    return UploadedImage(
        notification_type="upload",
        public_id=check_public_id(body.get("public_id")),
        version=_version(body.get("version")),
        delivery_type=_str(body, "type") or "upload",
        format=_format(body.get("format")),
        size_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
        created_at=_str(body, "created_at"),
        api_key=_str(body, "api_key") or _str(body, "signature_key"),
        tags=_tags(body.get("tags")),
        context=_context(body.get("context")),
        asset_folder=_str(body, "asset_folder"),
        resource_type=resource_type,
    )


def _tags(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _context(value: object) -> tuple[tuple[str, str], ...]:
    """Cloudinary sends custom context as ``{"custom": {key: value}}``."""
    custom = value.get("custom") if isinstance(value, Mapping) else None
    if not isinstance(custom, Mapping):
        return ()
    return tuple((str(k), v) for k, v in custom.items() if isinstance(v, str))


def collection_for_upload(upload: UploadedImage, rule: str) -> str:
    """The collection a Cloudinary upload goes to, by the configured ``rule``.

    ``folder``: the first segment of the asset folder (or of the public_id's path);
    ``tag``: a tag ``collection:<id>``; ``context``: the custom context key
    ``collection``; ``none``: always ``default``. A value that is not a valid
    collection id sends the image to ``default``, which is logged by the webhook.
    """
    candidate: str | None = None
    if rule == "folder":
        folder = upload.asset_folder or (
            upload.public_id.rsplit("/", 1)[0] if "/" in upload.public_id else ""
        )
        candidate = folder.split("/", 1)[0] if folder else None
    elif rule == "tag":
        candidate = next(
            (t.split(":", 1)[1] for t in upload.tags if t.startswith("collection:")), None
        )
    elif rule == "context":
        candidate = dict(upload.context).get("collection")
    if candidate:
        try:
            return check_collection_id(candidate)
        except ValueError:
            pass
    return DEFAULT_COLLECTION


def _eager(body: Mapping[str, Any]) -> Notification:
    """The original behind an eager notification, read from a derived URL's path."""
    derived = body.get("eager")
    if not isinstance(derived, list) or not derived or not isinstance(derived[0], Mapping):
        return Ignored("eager", "no derived versions listed")
    url = derived[0].get("secure_url") or derived[0].get("url")
    match = _DERIVED_URL.search(urlsplit(url).path) if isinstance(url, str) else None
    if match is None:
        return Ignored("eager", "derived URL does not name a version")
    resource_type, delivery_type, version = match.group(1), match.group(2), match.group(3)
    if resource_type != "image":
        return Ignored("eager", f"resource_type {resource_type} is not an image")
    public_id = body.get("public_id")
    if not isinstance(public_id, str):  # fall back to the derived URL's path, minus extension
        public_id = unquote(match.group(4)).rsplit(".", 1)[0]
    return UploadedImage(
        notification_type="eager",
        public_id=check_public_id(public_id),
        version=_version(version),
        delivery_type=_str(body, "type") or delivery_type,
        format=None,
        size_bytes=None,
        created_at=None,
        api_key=_str(body, "api_key") or _str(body, "signature_key"),
    )


def _delete(body: Mapping[str, Any]) -> Notification:
    resources = body.get("resources")
    if not isinstance(resources, list):
        raise BadNotification("delete notification without a resources list")
    images = []
    for resource in resources:
        if not isinstance(resource, Mapping):
            raise BadNotification("delete notification: a resource is not an object")
        resource_type = _str(resource, "resource_type") or "image"
        if resource_type not in INGESTED_RESOURCES:
            continue
        version = resource.get("version")
        images.append(
            DeletedImage(
                public_id=check_public_id(resource.get("public_id")),
                version=None if version is None else _version(version),
                delivery_type=_str(resource, "type") or "upload",
                resource_type=resource_type,
            )
        )
    if not images:
        return Ignored("delete", "no image or video resources")
    return DeletedImages(tuple(images))


def parse_notification(body: str) -> Notification:
    """Turn a verified body into an action; :class:`BadNotification` when unreadable."""
    data = jsonsafe.loads_object(body, error=BadNotification, what="notification body")
    kind = data.get("notification_type")
    if not isinstance(kind, str) or not kind:
        raise BadNotification("notification_type missing")
    if kind == "upload":
        return _upload(data)
    if kind == "eager":
        return _eager(data)
    if kind == "delete":
        return _delete(data)
    return Ignored(kind[:64], "notification type not handled")
