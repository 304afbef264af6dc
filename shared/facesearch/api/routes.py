"""The route table: every endpoint once, with the schemas the OpenAPI document shows.

Each handler declares its :class:`~facesearch.api.route.Route` with a
:class:`~facesearch.api.route.RouteTable` decorator (request body kinds, query parameters
as a pydantic model, response model, the problem statuses it can return);
:mod:`facesearch.api.openapi` renders the same table, so the spec cannot list an endpoint
that does not exist or miss one that does. :data:`ROUTES` joins this module's tables with
the person, video and collection ones, in the order werkzeug is given them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from facesearch.api import schemas as s
from facesearch.api.collection_routes import collections
from facesearch.api.inputs import parse_match, parse_search
from facesearch.api.person_routes import persons
from facesearch.api.route import CropQuery, FacesQuery, Route, RouteTable, Scoping
from facesearch.api.video_routes import videos
from facesearch.auth.keys import Scope
from facesearch.errors import BadRequest

if TYPE_CHECKING:
    from facesearch.api.app import Call

#: the data routes before the person and video ones
data = RouteTable(tag="query")
#: the data routes after them
statistics = RouteTable(tag="operations")
#: deployment-wide and unsigned
operations = RouteTable(tag="operations", auth=False, scoping=Scoping.NONE)

_IMAGE_BODY: dict[str, type[BaseModel] | str] = {
    "application/json": s.SearchRequest,
    "multipart/form-data": "search-multipart",
    "image/*": "binary",
}
_IMAGE_ERRORS = (400, 413, 415, 422, 429, 503)


@data.route(
    "POST", "/v1/search", body=_IMAGE_BODY, query=s.SearchParams, errors=(*_IMAGE_ERRORS, 404)
)
def search(call: Call) -> s.SearchResponse:
    """Search the collection with every face of an image, one face, an embedding or a
    stored face id; faces, or persons ranked (group_by=person)

    The body is JSON, a multipart form or the image itself: :func:`parse_search` reads
    each kind, so the route declares its body and query for the document only.
    """
    probe, params = parse_search(
        call.request, call.body, max_bytes=call.settings.vision.max_image_bytes
    )
    return call.query.searcher.search(probe, params)


@data.route(
    "POST",
    "/v1/match",
    body={"application/json": s.MatchRequest, "multipart/form-data": "match-multipart"},
    errors=_IMAGE_ERRORS,
)
def match(call: Call) -> s.MatchResponse:
    """Are the faces in two images the same person?"""
    a, b, req = parse_match(call.request, call.body, max_bytes=call.settings.vision.max_image_bytes)
    return call.query.searcher.match(a, b, req)


@data.route("GET", "/v1/faces", tag="records", errors=(400, 404))
def list_faces(call: Call, query: FacesQuery) -> s.FacePage:
    """Faces, all or of one person (404 if there is no such person) or image, a page at a time"""
    if query.person is not None and query.image is not None:
        raise BadRequest("filter by person or by image, not both")
    return call.query.records.list_faces(
        person_id=query.person, image_id=query.image, cursor=query.cursor, limit=query.limit
    )


@data.route("GET", "/v1/faces/<face_id>", tag="records", errors=(404,))
def get_face(call: Call) -> s.FaceOut:
    """One face"""
    return call.query.records.get_face(call.args["face_id"])


@data.route("GET", "/v1/images/<image_id>", tag="records", errors=(404,))
def get_image(call: Call) -> s.ImageOut:
    """An image's processing status and faces"""
    return call.query.records.get_image(call.args["image_id"])


@data.route("DELETE", "/v1/images/<image_id>", tag="forget", errors=(404,), scope=Scope.ERASE)
def forget_image(call: Call) -> s.Forgotten:
    """Forget an image: records, crops and index entries"""
    return call.query.forgetter.forget_image(call.args["image_id"])


@statistics.route("GET", "/v1/stats")
def stats(call: Call) -> s.Stats:
    """Collection and index statistics, model versions"""
    return call.query.operations.stats()


@operations.route(
    "GET",
    "/v1/crops/<face_id>",
    tag="records",
    errors=(400, 403, 404),
    response_media="image/jpeg",
)
def crop(call: Call, query: CropQuery) -> bytes:
    """A face crop through a time-limited URL from a search result (the URL is the
    credential; embedded mode only, the cloud hands out GCS signed URLs)"""
    return call.crop_bytes(call.args["face_id"], query.expires, query.sig, query.collection)


@operations.route("GET", "/healthz", errors=(503,))
def healthz(call: Call) -> s.Health:
    """Liveness/readiness: models load, index readable (unsigned)"""
    return call.service.operations.health()


@operations.route("GET", "/openapi.json")
def openapi(call: Call) -> dict[str, Any]:
    """This document (unsigned)"""
    return call.openapi()


_DATA_ROUTES: tuple[Route, ...] = (
    *data.routes,
    *persons.routes,
    *videos.routes,
    *statistics.routes,
)

#: every route once; each data route also under /v1/collections/<collection_id>
ROUTES: tuple[Route, ...] = (
    *_DATA_ROUTES,
    *(route.in_collection() for route in _DATA_ROUTES),
    *collections.routes,
    *operations.routes,
)
