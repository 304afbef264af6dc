"""OpenAPI 3.1 document generated from the route table and the pydantic schemas.

Nothing here is hand-kept: paths, parameters, bodies and responses come from
:data:`facesearch.api.routes.ROUTES`, component schemas from the models'
JSON Schema (OpenAPI 3.1 *is* JSON Schema 2020-12, so pydantic's output is used
as is). ``tests/unit/api/test_routes.py`` checks that it validates and that
schemathesis finds no 5xx when it drives the server with it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from facesearch import __version__
from facesearch.api import schemas as s
from facesearch.api.problems import PROBLEM_MEDIA_TYPE
from facesearch.api.route import Route
from facesearch.api.routes import ROUTES
from facesearch.auth.signing import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
)

REF = "#/components/schemas/{model}"
_PATH_ARG = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")

SIGNING_DOC = f"""HMAC-SHA256 request signature. Send four headers: `{HEADER_KEY_ID}` (your key id),
`{HEADER_TIMESTAMP}` (unix seconds; more than 300 s of skew is refused), `{HEADER_NONCE}`
(16-128 characters of `[A-Za-z0-9_-]`, never reused) and `{HEADER_SIGNATURE}`: lowercase
hex HMAC-SHA256 under your secret of
`METHOD\\nPATH\\nSORTED_QUERY\\nTIMESTAMP\\nNONCE\\nhex(SHA256(BODY))`, where PATH is the
decoded path percent-encoded keeping `/-_.~`, SORTED_QUERY the query pairs
percent-encoded the same way (keeping only `-_.~`), sorted by name then value and joined
as `name=value&...`. 401: credentials missing or malformed; 403: rejected (the reason is
logged, never returned). `facesearch sign` and `facesearch.client.Client` do this."""

_EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {
    "search-multipart": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "contentMediaType": "application/octet-stream"},
            **{
                name: {"type": "string"}
                for name in ("k", "threshold", "min_liveness", "min_quality", "face_index", "bbox")
            },
        },
    },
    "match-multipart": {
        "type": "object",
        "required": ["image_a", "image_b"],
        "properties": {
            "image_a": {"type": "string", "contentMediaType": "application/octet-stream"},
            "image_b": {"type": "string", "contentMediaType": "application/octet-stream"},
            "face_a": {"type": "integer", "minimum": 0},
            "face_b": {"type": "integer", "minimum": 0},
            "largest": {"type": "boolean"},
            "threshold": {"type": "number", "minimum": -1, "maximum": 1},
        },
    },
    "binary": {"type": "string", "contentMediaType": "application/octet-stream"},
}


def _models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Problem": s.Problem}
    for route in ROUTES:
        for model in (route.response, *route.body.values()):
            if isinstance(model, type) and issubclass(model, BaseModel):
                found[model.__name__] = model
    return list(found.values())


def _schema_of(model: type[BaseModel] | str) -> dict[str, Any]:
    if isinstance(model, str):
        return _EXTRA_SCHEMAS[model]
    return {"$ref": REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, spec in schema.get("properties", {}).items():
        prop = dict(spec)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if name == "bbox":  # "x1,y1,x2,y2" in a query string
            param["style"] = "form"
            param["explode"] = False
        if description:
            param["description"] = description
        params.append(param)
    return params


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_ARG.findall(route.rule)
    ]
    if route.query is not None:
        params += _query_parameters(route.query)
    if params:
        op["parameters"] = params
    if route.body:
        op["requestBody"] = {
            "required": True,
            "content": {media: {"schema": _schema_of(m)} for media, m in route.body.items()},
        }
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": HTTPStatus(route.status).phrase}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": _schema_of(route.response)}}
    elif route.response_media != "application/json":
        ok["content"] = {route.response_media: {"schema": _EXTRA_SCHEMAS["binary"]}}
    else:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses[str(route.status)] = ok
    statuses = set(route.errors) | ({401, 403, 503} if route.auth else set())
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _schema_of(s.Problem)}},
        }
    if route.name == "healthz":  # unhealthy still answers with the Health body
        responses["503"] = {
            "description": "Service Unavailable",
            "content": {"application/json": {"schema": _schema_of(s.Health)}},
        }
    op["responses"] = responses
    op["security"] = [{"hmac": []}] if route.auth else []
    return op


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    _, defs = models_json_schema([(m, "serialization") for m in _models()], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        path = _PATH_ARG.sub(r"{\1}", route.rule)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "facesearch query API",
            "version": __version__,
            "description": "Signed face search, match, records, videos, persons and forget. "
            "Errors "
            "are RFC 9457 problem+json with a stable `type` "
            "(`urn:facesearch:problem:<code>`).",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "hmac": {
                    "type": "apiKey",
                    "in": "header",
                    "name": HEADER_SIGNATURE,
                    "description": SIGNING_DOC,
                }
            },
        },
        "security": [{"hmac": []}],
    }
