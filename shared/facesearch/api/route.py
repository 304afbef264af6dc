"""What a route is: method, rule, handler, schemas, errors, and the key scope it needs.

:mod:`.routes` and :mod:`.collection_routes` fill the table with these;
:mod:`.app` dispatches on it and :mod:`.openapi` renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
from werkzeug.exceptions import NotFound as WzNotFound
from werkzeug.routing import Map
from werkzeug.wrappers import Request

from facesearch.api.inputs import parse_model
from facesearch.api.schemas import MAX_ID_CHARS
from facesearch.auth.keys import Scope
from facesearch.errors import FaceSearchError, NotFound

if TYPE_CHECKING:
    from facesearch.api.app import Call


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, max_length=4096, description="next_cursor of a page")
    limit: int = Field(default=100, ge=1, le=1000)


class FacesQuery(PageQuery):
    person: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    image: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)


class CropQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires: str = Field(max_length=12)
    sig: str = Field(max_length=128)
    collection: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")


Handler = Callable[["Call"], Any]


class Scoping(StrEnum):
    """Where a route's collection comes from, and so what its key must be allowed."""

    NONE = "none"  # deployment-wide and unsigned (health, the document, crop URLs)
    DEFAULT = "default"  # the default collection (the unscoped /v1/... routes)
    PATH = "path"  # /v1/collections/<collection_id>/...
    HANDLER = "handler"  # the handler checks (listing and creating collections)


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
    scope: Scope = Scope.SEARCH
    scoping: Scoping = Scoping.DEFAULT
    #: data routes refuse a collection that is being erased; its own record route does not
    active_only: bool = True

    def in_collection(self) -> Route:
        """The same route under ``/v1/collections/<collection_id>``."""
        return replace(
            self,
            name=f"{self.name}_in_collection",
            rule="/v1/collections/<collection_id>" + self.rule.removeprefix("/v1"),
            scoping=Scoping.PATH,
            errors=tuple(sorted({*self.errors, 403, 404, 409})),
        )


def query_args(call: Call, model: type[BaseModel]) -> Any:
    """The request's query string as ``model`` (unknown parameters refused)."""
    return parse_model(model, {k: call.request.args[k] for k in call.request.args})


def match_request(
    url_map: Map, request: Request, *, method_error: type[FaceSearchError], missing: str
) -> tuple[str, Mapping[str, Any]]:
    """The endpoint and path arguments ``url_map`` gives ``request``.

    Werkzeug's own 404 and 405 become typed errors here (``to_error`` would make any
    werkzeug exception a 400): ``missing`` starts the 404's detail, ``method_error`` is
    what a known path with the wrong method raises (the API says 405, the console 400).
    """
    try:
        endpoint, args = url_map.bind_to_environ(request.environ).match()
    except WzMethodNotAllowed as exc:
        raise method_error(f"{request.method} is not allowed here") from exc
    except WzNotFound as exc:
        raise NotFound(f"{missing} {request.path}") from exc
    return str(endpoint), args
