"""The collection routes: list, create, read, change and erase collections.

Listing and creating check the key's scope in the handler (:class:`Scoping.HANDLER`):
a list is filtered to the collections the key may see, and a create needs ``manage``
on the id being created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facesearch.api import collection_schemas as cs
from facesearch.api.inputs import json_model
from facesearch.api.route import PageQuery, Route, Scoping, query_args
from facesearch.auth.keys import Scope

if TYPE_CHECKING:
    from facesearch.api.app import Call


def list_collections(call: Call) -> cs.CollectionPage:
    q: PageQuery = query_args(call, PageQuery)
    call.authorize(Scope.SEARCH, None, any_collection=True)
    return call.admin.list(cursor=q.cursor, limit=q.limit, grant=call.grant)


def create_collection(call: Call) -> cs.CollectionOut:
    body = json_model(call.request, call.body, cs.CollectionCreate)
    call.authorize(Scope.MANAGE, body.collection_id)
    return call.admin.create(body)


def get_collection(call: Call) -> cs.CollectionOut:
    return call.admin.get(call.collection_id)


def update_collection(call: Call) -> cs.CollectionOut:
    body = json_model(call.request, call.body, cs.CollectionPatch)
    return call.admin.update(call.collection_id, body)


def erase_collection(call: Call) -> cs.CollectionOut:
    return call.admin.erase(call.collection_id)


COLLECTION_ROUTES: tuple[Route, ...] = (
    Route(
        "list_collections",
        "GET",
        "/v1/collections",
        list_collections,
        "Collections this key may see, a page at a time",
        cs.CollectionPage,
        query=PageQuery,
        tag="collections",
        errors=(400, 403),
        scoping=Scoping.HANDLER,
    ),
    Route(
        "create_collection",
        "POST",
        "/v1/collections",
        create_collection,
        "Create a collection with its own settings (embedder, threshold, quality, retention,"
        " quotas)",
        cs.CollectionOut,
        status=201,
        body={"application/json": cs.CollectionCreate},
        tag="collections",
        errors=(400, 403, 409, 415),
        scope=Scope.MANAGE,
        scoping=Scoping.HANDLER,
    ),
    Route(
        "get_collection",
        "GET",
        "/v1/collections/<collection_id>",
        get_collection,
        "A collection: settings, status, counts and index, or its erase report",
        cs.CollectionOut,
        tag="collections",
        errors=(403, 404),
        scoping=Scoping.PATH,
        active_only=False,
    ),
    Route(
        "update_collection",
        "PATCH",
        "/v1/collections/<collection_id>",
        update_collection,
        "Rename a collection or replace its settings (the embedder is fixed)",
        cs.CollectionOut,
        body={"application/json": cs.CollectionPatch},
        tag="collections",
        errors=(400, 403, 404, 409, 415),
        scope=Scope.MANAGE,
        scoping=Scoping.PATH,
    ),
    Route(
        "erase_collection",
        "DELETE",
        "/v1/collections/<collection_id>",
        erase_collection,
        "Erase a collection: every image, face, person, crop, index object and ledger entry;"
        " runs in the background, the collection then shows its erase report",
        cs.CollectionOut,
        status=202,
        tag="collections",
        errors=(403, 404, 409),
        scope=Scope.ERASE,
        scoping=Scoping.PATH,
        active_only=False,
    ),
)
