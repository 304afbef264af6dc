"""What only the console needs of a collection: ``/console/api/collections/<cid>/...``.

The live status summary (with its ETag, so the pages' polling costs a 304 when nothing
changed), the failed images and their retry, a photo's bytes, and issuing share links.
Split from :mod:`.app`, which routes, signs in and renders errors: every view here is
called only after :meth:`ConsoleApp._require <facesearch.console.app.ConsoleApp>` has
let the caller in (the ``require`` it is given), and :class:`~.share.SharePage` reuses
its collection, image and photo look-ups.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from facesearch.api.app import QueryApp
from facesearch.api.bodies import read_body
from facesearch.console.identity import Identity
from facesearch.console.responses import json_response, photo_response
from facesearch.console.tokens import ShareLinks
from facesearch.errors import BadRequest, NotFound
from facesearch.logs import log_fields
from facesearch.storage.metadata import ImageRecord, ImageStatus, check_collection_id, check_id

logger = logging.getLogger("facesearch.console")

#: a photo's bytes, read from where ingest found it (local file, bucket object)
PhotoReader = Callable[[ImageRecord], bytes]
#: re-run ingest for a failed image of a collection; returns its new status
Retrier = Callable[[str, ImageRecord], str]


@dataclass(frozen=True)
class ConsoleParts:
    """What the console needs beyond the query app (all optional per deployment)."""

    photos: PhotoReader | None = None
    retry: Retrier | None = None
    dead_letters: Callable[[str], int | None] | None = None


class CollectionViews:
    """The console's own collection endpoints, each behind ``require``."""

    def __init__(
        self,
        query: QueryApp,
        parts: ConsoleParts,
        shares: ShareLinks,
        *,
        public_url: str,
        require: Callable[[Request], Identity],
    ) -> None:
        self.query = query
        self.parts = parts
        self.shares = shares
        self.public_url = public_url
        self.require = require

    # --- look-ups (shared with the share page) ----------------------------------------------

    def collection(self, cid: str) -> Any:
        """The services of an existing collection; 404 for an id no collection can have."""
        try:
            check_collection_id(cid)
        except ValueError as exc:
            raise NotFound(f"no collection {cid!r}") from exc
        if self.query.collections is not None:
            self.query.collections.require(cid)
        return self.query.service.collection(cid)

    def image_record(self, cid: str, image_id: str) -> ImageRecord:
        query = self.collection(cid)
        try:
            check_id("image", image_id)
        except ValueError as exc:
            raise NotFound(f"no image {image_id!r}") from exc
        record: ImageRecord | None = query.store.get_image(image_id)
        if record is None:
            raise NotFound(f"image {image_id} not found")
        return record

    def photo_response(self, record: ImageRecord) -> Response:
        if self.parts.photos is None:
            raise NotFound("photos are not served in this deployment")
        return photo_response(self.parts.photos(record))

    # --- endpoints --------------------------------------------------------------------------

    def status(self, request: Request, cid: str) -> Response:
        self.require(request)
        query = self.collection(cid)
        stats = query.operations.stats()
        manifest = query.index.reader.manifest
        segments = [
            {
                "id": s.id,
                "faces": s.count,
                "bytes": s.index_bytes + s.ids_bytes,
                "tombstones": len(s.tombstones),
                "created_at": s.created_at,
            }
            for s in (manifest.segments if manifest is not None else ())
        ]
        dead = self.parts.dead_letters(cid) if self.parts.dead_letters else None
        body = {
            "collection_id": cid,
            "images": stats.images,
            "faces": stats.faces,
            "persons": stats.persons,
            "images_by_status": stats.images_by_status,
            "in_progress": sum(
                stats.images_by_status.get(s, 0)
                for s in (ImageStatus.QUEUED, ImageStatus.PROCESSING)
            ),
            "failed": stats.images_by_status.get(ImageStatus.FAILED, 0),
            "index": stats.index.model_dump(),
            "segments": segments,
            "dead_letters": dead,
            "models": stats.models,
            "threshold": query.searcher.default_threshold,
        }
        payload = json.dumps(body, sort_keys=True).encode()
        etag = '"' + hashlib.sha256(payload).hexdigest()[:32] + '"'
        if etag in request.headers.get("If-None-Match", ""):
            response = Response(status=304)
        else:
            response = Response(payload, content_type="application/json")
        response.headers["ETag"] = etag
        return response

    def images(self, request: Request, cid: str) -> Response:
        self.require(request)
        query = self.collection(cid)
        status_text = request.args.get("status")
        try:
            status = ImageStatus(status_text) if status_text else None
            limit = min(max(int(request.args.get("limit", "50")), 1), 200)
        except ValueError as exc:
            raise BadRequest(f"bad status or limit: {exc}") from exc
        page = query.store.list_images(
            status=status, cursor=request.args.get("cursor") or None, limit=limit
        )
        return json_response(
            {
                "items": [
                    {
                        "image_id": r.image_id,
                        "source": r.source,
                        "status": str(r.status),
                        "error_code": r.error_code,
                        "error_message": r.error_message,
                        "face_count": r.face_count,
                        "attempts": r.attempts,
                        "updated_at": r.updated_at,
                    }
                    for r in page.items
                ],
                "next_cursor": page.next_cursor,
            }
        )

    def photo(self, request: Request, cid: str, image_id: str) -> Response:
        self.require(request)
        return self.photo_response(self.image_record(cid, image_id))

    def retry(self, request: Request, cid: str, image_id: str) -> Response:
        self.require(request)
        record = self.image_record(cid, image_id)
        if self.parts.retry is None:
            raise NotFound("retry is not available in this deployment")
        if record.status != ImageStatus.FAILED:
            raise BadRequest(f"image {image_id} is {record.status}, not failed")
        return json_response({"image_id": image_id, "status": self.parts.retry(cid, record)})

    def share_new(self, request: Request, cid: str) -> Response:
        self.require(request)
        self.collection(cid)
        try:
            body = json.loads(read_body(request, 4096, deadline_s=10.0) or b"{}")
            ttl_s = int(body.get("ttl_s", 86_400))
            prefix = str(body.get("prefix", ""))[:512]
            title = str(body.get("title", ""))[:120]
            grant, token = self.shares.issue(
                cid,
                ttl_s=ttl_s,
                prefix=prefix,
                show_names=bool(body.get("show_names", False)),
                title=title,
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise BadRequest(f"bad share request: {exc}") from exc
        logger.info(
            "share link issued",
            extra=log_fields(collection=cid, link_id=grant.link_id, expires_at=grant.expires_at),
        )
        return json_response(
            {
                "url": f"{self.public_url}/share/{token}",
                "link_id": grant.link_id,
                "expires_at": grant.expires_at,
                "prefix": grant.prefix,
                "show_names": grant.show_names,
            },
            status=201,
        )
