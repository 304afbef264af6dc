"""The query API as a WSGI application: routing, authentication, rendering.

One object serves both deployments: functions-framework hands
:func:`QueryApp.handle` a Flask request (a werkzeug ``Request``) in Cloud Run,
and ``facesearch serve`` runs the same object as a WSGI app on localhost.
Errors become problem+json here and nowhere else (:mod:`.problems`); every
request logs one JSON access line with its request id, key id, status and
stage timings, and returns the timings in a ``Server-Timing`` header.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanKind
from pydantic import BaseModel
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from facesearch.api.bodies import read_body
from facesearch.api.collections import CollectionAdmin
from facesearch.api.crops import LocalCropUrls
from facesearch.api.openapi import openapi_document
from facesearch.api.problems import failure_response
from facesearch.api.route import Route, Scoping, match_request
from facesearch.api.routes import ROUTES
from facesearch.api.service import CollectionQuery, QueryService
from facesearch.auth.keys import KeyGrant, Scope
from facesearch.auth.signing import query_pairs
from facesearch.auth.verify import Verified, Verifier
from facesearch.collections.directory import CollectionDirectory
from facesearch.collections.quota import RequestQuota
from facesearch.config import Settings
from facesearch.errors import CollectionClosed, FaceSearchError, MethodNotAllowed, NotFound
from facesearch.logs import log_fields
from facesearch.storage.metadata import DEFAULT_COLLECTION, check_collection_id, check_id
from facesearch.telemetry import extract, metrics, prometheus_text, span

logger = logging.getLogger("facesearch.api")

#: the Prometheus scrape path (unsigned: aggregate counts only, no ids; see docs/operations.md)
METRICS_PATH = "/metrics"
#: JSON bodies and multipart uploads: two images (match) in base64 plus form overhead
BODY_OVERHEAD_BYTES = 1 << 20


@dataclass
class Call:
    """What a handler gets: the request, its verified body, path args, its collection, the
    caller's verified key, and the services."""

    request: Request
    body: bytes
    args: dict[str, str]
    app: QueryApp
    request_id: str
    collection_id: str = DEFAULT_COLLECTION
    verified: Verified | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def service(self) -> QueryService:
        return self.app.service

    @property
    def query(self) -> CollectionQuery:
        """The services of this call's collection."""
        return self.app.service.collection(self.collection_id)

    @property
    def admin(self) -> CollectionAdmin:
        if self.app.admin is None:
            raise NotFound("collections are not managed by this service")
        return self.app.admin

    @property
    def grant(self) -> KeyGrant | None:
        return None if self.verified is None else self.verified.grant

    @property
    def settings(self) -> Settings:
        return self.app.settings

    def authorize(
        self, scope: Scope, collection_id: str | None, *, any_collection: bool = False
    ) -> None:
        """403 unless the caller's key may do ``scope`` in ``collection_id``.

        ``any_collection``: enough that the key has the scope somewhere (listings then
        show only the collections it may see).
        """
        if self.verified is None:
            return
        if any_collection and scope in self.verified.grant.scopes:
            return
        self.verified.check(scope, collection_id)

    def crop_bytes(self, face_id: str, expires: str, sig: str, collection_id: str) -> bytes:
        crops = self.service.crops
        if not isinstance(crops, LocalCropUrls):
            raise NotFound("crops are served from signed storage URLs in this deployment")
        crops.check(face_id, expires, sig, collection_id)
        record = self.service.collection(collection_id).store.get_face(face_id)
        if record is None or not record.crop_url:
            raise NotFound("crop not found")
        return crops.read(record.crop_url)

    def openapi(self) -> dict[str, Any]:
        return openapi_document()


class QueryApp:
    def __init__(
        self,
        settings: Settings,
        service: QueryService,
        verifier: Verifier,
        *,
        admin: CollectionAdmin | None = None,
        collections: CollectionDirectory | None = None,
        quota: RequestQuota | None = None,
    ) -> None:
        self.settings = settings
        self.service = service
        self.verifier = verifier
        self.admin = admin
        self.collections = collections
        self.quota = quota
        self.routes = {route.name: route for route in ROUTES}
        self.url_map = Map(
            [Rule(r.rule, endpoint=r.name, methods=[r.method]) for r in ROUTES],
            strict_slashes=False,
        )
        self.max_body_bytes = 2 * (settings.vision.max_image_bytes * 4 // 3) + BODY_OVERHEAD_BYTES

    # --- WSGI ----------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        return self.handle(Request(environ))(environ, start_response)

    def handle(
        self, request: Request, *, trusted: bool = False, principal: str | None = None
    ) -> Response:
        """One request, traced as a server span (continuing the caller's ``traceparent``)
        and counted by route and status. ``trusted``: the caller (the console layer) has
        already authenticated it by other means — a console session with its CSRF check,
        or a verified IAP identity — so no request signature is asked for; scope is then
        unrestricted, but collection state and quotas still apply; ``principal`` names it
        in the access log."""
        if request.path == METRICS_PATH and request.method == "GET":
            exposition = prometheus_text()
            if exposition is not None:  # only where the Prometheus exporter is on
                return Response(exposition[0], status=200, content_type=exposition[1])
        start = time.perf_counter()
        with span(
            f"{request.method} {request.path if request.path == '/healthz' else 'api'}",
            {"http.request.method": request.method},
            parent=extract(dict(request.headers)),
            kind=SpanKind.SERVER,
        ) as current:
            response, route_name = self._handle(request, start, trusted, principal)
            current.update_name(f"{request.method} {route_name}")
            current.set_attribute("http.route", route_name)
            current.set_attribute("http.response.status_code", response.status_code)
        metrics.record_request(route_name, response.status_code, time.perf_counter() - start)
        return response

    def _handle(
        self, request: Request, start: float, trusted: bool, principal: str | None
    ) -> tuple[Response, str]:
        request_id = _request_id(request)
        key_id: str | None = principal if trusted else None
        call: Call | None = None
        route: Route | None = None
        try:
            endpoint, args = match_request(
                self.url_map, request, method_error=MethodNotAllowed, missing="no route"
            )
            route = self.routes[endpoint]
            signed = route.auth and not trusted
            if signed:
                # before reading a byte of the body: no anonymous or forged caller (bad
                # headers, unknown key, stale time, a nonce seen here) makes us buffer 50 MB
                self.verifier.precheck(dict(request.headers), request_id=request_id)
            body = read_body(
                request, self.max_body_bytes, deadline_s=self.settings.api.body_read_timeout_s
            )
            path_args = _path_args(args)
            collection_id = path_args.pop("collection_id", DEFAULT_COLLECTION)
            call = Call(request, body, path_args, self, request_id, collection_id)
            if signed:
                t = time.perf_counter()
                call.verified = self.verifier.verify(
                    request.method,
                    request.path,
                    query_pairs(request.query_string.decode("latin-1")),
                    dict(request.headers),
                    body,
                    request_id=request_id,
                )
                key_id = call.verified.key_id
                call.timings["auth"] = round((time.perf_counter() - t) * 1000.0, 3)
            if route.auth:
                self._admit(route, call)
            result = route.handler(call)
            stage_timings = getattr(result, "timings_ms", None)
            if isinstance(stage_timings, dict):
                call.timings.update(stage_timings)
            response = self._render(route, result)
        except BaseException as exc:  # one place for every failure
            response = failure_response(exc, request_id=request_id, path=request.path)
            if isinstance(exc, FaceSearchError) and exc.code in ("rate-limited", "quota-exceeded"):
                metrics.record_shed(exc.code)
        timings = dict(call.timings) if call else {}
        timings["app"] = round((time.perf_counter() - start) * 1000.0, 3)
        response.headers["X-Request-Id"] = request_id
        response.headers["Server-Timing"] = ", ".join(
            f"{name};dur={value}" for name, value in timings.items()
        )
        response.headers["Cache-Control"] = "no-store"
        logger.info(
            "request",
            extra=log_fields(
                request_id=request_id,
                method=request.method,
                path=request.path,
                route=route.name if route else None,
                status=response.status_code,
                key_id=key_id,
                timings_ms=timings,
            ),
        )
        return response, route.name if route else "unmatched"

    def _admit(self, route: Route, call: Call) -> None:
        """Scope, collection state and quota: what a verified key may do here, now."""
        if route.scoping in (Scoping.DEFAULT, Scoping.PATH):
            call.authorize(route.scope, call.collection_id)
            if self.collections is not None:
                if route.active_only:
                    try:
                        self.collections.require_active(call.collection_id)
                    except CollectionClosed:  # erased elsewhere: drop what this instance holds
                        self.service.close(call.collection_id, erased=True)
                        raise
                else:
                    self.collections.require(call.collection_id)
            if self.quota is not None:
                self.quota.take(call.collection_id)

    def _render(self, route: Route, result: Any) -> Response:
        if isinstance(result, bytes):
            return Response(result, status=route.status, content_type=route.response_media)
        if isinstance(result, BaseModel):
            payload = result.model_dump_json()
            status = route.status
            if route.name == "healthz" and getattr(result, "status", "ok") != "ok":
                status = 503
            return Response(payload, status=status, content_type="application/json")
        return Response(json.dumps(result), status=route.status, content_type="application/json")


def _path_args(args: Mapping[str, Any]) -> dict[str, str]:
    """Path ids must be valid record ids (the stores refuse '.', '..', '__x__', ...).

    An id no record can have names nothing: 404, which every id route documents,
    rather than a 400 the OpenAPI document would have to list on each of them.
    """
    out = {}
    for name, value in args.items():
        text = str(value)
        kind = name.removesuffix("_id")
        try:
            check_collection_id(text) if kind == "collection" else check_id(kind, text)
        except ValueError as exc:
            raise NotFound(f"no {kind} {text!r}: {exc}") from exc
        out[name] = text
    return out


def _request_id(request: Request) -> str:
    """Cloud Run's trace id when present (logs then group by request), else a fresh id."""
    trace = request.headers.get("X-Cloud-Trace-Context", "")
    candidate = trace.split("/", 1)[0] or request.headers.get("X-Request-Id", "")
    if candidate and len(candidate) <= 64 and candidate.replace("-", "").isalnum():
        return candidate
    return uuid.uuid4().hex
