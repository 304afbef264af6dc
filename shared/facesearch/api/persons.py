"""Persons as the API shows them, and the corrections users make.

Thin: :class:`~facesearch.people.service.PeopleService` holds the rules (the density
rule, constraints, the correction log, undo); this layer maps persons, faces and log
entries to response models — with time-limited crop URLs for covers and faces — and
back from requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facesearch.api.crops import CropUrls
from facesearch.api.person_schemas import (
    CorrectionOut,
    CorrectionPage,
    PersonImage,
    PersonImagePage,
    PersonOut,
    PersonPage,
)
from facesearch.api.schemas import FaceOut
from facesearch.api.views import faces_out
from facesearch.errors import CorrectionRefused, NotFound
from facesearch.people.representative import PersonView
from facesearch.people.service import PeopleService
from facesearch.storage.metadata import MetadataStore


class PersonsService:
    def __init__(self, people: PeopleService, store: MetadataStore, crops: CropUrls) -> None:
        self.people = people
        self.store = store
        self.crops = crops

    def _out(self, views: Sequence[PersonView]) -> list[PersonOut]:
        covers = self.store.get_faces([v.cover for v in views if v.cover])
        out = []
        for view in views:
            cover = covers.get(view.cover or "")
            url = (
                None
                if cover is None
                else self.crops.url(cover.face_id, cover.crop_url, cover.collection_id)
            )
            out.append(PersonOut.from_view(view, cover_url=url))
        return out

    # --- reads ------------------------------------------------------------------------------

    def list_persons(self, *, cursor: str | None, limit: int) -> PersonPage:
        views, next_cursor = self.people.list_persons(cursor=cursor, limit=limit)
        return PersonPage(items=self._out(views), next_cursor=next_cursor)

    def get_person(self, person_id: str) -> PersonOut:
        return self._out([self.people.view(person_id)])[0]

    def person_images(self, person_id: str, *, cursor: str | None, limit: int) -> PersonImagePage:
        view = self.people.view(person_id)
        page = self.people.images(view.person_id, cursor=cursor, limit=limit)
        records = self.store.get_faces([f.face_id for _, faces in page.images for f in faces])
        shown = {
            face.face_id: face
            for face in faces_out(self.people, self.crops, list(records.values()))
        }
        items = [
            PersonImage(
                image_id=image_id, faces=[shown[f.face_id] for f in faces if f.face_id in shown]
            )
            for image_id, faces in page.images
        ]
        return PersonImagePage(
            person_id=view.person_id,
            items=[i for i in items if i.faces],  # images forgotten meanwhile drop out
            next_cursor=page.next_cursor,
        )

    def corrections(self, *, before: str | None, limit: int) -> CorrectionPage:
        entries = self.people.log(before=before, limit=limit)
        more = entries[-1].correction_id if len(entries) == limit else None
        return CorrectionPage(
            items=[CorrectionOut.from_entry(e) for e in entries], next_cursor=more
        )

    # --- changes ----------------------------------------------------------------------------

    def create_person(self, name: str, metadata: dict[str, Any]) -> PersonOut:
        return self._out([self.people.create(name, metadata)])[0]

    def update_person(
        self, person_id: str, *, name: str | None, metadata: dict[str, Any] | None
    ) -> PersonOut:
        return self._out([self.people.describe(person_id, name=name, metadata=metadata)])[0]

    def set_face_person(self, face_id: str, person_id: str | None) -> FaceOut:
        """Put a face in a person, or (None) say it is not its current person."""
        if self.store.get_face(face_id) is None:
            raise NotFound(f"face {face_id} not found")
        if person_id is None:
            current = self.people.assignments([face_id]).get(face_id)
            if current is not None:
                self.people.reject(face_id, current.person_id)
        else:
            self.people.assign([face_id], person_id)
        record = self.store.get_face(face_id)
        if record is None:
            raise NotFound(f"face {face_id} not found")
        return faces_out(self.people, self.crops, [record])[0]

    def merge(self, person_id: str, sources: list[str]) -> CorrectionOut:
        return CorrectionOut.from_entry(self.people.merge(person_id, sources))

    def split(
        self, person_id: str, face_ids: list[str], *, to_person: str | None, name: str | None
    ) -> CorrectionOut:
        """Move chosen faces of a person to another person or (default) a new one."""
        view = self.people.view(person_id)
        assigned = self.people.assignments(face_ids)
        strangers = [
            f for f in face_ids if f not in assigned or assigned[f].person_id != view.person_id
        ]
        if strangers:
            raise CorrectionRefused(f"faces {strangers[:5]} are not in person {view.person_id}")
        return CorrectionOut.from_entry(self.people.assign(face_ids, to_person, name=name))

    def reject(self, person_id: str, face_id: str) -> CorrectionOut:
        return CorrectionOut.from_entry(self.people.reject(face_id, person_id))

    def undo(self, correction_id: str) -> CorrectionOut:
        return CorrectionOut.from_entry(self.people.undo(correction_id))
