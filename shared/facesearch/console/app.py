"""The console and share pages as a WSGI layer in front of the query API.

Paths it owns; everything else goes to the signed API (:class:`~facesearch.api.app.QueryApp`)
unchanged:

* ``/console/...``: the console's static pages and assets (one ``index.html``, ES modules);
  ``/console/login?token=`` redeems a one-time login link into a session cookie;
* ``/console/api/session``: who is signed in and the CSRF token the pages send back;
* ``/console/api/v1/...``: the query API's own routes, authenticated by the console
  identity instead of a request signature (:meth:`QueryApp.handle` with ``trusted``),
  every write also needing the CSRF token and a same-origin request;
* ``/console/api/collections/<cid>/...``: what only the console needs (a photo's bytes,
  the status summary, failed images and retry, share links);
* ``/share/<token>``: the public page of a share link; ``/share/<token>/search`` (selfie
  search, rate limited) and ``/share/<token>/photo/<image_id>`` (time-limited) are all
  that a share token reaches.

Every HTML/asset response carries a Content-Security-Policy without inline script and
without any other origin (the pages load nothing from elsewhere), ``no-referrer`` (share
URLs hold their token) and ``nosniff``.

Live status: the pages poll ``.../status`` every few seconds with ``If-None-Match`` (304
when nothing changed) rather than holding a server-sent-events stream, because Cloud Run
bills and counts an instance's concurrency for as long as a request is open, cuts streams
at the request timeout and on scale-in, and could never scale to zero while a tab is open.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
from werkzeug.exceptions import NotFound as WzNotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from facesearch.api.app import QueryApp, _request_id
from facesearch.api.bodies import read_body
from facesearch.api.problems import log_unexpected, problem_response, to_error
from facesearch.api.schemas import SearchParams
from facesearch.api.search import ImageProbe
from facesearch.console.identity import GoogleIdentity, Identity
from facesearch.console.ratelimit import RateLimiter
from facesearch.console.tokens import LoginLinks, Macer, Sessions, ShareGrant, ShareLinks
from facesearch.errors import (
    BadRequest,
    FaceSearchError,
    Forbidden,
    NotFound,
    RateLimited,
    SignatureError,
)
from facesearch.logs import log_fields
from facesearch.storage.metadata import (
    ImageRecord,
    ImageStatus,
    check_collection_id,
    check_id,
)

logger = logging.getLogger("facesearch.console")

STATIC = Path(__file__).parent / "static"
#: the only assets a share page may load
SHARE_ASSETS = frozenset({"share.js", "style.css", "favicon.svg"})
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: a photo's bytes, read from where ingest found it (local file, bucket object)
PhotoReader = Callable[[ImageRecord], bytes]
#: re-run ingest for a failed image of a collection; returns its new status
Retrier = Callable[[str, ImageRecord], str]


class TooManyRequests(RateLimited):
    """A share link's or a client's search budget for this minute is spent."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ConsoleParts:
    """What the console needs beyond the query app (all optional per deployment)."""

    photos: PhotoReader | None = None
    retry: Retrier | None = None
    dead_letters: Callable[[str], int | None] | None = None


class ConsoleApp:
    def __init__(
        self,
        query: QueryApp,
        key: bytes,
        *,
        parts: ConsoleParts | None = None,
        google: GoogleIdentity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = query.settings
        self.query = query
        self.settings = settings
        self.mode = settings.console.mode
        self.parts = parts or ConsoleParts()
        macer = Macer(key)
        self.sessions = Sessions(macer, settings.console.session_ttl_s, clock=clock)
        self.login_links = LoginLinks(settings.console.login_link_ttl_s, clock=clock)
        self.shares = ShareLinks(macer, settings.console.share_max_ttl_s, clock=clock)
        self.link_limit = RateLimiter(settings.console.share_link_per_min, clock=clock)
        self.client_limit = RateLimiter(settings.console.share_client_per_min, clock=clock)
        self.google = google
        if self.mode in ("iap", "iam") and google is None:
            self.google = GoogleIdentity(self.mode, settings.console.iap_audience)
        self.public_url = (settings.api.public_url or "").rstrip("/")
        self.secure = self.public_url.startswith("https://")
        self._clock = clock
        self.url_map = Map(
            [
                Rule("/", endpoint="root", methods=["GET"]),
                Rule("/console", endpoint="page", methods=["GET"]),
                Rule("/console/", endpoint="page", methods=["GET"]),
                Rule("/console/login", endpoint="login", methods=["GET"]),
                Rule("/console/logout", endpoint="logout", methods=["POST"]),
                Rule("/console/static/<path:name>", endpoint="asset", methods=["GET"]),
                Rule("/console/api/session", endpoint="session", methods=["GET"]),
                Rule(
                    "/console/api/v1/<path:rest>",
                    endpoint="api",
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
                Rule("/console/api/collections/<cid>/status", endpoint="status", methods=["GET"]),
                Rule("/console/api/collections/<cid>/images", endpoint="images", methods=["GET"]),
                Rule(
                    "/console/api/collections/<cid>/images/<image_id>/photo",
                    endpoint="photo",
                    methods=["GET"],
                ),
                Rule(
                    "/console/api/collections/<cid>/images/<image_id>/retry",
                    endpoint="retry",
                    methods=["POST"],
                ),
                Rule(
                    "/console/api/collections/<cid>/shares", endpoint="share_new", methods=["POST"]
                ),
                Rule("/console/api/<path:rest>", endpoint="api_missing"),
                Rule("/console/<path:page>", endpoint="page", methods=["GET"]),
                Rule("/share/static/<name>", endpoint="share_asset", methods=["GET"]),
                Rule("/share/<token>", endpoint="share_page", methods=["GET"]),
                Rule("/share/<token>/search", endpoint="share_search", methods=["POST"]),
                Rule("/share/<token>/photo/<image_id>", endpoint="share_photo", methods=["GET"]),
                Rule("/share", endpoint="share_missing"),
                Rule("/share/<path:rest>", endpoint="share_missing"),
            ],
            strict_slashes=False,
            merge_slashes=False,
        )

    # --- WSGI -----------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        if not (path == "/" or path.startswith(("/console", "/share"))):
            return self.query.handle(request)
        request_id = _request_id(request)
        start = time.perf_counter()
        try:
            try:
                endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            except WzMethodNotAllowed as exc:
                raise BadRequest(f"{request.method} is not allowed here") from exc
            except WzNotFound as exc:
                raise NotFound(f"no page {path}") from exc
            response = getattr(self, f"_{endpoint}")(request, **args)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            error = to_error(exc)
            if not isinstance(exc, FaceSearchError | HTTPException):
                log_unexpected(exc, request_id=request_id, path=path)
            response = problem_response(error, request_id=request_id, instance=path)
        response.headers["X-Request-Id"] = request_id
        # one access line, like the API's: never a body, a query string or a share token
        logger.info(
            "console request",
            extra=log_fields(
                request_id=request_id,
                method=request.method,
                path=_redacted(path),
                status=response.status_code,
                ms=round((time.perf_counter() - start) * 1000.0, 3),
            ),
        )
        return self._harden(response)

    def _harden(self, response: Response) -> Response:
        img = " ".join(["'self'", "blob:", "data:", *self.settings.console.img_origins])
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src {img}; connect-src 'self'; media-src 'self' blob:; font-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    # --- who is asking ----------------------------------------------------------------------

    def login_url(self) -> str:
        """A fresh one-time login link (local mode)."""
        return f"{self.public_url}/console/login?token={quote(self.login_links.issue())}"

    def identify(self, request: Request) -> Identity | None:
        if self.mode == "local":
            session = self.sessions.read(request.cookies.get(Sessions.COOKIE))
            return None if session is None else Identity(session.subject, "local")
        if self.google is not None:
            return self.google.identify(dict(request.headers))
        return None

    def _require(self, request: Request) -> Identity:
        """The caller's identity; on a write also a valid CSRF token and a same-origin call."""
        identity = self.identify(request)
        if identity is None:
            raise SignatureError("sign in to the console")
        if request.method not in SAFE_METHODS:
            if not self.sessions.check_csrf(identity.subject, request.headers.get(CSRF_HEADER)):
                raise Forbidden("missing or wrong CSRF token")
            site = request.headers.get("Sec-Fetch-Site")
            origin = request.headers.get("Origin")
            if site not in (None, "same-origin") or (
                origin is not None and self.public_url and origin != self.public_url
            ):
                raise Forbidden("cross-site write refused")
        return identity

    # --- pages and assets -------------------------------------------------------------------

    def _root(self, request: Request) -> Response:
        return redirect("/console/", code=303)

    def _page(self, request: Request, page: str = "") -> Response:
        return self._file("index.html")

    def _asset(self, request: Request, name: str) -> Response:
        return self._file(name)

    def _share_asset(self, request: Request, name: str) -> Response:
        if name not in SHARE_ASSETS:
            raise NotFound("no such asset")
        return self._file(name)

    def _file(self, name: str) -> Response:
        path = (STATIC / name).resolve()
        if STATIC.resolve() not in path.parents or not path.is_file():
            raise NotFound(f"no asset {name}")
        kind = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}.get(
            path.suffix, mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        response = Response(path.read_bytes(), content_type=kind)
        response.headers["Cache-Control"] = "no-cache"
        return response

    def _login(self, request: Request) -> Response:
        if self.mode != "local":
            raise NotFound("login links are for the local console")
        if not self.login_links.redeem(request.args.get("token", "")):
            response = self._file("signed-out.html")
            response.status_code = 403
            return response
        _, value = self.sessions.new()
        response = redirect("/console/", code=303)
        response.set_cookie(
            Sessions.COOKIE,
            value,
            max_age=self.sessions.ttl_s,
            path="/console",
            httponly=True,
            secure=self.secure,
            samesite="Strict",
        )
        logger.info("console login", extra=log_fields(event="console-login"))
        return response

    def _logout(self, request: Request) -> Response:
        self._require(request)
        response = Response(status=204)
        response.delete_cookie(Sessions.COOKIE, path="/console")
        return response

    def _session(self, request: Request) -> Response:
        identity = self.identify(request)
        if identity is None:
            raise SignatureError("sign in to the console")
        session = (
            self.sessions.read(request.cookies.get(Sessions.COOKIE))
            if identity.mode == "local"
            else None
        )
        return _json(
            {
                "subject": identity.subject,
                "mode": identity.mode,
                "csrf": self.sessions.csrf_token(identity.subject),
                "expires_at": session.expires_at if session else None,
            }
        )

    # --- the API through the console --------------------------------------------------------

    def _api(self, request: Request, rest: str) -> Response:
        identity = self._require(request)
        environ = dict(request.environ)
        environ["PATH_INFO"] = "/v1/" + rest
        environ["SCRIPT_NAME"] = ""
        return self.query.handle(
            Request(environ), trusted=True, principal=f"console:{identity.subject}"
        )

    def _api_missing(self, request: Request, rest: str) -> Response:
        self._require(request)
        raise NotFound(f"no console route {rest}")

    def _collection(self, cid: str) -> Any:
        try:
            check_collection_id(cid)
        except ValueError as exc:
            raise NotFound(f"no collection {cid!r}") from exc
        if self.query.collections is not None:
            self.query.collections.require(cid)
        return self.query.service.collection(cid)

    def _status(self, request: Request, cid: str) -> Response:
        self._require(request)
        query = self._collection(cid)
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

    def _images(self, request: Request, cid: str) -> Response:
        self._require(request)
        query = self._collection(cid)
        status_text = request.args.get("status")
        try:
            status = ImageStatus(status_text) if status_text else None
            limit = min(max(int(request.args.get("limit", "50")), 1), 200)
        except ValueError as exc:
            raise BadRequest(f"bad status or limit: {exc}") from exc
        page = query.store.list_images(
            status=status, cursor=request.args.get("cursor") or None, limit=limit
        )
        return _json(
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

    def _image_record(self, cid: str, image_id: str) -> ImageRecord:
        query = self._collection(cid)
        try:
            check_id("image", image_id)
        except ValueError as exc:
            raise NotFound(f"no image {image_id!r}") from exc
        record: ImageRecord | None = query.store.get_image(image_id)
        if record is None:
            raise NotFound(f"image {image_id} not found")
        return record

    def _photo_response(self, record: ImageRecord) -> Response:
        if self.parts.photos is None:
            raise NotFound("photos are not served in this deployment")
        data = self.parts.photos(record)
        kind = _sniff(data)
        if kind is None:  # HEIC, TIFF, ...: the browser gets a JPEG of it
            data, kind = _as_jpeg(data), "image/jpeg"
        response = Response(data, content_type=kind)
        response.headers["Cache-Control"] = "private, max-age=300"
        return response

    def _photo(self, request: Request, cid: str, image_id: str) -> Response:
        self._require(request)
        return self._photo_response(self._image_record(cid, image_id))

    def _retry(self, request: Request, cid: str, image_id: str) -> Response:
        self._require(request)
        record = self._image_record(cid, image_id)
        if self.parts.retry is None:
            raise NotFound("retry is not available in this deployment")
        if record.status != ImageStatus.FAILED:
            raise BadRequest(f"image {image_id} is {record.status}, not failed")
        return _json({"image_id": image_id, "status": self.parts.retry(cid, record)})

    def _share_new(self, request: Request, cid: str) -> Response:
        self._require(request)
        self._collection(cid)
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
        return _json(
            {
                "url": f"{self.public_url}/share/{token}",
                "link_id": grant.link_id,
                "expires_at": grant.expires_at,
                "prefix": grant.prefix,
                "show_names": grant.show_names,
            },
            status=201,
        )

    # --- the public share page --------------------------------------------------------------

    def _grant(self, token: str) -> ShareGrant:
        grant = self.shares.read(token)
        if grant is None:
            raise NotFound("this link is not valid or has expired")
        return grant

    def _share_page(self, request: Request, token: str) -> Response:
        try:
            self._grant(token)
        except NotFound:
            response = self._file("share-expired.html")
            response.status_code = 404
            return response
        return self._file("share.html")

    def _share_missing(self, request: Request, rest: str = "") -> Response:
        raise NotFound("nothing here")

    def client_address(self, request: Request) -> str:
        if self.settings.console.trust_forwarded_for:
            hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
            if hops and hops[-1]:
                return hops[-1]
        return request.remote_addr or "?"

    def _share_search(self, request: Request, token: str) -> Response:
        grant = self._grant(token)
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
        body = self._share_matches(grant, token, selfie)
        del selfie  # never stored, never logged: only the matches leave this function
        return _json(body)

    def _share_matches(self, grant: ShareGrant, token: str, selfie: bytes) -> dict[str, Any]:
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

    def _share_photo(self, request: Request, token: str, image_id: str) -> Response:
        grant = self._grant(token)
        if not self.shares.check_photo(
            grant.link_id, image_id, request.args.get("expires", ""), request.args.get("sig", "")
        ):
            raise Forbidden("this photo link is not valid or has expired")
        record = self._image_record(grant.collection_id, image_id)
        if not record.source.startswith(grant.prefix):
            raise NotFound("not in this share")
        return self._photo_response(record)


def _redacted(path: str) -> str:
    """The path with a share token replaced (it is the link's credential)."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "share" and parts[2] != "static":
        parts[2] = "<token>"
    return "/".join(parts)


def _area(bbox: list[float]) -> float:
    return (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) if len(bbox) == 4 else 0.0


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _as_jpeg(data: bytes) -> bytes:
    import io

    from PIL import Image, UnidentifiedImageError

    import facesearch.vision.decode  # noqa: F401 (registers the HEIC opener)

    try:
        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=90)
            return out.getvalue()
    except (UnidentifiedImageError, OSError) as exc:
        raise NotFound("the source is not a displayable image") from exc


def _sniff(data: bytes) -> str | None:
    """The image type a browser will render, from the bytes (never from the file name)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
