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
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
from facesearch.console.identity import GoogleIdentity, Identity
from facesearch.console.responses import (
    harden,
    json_response,
    photo_response,
    redacted,
    static_file,
)
from facesearch.console.share import SharePage
from facesearch.console.tokens import LoginLinks, Macer, Sessions, ShareLinks
from facesearch.errors import (
    BadRequest,
    FaceSearchError,
    Forbidden,
    NotFound,
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

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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
        self.google = google
        if self.mode in ("iap", "iam") and google is None:
            self.google = GoogleIdentity(self.mode, settings.console.iap_audience)
        self.public_url = (settings.api.public_url or "").rstrip("/")
        self.secure = self.public_url.startswith("https://")
        self.share = SharePage(
            settings,
            self.shares,
            collection=self._collection,
            image_record=self._image_record,
            photo=self._photo_response,
            clock=clock,
        )
        self._routes: dict[str, Callable[..., Response]] = {
            "share_asset": self.share.asset,
            "share_page": self.share.page,
            "share_search": self.share.search,
            "share_photo": self.share.photo,
            "share_missing": self.share.missing,
        }
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
            handler = self._routes.get(endpoint) or getattr(self, f"_{endpoint}")
            response = handler(request, **args)
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
                path=redacted(path),
                status=response.status_code,
                ms=round((time.perf_counter() - start) * 1000.0, 3),
            ),
        )
        return harden(response, self.settings.console.img_origins)

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
        return static_file("index.html")

    def _asset(self, request: Request, name: str) -> Response:
        return static_file(name)

    def _login(self, request: Request) -> Response:
        if self.mode != "local":
            raise NotFound("login links are for the local console")
        if not self.login_links.redeem(request.args.get("token", "")):
            response = static_file("signed-out.html")
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
        return json_response(
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
        return photo_response(self.parts.photos(record))

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
        return json_response({"image_id": image_id, "status": self.parts.retry(cid, record)})

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
