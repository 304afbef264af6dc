"""The route table: every endpoint once, with the schemas the OpenAPI document shows.

Each :class:`Route` names its handler, request body kinds, query parameters
(a pydantic model), response model and the problem statuses it can return;
:mod:`facesearch.api.openapi` renders the same table, so the spec cannot list
an endpoint that does not exist or miss one that does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Request

from facesearch.api import schemas as s
from facesearch.api.inputs import json_model, parse_match, parse_model, parse_search
from facesearch.errors import BadRequest

if TYPE_CHECKING:
    from facesearch.api.app import Call


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, max_length=4096, description="next_cursor of a page")
    limit: int = Field(default=100, ge=1, le=1000)


class FacesQuery(PageQuery):
    person: str | None = Field(default=None, min_length=1, max_length=s.MAX_ID_CHARS)
    image: str | None = Field(default=None, min_length=1, max_length=s.MAX_ID_CHARS)


class CropQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires: str = Field(max_length=12)
    sig: str = Field(max_length=128)


Handler = Callable[["Call"], Any]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    rule: str
    handler: Handler
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    auth: bool = True
    tag: str = "query"
    body: dict[str, type[BaseModel] | str] = field(default_factory=dict)  # media type -> schema
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    response_media: str = "application/json"


def _query(call: Call, model: type[BaseModel]) -> Any:
    return parse_model(model, {k: call.request.args[k] for k in call.request.args})


# --- handlers ----------------------------------------------------------------------------


def search(call: Call) -> s.SearchResponse:
    probe, params = parse_search(
        call.request, call.body, max_bytes=call.settings.vision.max_image_bytes
    )
    return call.service.searcher.search(probe, params)


def match(call: Call) -> s.MatchResponse:
    a, b, req = parse_match(call.request, call.body, max_bytes=call.settings.vision.max_image_bytes)
    return call.service.searcher.match(a, b, req)


def get_face(call: Call) -> s.FaceOut:
    return call.service.records.get_face(call.args["face_id"])


def get_image(call: Call) -> s.ImageOut:
    return call.service.records.get_image(call.args["image_id"])


def list_faces(call: Call) -> s.FacePage:
    q: FacesQuery = _query(call, FacesQuery)
    if q.person is not None and q.image is not None:
        raise BadRequest("filter by person or by image, not both")
    return call.service.records.list_faces(
        person_id=q.person, image_id=q.image, cursor=q.cursor, limit=q.limit
    )


def create_person(call: Call) -> s.PersonOut:
    body = json_model(call.request, call.body, s.PersonCreate)
    return call.service.records.create_person(body.name, body.metadata)


def get_person(call: Call) -> s.PersonOut:
    return call.service.records.get_person(call.args["person_id"])


def update_person(call: Call) -> s.PersonOut:
    body = json_model(call.request, call.body, s.PersonPatch)
    return call.service.records.update_person(
        call.args["person_id"], name=body.name, metadata=body.metadata
    )


def list_persons(call: Call) -> s.PersonPage:
    q: PageQuery = _query(call, PageQuery)
    return call.service.records.list_persons(cursor=q.cursor, limit=q.limit)


def set_face_person(call: Call) -> s.FaceOut:
    body = json_model(call.request, call.body, s.FacePersonPut)
    return call.service.records.set_face_person(call.args["face_id"], body.person_id)


def forget_image(call: Call) -> s.Forgotten:
    return call.service.forgetter.forget_image(call.args["image_id"])


def forget_person(call: Call) -> s.Forgotten:
    return call.service.forgetter.forget_person(call.args["person_id"])


def stats(call: Call) -> s.Stats:
    return call.service.operations.stats()


def healthz(call: Call) -> s.Health:
    return call.service.operations.health()


def crop(call: Call) -> bytes:
    q: CropQuery = _query(call, CropQuery)
    return call.crop_bytes(call.args["face_id"], q.expires, q.sig)


def openapi(call: Call) -> dict[str, Any]:
    return call.openapi()


_IMAGE_BODY: dict[str, type[BaseModel] | str] = {
    "application/json": s.SearchRequest,
    "multipart/form-data": "search-multipart",
    "image/*": "binary",
}
_IMAGE_ERRORS = (400, 413, 415, 422, 429, 503)

ROUTES: tuple[Route, ...] = (
    Route(
        "search",
        "POST",
        "/v1/search",
        search,
        "Search the collection with every face of an image, one face, an embedding or a "
        "stored face id",
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
        "Faces, all or of one person or image, a page at a time",
        s.FacePage,
        query=FacesQuery,
        tag="records",
        errors=(400,),
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
        "set_face_person",
        "PUT",
        "/v1/faces/<face_id>/person",
        set_face_person,
        "Label a face with a person (null removes the label)",
        s.FaceOut,
        body={"application/json": s.FacePersonPut},
        tag="persons",
        errors=(400, 404, 415),
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
    ),
    Route(
        "create_person",
        "POST",
        "/v1/persons",
        create_person,
        "Create a person",
        s.PersonOut,
        status=201,
        body={"application/json": s.PersonCreate},
        tag="persons",
        errors=(400, 415),
    ),
    Route(
        "list_persons",
        "GET",
        "/v1/persons",
        list_persons,
        "Persons, a page at a time",
        s.PersonPage,
        query=PageQuery,
        tag="persons",
        errors=(400,),
    ),
    Route(
        "get_person",
        "GET",
        "/v1/persons/<person_id>",
        get_person,
        "One person",
        s.PersonOut,
        tag="persons",
        errors=(404,),
    ),
    Route(
        "update_person",
        "PATCH",
        "/v1/persons/<person_id>",
        update_person,
        "Rename a person or replace their metadata",
        s.PersonOut,
        body={"application/json": s.PersonPatch},
        tag="persons",
        errors=(400, 404, 415),
    ),
    Route(
        "forget_person",
        "DELETE",
        "/v1/persons/<person_id>",
        forget_person,
        "Forget a person and all their faces: records, crops and index entries",
        s.Forgotten,
        tag="forget",
        errors=(404,),
    ),
    Route(
        "stats",
        "GET",
        "/v1/stats",
        stats,
        "Collection and index statistics, model versions",
        s.Stats,
        tag="operations",
    ),
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
    ),
)

__all__ = ["ROUTES", "CropQuery", "FacesQuery", "PageQuery", "Request", "Route"]
