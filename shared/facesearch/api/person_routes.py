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
from facesearch.api.inputs import json_model
from facesearch.api.route import PageQuery, Route, query_args
from facesearch.auth.keys import Scope

if TYPE_CHECKING:
    from facesearch.api.app import Call


class LogQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before: str | None = Field(
        default=None, max_length=128, description="next_cursor of a page: older entries"
    )
    limit: int = Field(default=100, ge=1, le=1000)


def list_persons(call: Call) -> ps.PersonPage:
    q: PageQuery = query_args(call, PageQuery)
    return call.query.persons.list_persons(cursor=q.cursor, limit=q.limit)


def create_person(call: Call) -> ps.PersonOut:
    body = json_model(call.request, call.body, ps.PersonCreate)
    return call.query.persons.create_person(body.name, body.metadata)


def get_person(call: Call) -> ps.PersonOut:
    return call.query.persons.get_person(call.args["person_id"])


def update_person(call: Call) -> ps.PersonOut:
    body = json_model(call.request, call.body, ps.PersonPatch)
    return call.query.persons.update_person(
        call.args["person_id"], name=body.name, metadata=body.metadata
    )


def forget_person(call: Call) -> s.Forgotten:
    return call.query.forgetter.forget_person(call.args["person_id"])


def person_images(call: Call) -> ps.PersonImagePage:
    q: PageQuery = query_args(call, PageQuery)
    return call.query.persons.person_images(call.args["person_id"], cursor=q.cursor, limit=q.limit)


def set_face_person(call: Call) -> s.FaceOut:
    body = json_model(call.request, call.body, ps.FacePersonPut)
    return call.query.persons.set_face_person(call.args["face_id"], body.person_id)


def merge_persons(call: Call) -> ps.CorrectionOut:
    body = json_model(call.request, call.body, ps.MergeRequest)
    return call.query.persons.merge(call.args["person_id"], body.persons)


def split_person(call: Call) -> ps.CorrectionOut:
    body = json_model(call.request, call.body, ps.SplitRequest)
    return call.query.persons.split(
        call.args["person_id"], body.face_ids, to_person=body.to_person, name=body.name
    )


def reject_face(call: Call) -> ps.CorrectionOut:
    body = json_model(call.request, call.body, ps.RejectRequest)
    return call.query.persons.reject(call.args["person_id"], body.face_id)


def list_corrections(call: Call) -> ps.CorrectionPage:
    q: LogQuery = query_args(call, LogQuery)
    return call.query.persons.corrections(before=q.before, limit=q.limit)


def undo_correction(call: Call) -> ps.CorrectionOut:
    return call.query.persons.undo(call.args["correction_id"])


_JSON_ERRORS = (400, 404, 409, 415)

PERSON_ROUTES: tuple[Route, ...] = (
    Route(
        "set_face_person",
        "PUT",
        "/v1/faces/<face_id>/person",
        set_face_person,
        "Put a face in a person (user-assigned: the machine never moves it), or with null"
        " say it is not its person (remembered)",
        s.FaceOut,
        body={"application/json": ps.FacePersonPut},
        tag="persons",
        errors=_JSON_ERRORS,
        scope=Scope.MANAGE,
    ),
    Route(
        "create_person",
        "POST",
        "/v1/persons",
        create_person,
        "Create a person (empty; faces are then put in it)",
        ps.PersonOut,
        status=201,
        body={"application/json": ps.PersonCreate},
        tag="persons",
        errors=(400, 409, 415),
        scope=Scope.MANAGE,
    ),
    Route(
        "list_persons",
        "GET",
        "/v1/persons",
        list_persons,
        "Persons (found by clustering or made by users) with counts and cover, a page at a time",
        ps.PersonPage,
        query=PageQuery,
        tag="persons",
        errors=(400,),
    ),
    Route(
        "get_person",
        "GET",
        "/v1/persons/<person_id>",
        get_person,
        "One person (an id merged into another answers with that person)",
        ps.PersonOut,
        tag="persons",
        errors=(404,),
    ),
    Route(
        "update_person",
        "PATCH",
        "/v1/persons/<person_id>",
        update_person,
        "Rename a person (undoable) or replace their metadata",
        ps.PersonOut,
        body={"application/json": ps.PersonPatch},
        tag="persons",
        errors=_JSON_ERRORS,
        scope=Scope.MANAGE,
    ),
    Route(
        "forget_person",
        "DELETE",
        "/v1/persons/<person_id>",
        forget_person,
        "Forget a person and all their faces: records, crops, index entries, names",
        s.Forgotten,
        tag="forget",
        errors=(404,),
        scope=Scope.ERASE,
    ),
    Route(
        "person_images",
        "GET",
        "/v1/persons/<person_id>/images",
        person_images,
        "Every image of a person with their faces in it, a page at a time",
        ps.PersonImagePage,
        query=PageQuery,
        tag="persons",
        errors=(400, 404),
    ),
    Route(
        "merge_persons",
        "POST",
        "/v1/persons/<person_id>/merge",
        merge_persons,
        "Merge persons into this one (undoable)",
        ps.CorrectionOut,
        body={"application/json": ps.MergeRequest},
        tag="persons",
        errors=_JSON_ERRORS,
        scope=Scope.MANAGE,
    ),
    Route(
        "split_person",
        "POST",
        "/v1/persons/<person_id>/split",
        split_person,
        "Move chosen faces of this person to a new person or another one (undoable)",
        ps.CorrectionOut,
        body={"application/json": ps.SplitRequest},
        tag="persons",
        errors=_JSON_ERRORS,
        scope=Scope.MANAGE,
    ),
    Route(
        "reject_face",
        "POST",
        "/v1/persons/<person_id>/reject",
        reject_face,
        "This face is not this person: it leaves and never comes back (undoable)",
        ps.CorrectionOut,
        body={"application/json": ps.RejectRequest},
        tag="persons",
        errors=_JSON_ERRORS,
        scope=Scope.MANAGE,
    ),
    Route(
        "list_corrections",
        "GET",
        "/v1/corrections",
        list_corrections,
        "The correction log, newest first (users' corrections and the machine's merges and splits)",
        ps.CorrectionPage,
        query=LogQuery,
        tag="persons",
        errors=(400,),
    ),
    Route(
        "undo_correction",
        "POST",
        "/v1/corrections/<correction_id>/undo",
        undo_correction,
        "Undo a recent correction (within the undo window; never an undo)",
        ps.CorrectionOut,
        tag="persons",
        errors=(404, 409),
        scope=Scope.MANAGE,
    ),
)
