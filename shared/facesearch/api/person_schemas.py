"""Request and response bodies of the person routes (:mod:`.person_routes`).

A person is what the clusterer found or a user made (one notion): counts, a cover
(its best-quality face), first and last seen, who created it. Corrections answer with
the entry of the correction log they wrote, whose id ``undo`` takes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from facesearch import jsonsafe
from facesearch.api.schemas import MAX_ID_CHARS, STRICT, FaceOut, from_attributes

if TYPE_CHECKING:
    from facesearch.people.representative import PersonView
    from facesearch.people.types import Correction

#: person metadata: small, shallow JSON (Firestore refuses maps nested deeper than 20)
MAX_METADATA_DEPTH = 8
MAX_METADATA_BYTES = 16 * 1024
#: persons one merge may name (Corrections.MAX_MERGE_SOURCES)
MAX_MERGE = 50
#: faces one split / move may name (the people section's max_faces_per_correction caps it)
MAX_FACES = 400


def small_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A person's metadata as given, if small and shallow enough to store anywhere."""
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":")).encode()
    if len(text) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is over {MAX_METADATA_BYTES} bytes as JSON")
    if jsonsafe.depth(text) > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
    return value


class PersonCreate(BaseModel):
    model_config = STRICT
    name: str = Field(min_length=1, max_length=200)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form JSON, at most 16 KiB and 8 levels deep."
    )
    _metadata = field_validator("metadata")(small_metadata)


class PersonPatch(BaseModel):
    model_config = STRICT
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A new name (a logged correction: undo restores the old one).",
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Replaces the metadata (at most 16 KiB, 8 levels deep)."
    )
    _metadata = field_validator("metadata")(small_metadata)


class FacePersonPut(BaseModel):
    model_config = STRICT
    person_id: str | None = Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="Put the face in this person (it becomes user-assigned: the machine never"
        " moves it); null: the face is not its current person (a remembered rejection).",
    )


class MergeRequest(BaseModel):
    model_config = STRICT
    persons: list[str] = Field(
        min_length=1,
        max_length=MAX_MERGE,
        description="Persons merged into this one (it keeps its id; undo separates them).",
    )


class SplitRequest(BaseModel):
    model_config = STRICT
    face_ids: list[str] = Field(min_length=1, max_length=MAX_FACES)
    to_person: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="Move the faces to this person; without it they become a new person.",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=200, description="The new person's name."
    )


class RejectRequest(BaseModel):
    model_config = STRICT
    face_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)


class PersonOut(BaseModel):
    person_id: str
    name: str | None
    metadata: dict[str, Any]
    faces: int = Field(description="Faces of the person, merged-in persons' included.")
    user_faces: int = Field(description="Of those, faces a user assigned (never moved).")
    cover_face_id: str | None = Field(description="The best-quality face.")
    cover_url: str | None = Field(default=None, description="Time-limited URL of its crop.")
    first_seen: float | None
    last_seen: float | None
    created_by: str = Field(description="'machine' (found by clustering) or 'user'.")
    merged: list[str] = Field(description="Ids of persons merged into this one.")
    created_at: float
    updated_at: float

    @classmethod
    def from_view(cls, view: PersonView, *, cover_url: str | None) -> PersonOut:
        return cls(
            person_id=view.person_id,
            name=view.name,
            metadata=dict(view.root.metadata),
            faces=view.faces,
            user_faces=view.user_faces,
            cover_face_id=view.cover,
            cover_url=cover_url,
            first_seen=view.first_seen,
            last_seen=view.last_seen,
            created_by=str(view.root.created_by),
            merged=sorted(view.ids - {view.person_id}),
            created_at=view.root.created_at,
            updated_at=view.root.updated_at,
        )


class PersonPage(BaseModel):
    items: list[PersonOut]
    next_cursor: str | None


class PersonImage(BaseModel):
    image_id: str
    faces: list[FaceOut] = Field(description="The person's faces in this image.")


class PersonImagePage(BaseModel):
    person_id: str
    items: list[PersonImage]
    next_cursor: str | None


class FaceChangeOut(BaseModel):
    face_id: str
    before_person: str | None
    after_person: str | None


class CorrectionOut(BaseModel):
    """An entry of the correction log."""

    correction_id: str
    kind: str = Field(description="name, merge, move, reject, split (machine), undo")
    actor: str = Field(description="'user', or 'machine' (its merges and splits)")
    at: float
    person_id: str | None
    faces: list[FaceChangeOut]
    merged: list[str]
    created_person: str | None
    old_name: str | None
    new_name: str | None
    undoes: str | None
    undone_by: str | None
    note: str

    @classmethod
    def from_entry(cls, entry: Correction) -> CorrectionOut:
        return from_attributes(
            cls,
            entry,
            kind=str(entry.kind),
            actor=str(entry.actor),
            faces=[from_attributes(FaceChangeOut, change) for change in entry.faces],
            merged=list(entry.merged),
        )


class CorrectionPage(BaseModel):
    items: list[CorrectionOut]
    next_cursor: str | None = Field(description="Pass as ``before`` for older entries.")
