"""The collection routes: list, create, read, change and erase collections.

Listing and creating check the key's scope in the handler (:class:`Scoping.HANDLER`):
a list is filtered to the collections the key may see, and a create needs ``manage``
on the id being created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facesearch.api import collection_schemas as cs
from facesearch.api.route import PageQuery, RouteTable, Scoping
from facesearch.auth.keys import Scope

if TYPE_CHECKING:
    from facesearch.api.app import Call

collections = RouteTable(tag="collections")


@collections.route("GET", "/v1/collections", errors=(400, 403), scoping=Scoping.HANDLER)
def list_collections(call: Call, query: PageQuery) -> cs.CollectionPage:
    """Collections this key may see, a page at a time"""
    call.authorize(Scope.SEARCH, None, any_collection=True)
    return call.admin.list(cursor=query.cursor, limit=query.limit, grant=call.grant)


@collections.route(
    "POST",
    "/v1/collections",
    status=201,
    errors=(400, 403, 409, 415),
    scope=Scope.MANAGE,
    scoping=Scoping.HANDLER,
)
def create_collection(call: Call, body: cs.CollectionCreate) -> cs.CollectionOut:
    """Create a collection with its own settings (embedder, threshold, quality, retention,
    quotas)"""
    call.authorize(Scope.MANAGE, body.collection_id)
    return call.admin.create(body)


@collections.route(
    "GET",
    "/v1/collections/<collection_id>",
    errors=(403, 404),
    scoping=Scoping.PATH,
    active_only=False,
)
def get_collection(call: Call) -> cs.CollectionOut:
    """A collection: settings, status, counts and index, or its erase report"""
    return call.admin.get(call.collection_id)


@collections.route(
    "PATCH",
    "/v1/collections/<collection_id>",
    errors=(400, 403, 404, 409, 415),
    scope=Scope.MANAGE,
    scoping=Scoping.PATH,
)
def update_collection(call: Call, body: cs.CollectionPatch) -> cs.CollectionOut:
    """Rename a collection or replace its settings (the embedder is fixed)"""
    return call.admin.update(call.collection_id, body)


@collections.route(
    "DELETE",
    "/v1/collections/<collection_id>",
    status=202,
    errors=(403, 404, 409),
    scope=Scope.ERASE,
    scoping=Scoping.PATH,
    active_only=False,
)
def erase_collection(call: Call) -> cs.CollectionOut:
    """Erase a collection: every image, face, person, crop, index object and ledger entry;
    runs in the background, the collection then shows its erase report"""
    return call.admin.erase(call.collection_id)
