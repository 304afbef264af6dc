"""The webhook's work for one notification: verify, parse, dedupe, queue or forget.

Kept short on purpose: Cloudinary retries endpoints that answer slowly or with
anything but 200, so the request does one signature check, one create-if-absent
and one Pub/Sub publish, and the GPU ingest function downloads the image later.

Outcomes (rendered as 200 by :mod:`facesearch.cloudinary.entry`):
``queued`` (ingest request published; a video's asks ingest to plan it into chunks),
``duplicate`` (this public_id + version was queued before), ``superseded`` (an older
version than the one we hold), ``ignored`` (not ours to process), ``forgotten`` (delete:
images and videos).

A new version of a public_id replaces the old version's faces; a delete without a
version forgets the current version (the ledger keeps, per asset, which version is
current and in which collection).
Raised errors become 401 (signature), 400 (unreadable body) or 503
(:class:`TransientError`: Cloudinary retries).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from facesearch.cloudinary.delivery import (
    FETCHABLE_TYPES,
    asset_key,
    cloudinary_image_id,
    delivery_url,
    event_key,
    require_cloud_name,
    source_id,
)
from facesearch.cloudinary.notifications import (
    DeletedImage,
    DeletedImages,
    Ignored,
    UploadedImage,
    collection_for_upload,
    parse_notification,
)
from facesearch.cloudinary.signature import NotificationVerifier
from facesearch.config import Settings
from facesearch.errors import NotFound, TransientError
from facesearch.logs import log_fields
from facesearch.storage.bus import Bus, Message
from facesearch.storage.ledger import LEDGER_TTL_S, EventLedger
from facesearch.storage.metadata import DEFAULT_COLLECTION, ImageRecord, ImageStatus, MetadataStore
from facesearch.storage.videos import VideoRecord

logger = logging.getLogger(__name__)

INGEST_REQUEST_VERSION = 1
#: Forgets an image's (or a video's) records, crops and index entries through the query
#: API's forget path: (collection, image or video id) -> faces removed; NotFound if unknown.
ImageForgetter = Callable[[str, str], int]


@dataclass(frozen=True)
class WebhookResult:
    outcome: str  # queued | duplicate | ignored | forgotten
    notification_type: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "notification_type": self.notification_type,
            **self.details,
        }


def ingest_request(
    settings: Settings, upload: UploadedImage, url: str, collection_id: str = DEFAULT_COLLECTION
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``ingest-requests`` body and attributes (facesearch.ingest.sources, schema v1)."""
    cloud = require_cloud_name(settings)
    kind = upload.resource_type
    sid = source_id(cloud, upload.public_id, upload.version, kind)
    body: dict[str, Any] = {
        "v": INGEST_REQUEST_VERSION,
        "url": url,
        "source_id": sid,
        "collection": collection_id,
    }
    if kind == "video":
        body["media"] = "video"  # planned into chunks by ingest (facesearch.ingest.video)
    if upload.format:
        content_type = mimetypes.types_map.get(f".{upload.format}")
        if content_type:
            body["content_type"] = content_type
    if upload.created_at:
        body["created_at"] = upload.created_at
    attributes = {
        "kind": "ingest-request",
        "source": "cloudinary",
        "collection": collection_id,
        "image_id": cloudinary_image_id(
            cloud, upload.public_id, upload.version, collection_id, kind
        ),
    }
    return body, attributes


@dataclass(eq=False)
class CloudinaryWebhook:
    """One per instance: the verifier, the ledger, the bus and the forget path, reused."""

    settings: Settings
    verifier: NotificationVerifier = field(kw_only=True)
    ledger: EventLedger = field(kw_only=True)
    bus: Bus = field(kw_only=True)
    stores: Callable[[str], MetadataStore] = field(kw_only=True)
    forget_image: ImageForgetter = field(kw_only=True)
    forget_video: ImageForgetter = field(kw_only=True)
    secrets: Callable[[], Sequence[str]] = field(kw_only=True)
    clock: Callable[[], float] = field(kw_only=True, default=time.time)
    cloud_name: str = field(init=False)

    def __post_init__(self) -> None:
        self.cloud_name = require_cloud_name(self.settings)  # refused at start when unset

    def handle(self, raw_body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        verified = self.verifier.verify(raw_body, headers)
        notification = parse_notification(verified.body)
        if isinstance(notification, UploadedImage):
            return self._upload(notification)
        if isinstance(notification, DeletedImages):
            return self._delete(notification)
        return self._ignored(notification)

    # --- upload / eager ---------------------------------------------------------------

    def _upload(self, upload: UploadedImage) -> WebhookResult:
        kind = upload.notification_type
        if upload.delivery_type not in FETCHABLE_TYPES:
            return self._ignored(Ignored(kind, f"delivery type {upload.delivery_type}"))
        kind_of = upload.resource_type
        key = event_key(self.cloud_name, upload.public_id, upload.version, kind_of)
        collection = collection_for_upload(upload, self.settings.cloudinary.collection_from)
        image_id = cloudinary_image_id(
            self.cloud_name, upload.public_id, upload.version, collection, kind_of
        )
        fields = {
            "image_id": image_id,
            "public_id": upload.public_id,
            "version": upload.version,
            "collection": collection,
        }
        info = {
            "public_id": upload.public_id,
            "version": str(upload.version),
            "image_id": image_id,
            "collection": collection,
        }
        asset_name = asset_key(self.cloud_name, upload.public_id, kind_of)
        asset = self.ledger.get(asset_name)
        current = int(asset["version"]) if asset and asset.get("version", "").isdigit() else 0
        if current > upload.version:
            logger.info("older version than the current one: ignored", extra=log_fields(**fields))
            return WebhookResult(
                "superseded", kind, {"image_id": image_id, "current_version": current}
            )
        outcome = self._queue_once(upload, key=key, info=info, collection=collection, fields=fields)
        if asset and current < upload.version:
            # a new version replaces the old one's faces (forgotten once it is final)
            self._forget_one(
                DeletedImage(upload.public_id, current, upload.delivery_type, kind_of),
                replaced=True,
            )
        if current != upload.version:
            self.ledger.put(asset_name, info, self.clock() + LEDGER_TTL_S)
        return WebhookResult(outcome, kind, {"image_id": image_id})

    def _queue_once(
        self,
        upload: UploadedImage,
        *,
        key: str,
        info: dict[str, str],
        collection: str,
        fields: dict[str, Any],
    ) -> str:
        """Queue this version once: ``queued`` or ``duplicate``.

        The claim is an outbox entry: created ``pending`` before the publish and marked
        ``queued`` after it. A crash in between leaves it pending, and Cloudinary's retry
        (we never answered 200) publishes again instead of taking it for a duplicate; the
        ingest is idempotent, so a second publish costs nothing.
        """
        expires_at = self.clock() + LEDGER_TTL_S
        if not self.ledger.claim(key, {**info, "state": "pending"}, expires_at):
            claim = self.ledger.get(key) or {}
            if claim.get("state") != "pending":
                logger.info("duplicate notification acknowledged", extra=log_fields(**fields))
                return "duplicate"
            logger.warning(
                "claimed but never queued (a crash?): queuing again", extra=log_fields(**fields)
            )
        secret = self.secrets()[0] if upload.delivery_type == "authenticated" else None
        url = delivery_url(
            self.settings,
            upload.public_id,
            upload.version,
            fmt=upload.format,
            delivery_type=upload.delivery_type,
            api_secret=secret,
            resource_type=upload.resource_type,
        )
        body, attributes = ingest_request(self.settings, upload, url, collection)
        message = Message(json.dumps(body, separators=(",", ":")).encode(), attributes)
        self.bus.publish(self.settings.storage.ingest_topic, [message])
        self.ledger.put(key, {**info, "state": "queued"}, expires_at)
        logger.info(
            "ingest request queued",
            extra=log_fields(
                notification_type=upload.notification_type, api_key=upload.api_key, **fields
            ),
        )
        return "queued"

    # --- delete ---------------------------------------------------------------------------

    def _delete(self, deleted: DeletedImages) -> WebhookResult:
        forgotten: list[str] = []
        faces = 0
        for image in deleted.images:
            result = self._forget_one(image)
            if result is not None:
                forgotten.append(result[0])
                faces += result[1]
        return WebhookResult("forgotten", "delete", {"image_ids": forgotten, "faces": faces})

    def _forget_one(self, image: DeletedImage, *, replaced: bool = False) -> tuple[str, int] | None:
        """Forget one deleted (or ``replaced``) image: (image id, faces removed), or None
        if we never had it.

        A delete that overtakes its own ingest (queued, or being processed) is refused
        with 503 so that Cloudinary retries it after the ingest has finished; otherwise
        the ingest would recreate the faces we were asked to forget. A delete without a
        version means the asset's current version (the asset record says which).
        """
        kind = image.resource_type
        version = image.version
        if version is None:
            asset = self.ledger.get(asset_key(self.cloud_name, image.public_id, kind)) or {}
            if not asset.get("version", "").isdigit():
                logger.warning(
                    "delete without a version of an asset we never queued",
                    extra=log_fields(public_id=image.public_id),
                )
                return None
            version = int(asset["version"])
        key = event_key(self.cloud_name, image.public_id, version, kind)
        claim = self.ledger.get(key)
        # the upload's claim says which collection it went to (the delete does not say)
        collection = (claim or {}).get("collection") or DEFAULT_COLLECTION
        image_id = cloudinary_image_id(self.cloud_name, image.public_id, version, collection, kind)
        fields = {"image_id": image_id, "public_id": image.public_id, "version": version}
        deleted = {
            "public_id": image.public_id,
            "version": str(version),
            "deleted": "1",
            "collection": collection,
        }
        expires_at = self.clock() + LEDGER_TTL_S
        store = self.stores(collection)
        record: ImageRecord | VideoRecord | None
        try:
            record = store.get_video(image_id) if kind == "video" else store.get_image(image_id)
        except NotFound:
            record = None
        if record is None:
            if claim is None:
                # Never queued: the claim now also stops a late upload notification.
                self.ledger.claim(key, deleted, expires_at)
                logger.info("delete of an image we never queued", extra=log_fields(**fields))
                return None
            if claim.get("deleted"):
                return None  # forgotten before: a duplicate delete
            raise TransientError(f"image {image_id} is queued for ingest; retry the delete")
        if str(record.status) in (ImageStatus.QUEUED, ImageStatus.PROCESSING):
            raise TransientError(f"{kind} {image_id} is being ingested; retry the delete")
        forget = self.forget_video if kind == "video" else self.forget_image
        try:
            removed = forget(collection, image_id)
        except NotFound:
            removed = 0
        self.ledger.put(key, deleted, expires_at)
        logger.info(
            "image forgotten (replaced by a new version)"
            if replaced
            else "image forgotten (deleted in Cloudinary)",
            extra=log_fields(faces=removed, **fields),
        )
        return image_id, removed

    def _ignored(self, ignored: Ignored) -> WebhookResult:
        logger.info(
            "notification ignored",
            extra=log_fields(notification_type=ignored.notification_type, reason=ignored.reason),
        )
        return WebhookResult("ignored", ignored.notification_type, {"reason": ignored.reason})
