"""The route table: every endpoint once, with the schemas the OpenAPI document shows.

Each :class:`~facesearch.api.route.Route` names its handler, request body kinds, query parameters
(a pydantic model), response model and the problem statuses it can return;
:mod:`facesearch.api.openapi` renders the same table, so the spec cannot list
an endpoint that does not exist or miss one that does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from facesearch.api import schemas as s
from facesearch.api.collection_routes import COLLECTION_ROUTES
from facesearch.api.inputs import parse_match, parse_search
from facesearch.api.person_routes import PERSON_ROUTES
from facesearch.api.route import CropQuery, FacesQuery, Route, Scoping, query_args
from facesearch.api.video_routes import VIDEO_ROUTES
from facesearch.auth.keys import Scope
from facesearch.errors import BadRequest

if TYPE_CHECKING:
    from facesearch.api.app import Call


# --- handlers ----------------------------------------------------------------------------


def search(call: Call) -> s.SearchResponse:
    probe, params = parse_search(
        call.request, call.body, max_bytes=call.settings.vision.max_image_bytes
    )
    return call.query.searcher.search(probe, params)


def match(call: Call) -> s.MatchResponse:
    a, b, req = parse_match(call.request, call.body, max_bytes=call.settings.vision.max_image_bytes)
    return call.query.searcher.match(a, b, req)


def get_face(call: Call) -> s.FaceOut:
    return call.query.records.get_face(call.args["face_id"])


def get_image(call: Call) -> s.ImageOut:
    return call.query.records.get_image(call.args["image_id"])


def list_faces(call: Call) -> s.FacePage:
    q: FacesQuery = query_args(call, FacesQuery)
    if q.person is not None and q.image is not None:
        raise BadRequest("filter by person or by image, not both")
    return call.query.records.list_faces(
        person_id=q.person, image_id=q.image, cursor=q.cursor, limit=q.limit
    )


def forget_image(call: Call) -> s.Forgotten:
    return call.query.forgetter.forget_image(call.args["image_id"])


def stats(call: Call) -> s.Stats:
    return call.query.operations.stats()


def healthz(call: Call) -> s.Health:
    return call.service.operations.health()


def crop(call: Call) -> bytes:
    q: CropQuery = query_args(call, CropQuery)
    return call.crop_bytes(call.args["face_id"], q.expires, q.sig, q.collection)


def openapi(call: Call) -> dict[str, Any]:
    return call.openapi()


_IMAGE_BODY: dict[str, type[BaseModel] | str] = {
    "application/json": s.SearchRequest,
    "multipart/form-data": "search-multipart",
    "image/*": "binary",
}
_IMAGE_ERRORS = (400, 413, 415, 422, 429, 503)

_DATA_ROUTES: tuple[Route, ...] = (
    Route(
        "search",
        "POST",
        "/v1/search",
        search,
        "Search the collection with every face of an image, one face, an embedding or a "
        "stored face id; faces, or persons ranked (group_by=person)",
        s.SearchResponse,
        body=_IMAGE_BODY,
        query=s.SearchParams,
        errors=(*_IMAGE_ERRORS, 404),
    ),
    Route(
        "match",
        "POST",
        "/v1/match",
        match,
        "Are the faces in two images the same person?",
        s.MatchResponse,
        body={"application/json": s.MatchRequest, "multipart/form-data": "match-multipart"},
        errors=_IMAGE_ERRORS,
    ),
    Route(
        "list_faces",
        "GET",
        "/v1/faces",
        list_faces,
        "Faces, all or of one person (404 if there is no such person) or image, a page at a time",
        s.FacePage,
        query=FacesQuery,
        tag="records",
        errors=(400, 404),
    ),
    Route(
        "get_face",
        "GET",
        "/v1/faces/<face_id>",
        get_face,
        "One face",
        s.FaceOut,
        tag="records",
        errors=(404,),
    ),
    Route(
        "get_image",
        "GET",
        "/v1/images/<image_id>",
        get_image,
        "An image's processing status and faces",
        s.ImageOut,
        tag="records",
        errors=(404,),
    ),
    Route(
        "forget_image",
        "DELETE",
        "/v1/images/<image_id>",
        forget_image,
        "Forget an image: records, crops and index entries",
        s.Forgotten,
        tag="forget",
        errors=(404,),
        scope=Scope.ERASE,
    ),
    *PERSON_ROUTES,
    *VIDEO_ROUTES,
    Route(
        "stats",
        "GET",
        "/v1/stats",
        stats,
        "Collection and index statistics, model versions",
        s.Stats,
        tag="operations",
    ),
)

_OPERATIONS: tuple[Route, ...] = (
    Route(
        "crop",
        "GET",
        "/v1/crops/<face_id>",
        crop,
        "A face crop through a time-limited URL from a search result (the URL is the "
        "credential; embedded mode only, the cloud hands out GCS signed URLs)",
        None,
        auth=False,
        query=CropQuery,
        tag="records",
        errors=(400, 403, 404),
        response_media="image/jpeg",
        scoping=Scoping.NONE,
    ),
    Route(
        "healthz",
        "GET",
        "/healthz",
        healthz,
        "Liveness/readiness: models load, index readable (unsigned)",
        s.Health,
        auth=False,
        tag="operations",
        errors=(503,),
        scoping=Scoping.NONE,
    ),
    Route(
        "openapi",
        "GET",
        "/openapi.json",
        openapi,
        "This document (unsigned)",
        None,
        auth=False,
        tag="operations",
        scoping=Scoping.NONE,
    ),
)

#: every route once; each data route also under /v1/collections/<collection_id>
ROUTES: tuple[Route, ...] = (
    *_DATA_ROUTES,
    *(route.in_collection() for route in _DATA_ROUTES),
    *COLLECTION_ROUTES,
    *_OPERATIONS,
)
