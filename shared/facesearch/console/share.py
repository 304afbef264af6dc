"""The public share page: a signed, expiring link that allows a selfie search and nothing else.

Why apart from the console: a share token is the only credential a guest has, so every
route it reaches is here, in one short file a reviewer can read in one go — the page, the
selfie search (rate limited per link and per client, a stricter threshold, names hidden
unless the link allows them) and the time-limited photo URLs of its results. The selfie is
never stored and never logged: it lives in :meth:`SharePage.search` only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from facesearch.api.bodies import read_body
from facesearch.api.schemas import SearchParams
from facesearch.api.search import ImageProbe
from facesearch.config import Settings
from facesearch.console.ratelimit import RateLimiter
from facesearch.console.responses import json_response, static_file
from facesearch.console.tokens import ShareGrant, ShareLinks
from facesearch.errors import BadRequest, Forbidden, NotFound, RateLimited
from facesearch.storage.metadata import ImageRecord

logger = logging.getLogger("facesearch.console")

#: the only assets a share page may load
SHARE_ASSETS = frozenset({"share.js", "style.css", "favicon.svg"})


class TooManyRequests(RateLimited):
    """A share link's or a client's search budget for this minute is spent."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SharePage:
    """The routes a share token reaches; the console hands it the collection lookups."""

    def __init__(
        self,
        settings: Settings,
        shares: ShareLinks,
        *,
        collection: Callable[[str], Any],
        image_record: Callable[[str, str], ImageRecord],
        photo: Callable[[ImageRecord], Response],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.shares = shares
        self.link_limit = RateLimiter(settings.console.share_link_per_min, clock=clock)
        self.client_limit = RateLimiter(settings.console.share_client_per_min, clock=clock)
        self._collection = collection
        self._image_record = image_record
        self._photo = photo
        self._clock = clock

    def grant(self, token: str) -> ShareGrant:
        grant = self.shares.read(token)
        if grant is None:
            raise NotFound("this link is not valid or has expired")
        return grant

    def asset(self, request: Request, name: str) -> Response:
        if name not in SHARE_ASSETS:
            raise NotFound("no such asset")
        return static_file(name)

    def page(self, request: Request, token: str) -> Response:
        try:
            self.grant(token)
        except NotFound:
            response = static_file("share-expired.html")
            response.status_code = 404
            return response
        return static_file("share.html")

    def missing(self, request: Request, rest: str = "") -> Response:
        raise NotFound("nothing here")

    def client_address(self, request: Request) -> str:
        if self.settings.console.trust_forwarded_for:
            hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
            if hops and hops[-1]:
                return hops[-1]
        return request.remote_addr or "?"

    def search(self, request: Request, token: str) -> Response:
        grant = self.grant(token)
        for limiter, key, what in (
            (self.link_limit, grant.link_id, "this link"),
            (self.client_limit, self.client_address(request), "you"),
        ):
            wait = limiter.take(key)
            if wait is not None:
                raise TooManyRequests(
                    f"too many searches from {what} this minute", retry_after_s=int(wait)
                )
        if not (request.mimetype or "").startswith("image/"):
            raise BadRequest("send the selfie as the body with an image/* Content-Type")
        selfie = read_body(
            request,
            self.settings.vision.max_image_bytes,
            deadline_s=self.settings.api.body_read_timeout_s,
        )
        if not selfie:
            raise BadRequest("no selfie in the request")
        body = self._matches(grant, token, selfie)
        del selfie  # never stored, never logged: only the matches leave this function
        return json_response(body)

    def _matches(self, grant: ShareGrant, token: str, selfie: bytes) -> dict[str, Any]:
        query = self._collection(grant.collection_id)
        searcher = query.searcher
        threshold = min(
            1.0, searcher.default_threshold + self.settings.console.share_threshold_margin
        )
        limit = self.settings.console.share_max_results
        result = searcher.search(
            ImageProbe(selfie),
            SearchParams(k=min(limit * 2, self.settings.api.search_max_k), threshold=threshold),
        )
        searched = [f for f in result.faces if f.skipped is None and f.bbox]
        if not searched:
            reason = result.faces[0].skipped if result.faces else "no face found"
            return {"photos": [], "message": f"No usable face in the photo ({reason})."}
        face = max(searched, key=lambda f: _area(f.bbox or []))
        best: dict[str, Any] = {}
        for match in face.matches:
            if match.image_id is None or match.image_id in best:
                continue
            record = query.store.get_image(match.image_id)
            if record is None or not record.source.startswith(grant.prefix):
                continue
            best[match.image_id] = match
            if len(best) >= limit:
                break
        expires = int(self._clock()) + self.settings.api.signed_url_ttl_s
        photos = []
        for image_id, match in best.items():
            sig = self.shares.photo_sig(grant.link_id, image_id, expires)
            photos.append(
                {
                    "photo_url": f"/share/{token}/photo/{image_id}?expires={expires}&sig={sig}",
                    "crop_url": match.crop_url,
                    "similarity": round(match.similarity, 4),
                    "person_name": match.person_name if grant.show_names else None,
                }
            )
        return {"photos": photos, "threshold": round(threshold, 4), "expires_at": expires}

    def photo(self, request: Request, token: str, image_id: str) -> Response:
        grant = self.grant(token)
        if not self.shares.check_photo(
            grant.link_id, image_id, request.args.get("expires", ""), request.args.get("sig", "")
        ):
            raise Forbidden("this photo link is not valid or has expired")
        record = self._image_record(grant.collection_id, image_id)
        if not record.source.startswith(grant.prefix):
            raise NotFound("not in this share")
        return self._photo(record)


def _area(bbox: list[float]) -> float:
    return (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) if len(bbox) == 4 else 0.0
