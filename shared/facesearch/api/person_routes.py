"""The person routes: persons (listed, read, created, named, forgotten), their images,
the corrections users make (label, merge, split, reject) and their undo.

Reads need the ``search`` scope, corrections ``manage``, forgetting ``erase``. Each
route is a data route: :mod:`.routes` also mounts it under ``/v1/collections/<id>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from facesearch.api import person_schemas as ps
from facesearch.api import schemas as s
from facesearch.api.route import PageQuery, RouteTable
from facesearch.auth.keys import Scope

if TYPE_CHECKING:
    from facesearch.api.app import Call


class LogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before: str | None = Field(
        default=None, max_length=128, description="next_cursor of a page: older entries"
    )
    limit: int = Field(default=100, ge=1, le=1000)


_JSON_ERRORS = (400, 404, 409, 415)

persons = RouteTable(tag="persons")


@persons.route("PUT", "/v1/faces/<face_id>/person", errors=_JSON_ERRORS, scope=Scope.MANAGE)
def set_face_person(call: Call, body: ps.FacePersonPut) -> s.FaceOut:
    """Put a face in a person (user-assigned: the machine never moves it), or with null
    say it is not its person (remembered)"""
    return call.query.persons.set_face_person(call.args["face_id"], body.person_id)


@persons.route("POST", "/v1/persons", status=201, errors=(400, 409, 415), scope=Scope.MANAGE)
def create_person(call: Call, body: ps.PersonCreate) -> ps.PersonOut:
    """Create a person (empty; faces are then put in it)"""
    return call.query.persons.create_person(body.name, body.metadata)


@persons.route("GET", "/v1/persons", errors=(400,))
def list_persons(call: Call, query: PageQuery) -> ps.PersonPage:
    """Persons (found by clustering or made by users) with counts and cover, a page at a time"""
    return call.query.persons.list_persons(cursor=query.cursor, limit=query.limit)


@persons.route("GET", "/v1/persons/<person_id>", errors=(404,))
def get_person(call: Call) -> ps.PersonOut:
    """One person (an id merged into another answers with that person)"""
    return call.query.persons.get_person(call.args["person_id"])


@persons.route("PATCH", "/v1/persons/<person_id>", errors=_JSON_ERRORS, scope=Scope.MANAGE)
def update_person(call: Call, body: ps.PersonPatch) -> ps.PersonOut:
    """Rename a person (undoable) or replace their metadata"""
    return call.query.persons.update_person(
        call.args["person_id"], name=body.name, metadata=body.metadata
    )


@persons.route("DELETE", "/v1/persons/<person_id>", tag="forget", errors=(404,), scope=Scope.ERASE)
def forget_person(call: Call) -> s.Forgotten:
    """Forget a person and all their faces: records, crops, index entries, names"""
    return call.query.forgetter.forget_person(call.args["person_id"])


@persons.route("GET", "/v1/persons/<person_id>/images", errors=(400, 404))
def person_images(call: Call, query: PageQuery) -> ps.PersonImagePage:
    """Every image of a person with their faces in it, a page at a time"""
    return call.query.persons.person_images(
        call.args["person_id"], cursor=query.cursor, limit=query.limit
    )


@persons.route("POST", "/v1/persons/<person_id>/merge", errors=_JSON_ERRORS, scope=Scope.MANAGE)
def merge_persons(call: Call, body: ps.MergeRequest) -> ps.CorrectionOut:
    """Merge persons into this one (undoable)"""
    return call.query.persons.merge(call.args["person_id"], body.persons)


@persons.route("POST", "/v1/persons/<person_id>/split", errors=_JSON_ERRORS, scope=Scope.MANAGE)
def split_person(call: Call, body: ps.SplitRequest) -> ps.CorrectionOut:
    """Move chosen faces of this person to a new person or another one (undoable)"""
    return call.query.persons.split(
        call.args["person_id"], body.face_ids, to_person=body.to_person, name=body.name
    )


@persons.route("POST", "/v1/persons/<person_id>/reject", errors=_JSON_ERRORS, scope=Scope.MANAGE)
def reject_face(call: Call, body: ps.RejectRequest) -> ps.CorrectionOut:
    """This face is not this person: it leaves and never comes back (undoable)"""
    return call.query.persons.reject(call.args["person_id"], body.face_id)


@persons.route("GET", "/v1/corrections", errors=(400,))
def list_corrections(call: Call, query: LogQuery) -> ps.CorrectionPage:
    """The correction log, newest first (users' corrections and the machine's merges and
    splits)"""
    return call.query.persons.corrections(before=query.before, limit=query.limit)


@persons.route(
    "POST", "/v1/corrections/<correction_id>/undo", errors=(404, 409), scope=Scope.MANAGE
)
def undo_correction(call: Call) -> ps.CorrectionOut:
    """Undo a recent correction (within the undo window; never an undo)"""
    return call.query.persons.undo(call.args["correction_id"])
