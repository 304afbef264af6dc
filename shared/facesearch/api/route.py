"""What a route is: method, rule, handler, schemas, errors, and the key scope it needs.

A route is declared once, on its handler, with a :class:`RouteTable` decorator (as Flask
and FastAPI do): the handler's name, docstring and annotations give the route's name,
summary, response model and request models, so they cannot drift apart. :mod:`.routes`,
:mod:`.person_routes`, :mod:`.video_routes` and :mod:`.collection_routes` fill their tables
this way; :mod:`.app` dispatches on the :class:`Route` data and :mod:`.openapi` renders it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
from werkzeug.exceptions import NotFound as WzNotFound
from werkzeug.routing import Map
from werkzeug.wrappers import Request

from facesearch.api.inputs import json_model, parse_model
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
#: a handler as written: ``(call)``, or with ``body``/``query`` parameters the route parses
H = TypeVar("H", bound=Callable[..., Any])


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


class RouteTable:
    """The routes of one module, in declaration order (the order werkzeug is given).

    ``defaults`` are :class:`Route` fields every route here shares (``tag``, and for
    example ``auth``/``scoping`` of the unsigned operations routes); a route's own
    options override them.
    """

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        self._routes: list[Route] = []

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def route(self, method: str, rule: str, **options: Any) -> Callable[[H], H]:
        """Declare the decorated handler as the route ``method rule``.

        From the handler: the name (``__name__``), the summary (the first paragraph of
        its docstring), the response model (its return annotation, when that is a
        pydantic model; ``bytes`` or a plain ``dict`` document no model) and its request
        models: a ``body`` parameter is the JSON body and a ``query`` parameter the query
        string, parsed into the annotated model before the handler runs. A handler that
        parses its request itself (several media types) declares ``body=``/``query=``
        here instead, for the document. ``options``: any other :class:`Route` field.
        """

        def register(handler: H) -> H:
            self._routes.append(_route_of(handler, method, rule, {**self.defaults, **options}))
            return handler

        return register


def _route_of(handler: H, method: str, rule: str, options: dict[str, Any]) -> Route:
    body, query = _hint(handler, "body"), _hint(handler, "query")
    if (body is not None and "body" in options) or (query is not None and "query" in options):
        raise TypeError(f"{handler.__name__}: a request model is declared twice")
    if body is not None:
        options["body"] = {"application/json": body}
    if query is not None:
        options["query"] = query
    response = _hint(handler, "return")
    options.setdefault(
        "response",
        response if isinstance(response, type) and issubclass(response, BaseModel) else None,
    )
    return Route(
        name=handler.__name__,
        method=method,
        rule=rule,
        handler=_parsing(handler, body, query),
        summary=_summary(handler),
        **options,
    )


def _hint(handler: Callable[..., Any], name: str) -> Any:
    """The annotation ``name`` of ``handler`` as an object (``None`` when it has none).

    Handler modules postpone annotations and import ``Call`` for type checking only, so
    ``typing.get_type_hints`` (which evaluates every annotation) would fail; the return,
    ``body`` and ``query`` annotations name models the module imports at run time.
    """
    hint = inspect.get_annotations(handler).get(name)
    if isinstance(hint, str):
        return eval(hint, handler.__globals__)
    return hint


def _summary(handler: Callable[..., Any]) -> str:
    """The first paragraph of the handler's docstring, on one line: the route's summary."""
    doc = inspect.getdoc(handler)
    if not doc:
        raise TypeError(f"{handler.__name__}: a route handler's docstring is its summary")
    return " ".join(doc.split("\n\n", 1)[0].split())


def _parsing(
    handler: Callable[..., Any], body: type[BaseModel] | None, query: type[BaseModel] | None
) -> Handler:
    """``handler`` as the app calls it: ``(call)``, with its declared models parsed first."""
    if body is None and query is None:
        return handler

    @functools.wraps(handler)
    def parsed(call: Call) -> Any:
        inputs: dict[str, BaseModel] = {}
        if query is not None:
            inputs["query"] = query_args(call, query)
        if body is not None:
            inputs["body"] = json_model(call.request, call.body, body)
        return handler(call, **inputs)

    return parsed


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
