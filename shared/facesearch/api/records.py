"""Faces, images and persons as stored: read, page through, label, name.

Thin on purpose: the metadata store holds the rules (ids, paging, keeping a
human's labels); this layer only maps records to what a caller may see.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from facesearch.api.crops import CropUrls
from facesearch.api.schemas import FaceOut, FacePage, ImageOut, PersonOut, PersonPage
from facesearch.api.views import faces_out
from facesearch.errors import NotFound
from facesearch.storage.metadata import FaceRecord, MetadataStore
from facesearch.storage.videos import TrackRecord


def all_faces(
    store: MetadataStore, *, image_id: str | None = None, person_id: str | None = None
) -> Iterator[FaceRecord]:
    """Every face of an image or a person, following the pages."""
    cursor: str | None = None
    while True:
        page = store.list_faces(image_id=image_id, person_id=person_id, cursor=cursor, limit=1000)
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def all_tracks(store: MetadataStore, video_id: str) -> Iterator[TrackRecord]:
    """Every track of a video, following the pages."""
    cursor: str | None = None
    while True:
        page = store.list_tracks(video_id, cursor=cursor, limit=1000)
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


class RecordService:
    def __init__(self, store: MetadataStore, crops: CropUrls) -> None:
        self.store = store
        self.crops = crops

    # --- faces and images ----------------------------------------------------------------

    def get_face(self, face_id: str) -> FaceOut:
        record = self.store.get_face(face_id)
        if record is None:
            raise NotFound(f"face {face_id} not found")
        return faces_out(self.store, self.crops, [record])[0]

    def list_faces(
        self, *, person_id: str | None, image_id: str | None, cursor: str | None, limit: int
    ) -> FacePage:
        page = self.store.list_faces(
            person_id=person_id, image_id=image_id, cursor=cursor, limit=limit
        )
        return FacePage(
            items=faces_out(self.store, self.crops, page.items), next_cursor=page.next_cursor
        )

    def set_face_person(self, face_id: str, person_id: str | None) -> FaceOut:
        record = self.store.set_face_person(face_id, person_id)
        return faces_out(self.store, self.crops, [record])[0]

    def get_image(self, image_id: str) -> ImageOut:
        image = self.store.get_image(image_id)
        if image is None:
            raise NotFound(f"image {image_id} not found")
        faces = list(all_faces(self.store, image_id=image_id))
        return ImageOut.from_record(image, faces_out(self.store, self.crops, faces))

    # --- persons -------------------------------------------------------------------------

    def create_person(self, name: str, metadata: dict[str, Any]) -> PersonOut:
        return PersonOut.from_record(self.store.create_person(name, metadata))

    def get_person(self, person_id: str) -> PersonOut:
        person = self.store.get_person(person_id)
        if person is None:
            raise NotFound(f"person {person_id} not found")
        return PersonOut.from_record(person)

    def update_person(
        self, person_id: str, *, name: str | None, metadata: dict[str, Any] | None
    ) -> PersonOut:
        return PersonOut.from_record(
            self.store.update_person(person_id, name=name, metadata=metadata)
        )

    def list_persons(self, *, cursor: str | None, limit: int) -> PersonPage:
        page = self.store.list_persons(cursor=cursor, limit=limit)
        return PersonPage(
            items=[PersonOut.from_record(p) for p in page.items], next_cursor=page.next_cursor
        )
