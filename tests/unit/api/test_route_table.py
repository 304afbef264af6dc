"""A route is declared once, on its handler: what :class:`RouteTable` takes from it.

The handlers here are written like the API's own (postponed annotations, ``Call`` named
for type checking only), so the annotation lookup is exercised as the app uses it.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel, ConfigDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from facesearch.api.route import PageQuery, Route, RouteTable, Scoping
from facesearch.api.routes import ROUTES
from facesearch.auth.keys import Scope
from facesearch.errors import BadRequest, UnsupportedMediaType

if TYPE_CHECKING:
    from facesearch.api.app import Call


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


class Renamed(BaseModel):
    thing_id: str
    name: str
    cursor: str | None = None


table = RouteTable(tag="things", scope=Scope.MANAGE)


@table.route("PATCH", "/v1/things/<thing_id>", errors=(400, 415))
def rename_thing(call: Call, body: Rename, query: PageQuery) -> Renamed:
    """Rename a thing,
    keeping its id

    Only the first paragraph is the summary; this one is for readers of the code.
    """
    return Renamed(thing_id=call.args["thing_id"], name=body.name, cursor=query.cursor)


@table.route("GET", "/things.bin", tag="bytes", scope=Scope.SEARCH, scoping=Scoping.NONE)
def thing_bytes(call: Call) -> bytes:
    """The raw thing"""
    return b"thing"


def _call(body: object, *, content_type: str = "application/json", query: str = "") -> Any:
    data = json.dumps(body).encode()
    env = EnvironBuilder(method="PATCH", query_string=query, data=data, content_type=content_type)
    return SimpleNamespace(request=Request(env.get_environ()), body=data, args={"thing_id": "t1"})


def test_the_route_comes_from_the_handler() -> None:
    rename, raw = table.routes
    assert (rename.name, rename.method, rename.rule) == (
        "rename_thing",
        "PATCH",
        "/v1/things/<thing_id>",
    )
    assert rename.summary == "Rename a thing, keeping its id"
    assert rename.response is Renamed
    assert rename.body == {"application/json": Rename} and rename.query is PageQuery
    assert (rename.tag, rename.scope, rename.errors) == ("things", Scope.MANAGE, (400, 415))
    # a return annotation that is not a model documents none; options beat the table's
    assert (raw.name, raw.response, raw.body, raw.query) == ("thing_bytes", None, {}, None)
    assert (raw.tag, raw.scope, raw.scoping) == ("bytes", Scope.SEARCH, Scoping.NONE)
    assert raw.handler is thing_bytes  # nothing to parse: the handler itself


def test_declared_models_are_parsed_before_the_handler_runs() -> None:
    handler = table.routes[0].handler
    out = handler(_call({"name": "new"}, query="cursor=c9"))
    assert out == Renamed(thing_id="t1", name="new", cursor="c9")
    with pytest.raises(UnsupportedMediaType):
        handler(_call({"name": "new"}, content_type="text/plain"))
    with pytest.raises(BadRequest, match="name"):
        handler(_call({"name": 3}))
    with pytest.raises(BadRequest, match="nope"):  # unknown query parameters are refused
        handler(_call({"name": "new"}, query="nope=1"))


def test_a_route_needs_a_summary_and_one_declaration_of_each_model() -> None:
    other = RouteTable(tag="x")

    def undocumented(call: Call) -> Renamed:
        return Renamed(thing_id="", name="")

    with pytest.raises(TypeError, match="docstring"):
        other.route("GET", "/a")(undocumented)

    def twice(call: Call, body: Rename) -> Renamed:
        """Twice"""
        return Renamed(thing_id="", name=body.name)

    with pytest.raises(TypeError, match="declared twice"):
        other.route("POST", "/b", body={"application/json": Rename})(twice)
    assert other.routes == ()


def test_every_api_route_is_named_after_its_handler_and_unique() -> None:
    names = [route.name for route in ROUTES]
    assert len(names) == len(set(names))
    for route in ROUTES:
        assert isinstance(route, Route)
        assert route.name.removesuffix("_in_collection") == route.handler.__name__
        assert route.summary and "\n" not in route.summary
