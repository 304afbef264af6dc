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
  the status summary, failed images and retry, share links), in
  :mod:`.collection_views`;
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

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from facesearch.api.app import QueryApp, _request_id
from facesearch.api.problems import failure_response
from facesearch.api.route import match_request
from facesearch.console.collection_views import CollectionViews, ConsoleParts
from facesearch.console.identity import GoogleIdentity, Identity
from facesearch.console.responses import (
    harden,
    json_response,
    redacted,
    static_file,
)
from facesearch.console.share import SharePage
from facesearch.console.tokens import LoginLinks, Macer, Sessions, ShareLinks
from facesearch.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    SignatureError,
)
from facesearch.logs import log_fields

logger = logging.getLogger("facesearch.console")

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
        macer = Macer(key)
        self.sessions = Sessions(macer, settings.console.session_ttl_s, clock=clock)
        self.login_links = LoginLinks(settings.console.login_link_ttl_s, clock=clock)
        self.shares = ShareLinks(macer, settings.console.share_max_ttl_s, clock=clock)
        self.google = google
        if self.mode in ("iap", "iam") and google is None:
            self.google = GoogleIdentity(self.mode, settings.console.iap_audience)
        self.public_url = (settings.api.public_url or "").rstrip("/")
        self.secure = self.public_url.startswith("https://")
        self.views = CollectionViews(
            query,
            parts or ConsoleParts(),
            self.shares,
            public_url=self.public_url,
            require=self._require,
        )
        self.share = SharePage(
            settings,
            self.shares,
            collection=self.views.collection,
            image_record=self.views.image_record,
            photo=self.views.photo_response,
            clock=clock,
        )
        self._routes: dict[str, Callable[..., Response]] = {
            "status": self.views.status,
            "images": self.views.images,
            "photo": self.views.photo,
            "retry": self.views.retry,
            "share_new": self.views.share_new,
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
            endpoint, args = match_request(
                self.url_map, request, method_error=BadRequest, missing="no page"
            )
            handler = self._routes.get(endpoint) or getattr(self, f"_{endpoint}")
            response = handler(request, **args)
        except BaseException as exc:  # the API's one failure mapping, for pages too
            response = failure_response(exc, request_id=request_id, path=path)
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
