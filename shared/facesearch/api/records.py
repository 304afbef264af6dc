"""Faces and images as stored: read and page through (a person's faces too).

Thin on purpose: the metadata store holds the rules (ids, paging) and the people
store who each face is; this layer only maps records to what a caller may see.
"""

from __future__ import annotations

from facesearch.api.crops import CropUrls
from facesearch.api.schemas import FaceOut, FacePage, ImageOut
from facesearch.api.views import faces_out
from facesearch.errors import NotFound
from facesearch.people.service import PeopleService
from facesearch.storage.metadata import MetadataStore, all_faces


class RecordService:
    def __init__(self, store: MetadataStore, crops: CropUrls, people: PeopleService) -> None:
        self.store = store
        self.crops = crops
        self.people = people

    def get_face(self, face_id: str) -> FaceOut:
        record = self.store.get_face(face_id)
        if record is None:
            raise NotFound(f"face {face_id} not found")
        return faces_out(self.people, self.crops, [record])[0]

    def list_faces(
        self, *, person_id: str | None, image_id: str | None, cursor: str | None, limit: int
    ) -> FacePage:
        if person_id is not None:  # the person's faces (merged-in persons' too), by face id
            page = self.people.faces(person_id, cursor=cursor, limit=limit)
            found = self.store.get_faces([f.face_id for f in page.items])
            records = [found[f.face_id] for f in page.items if f.face_id in found]
            return FacePage(
                items=faces_out(self.people, self.crops, records), next_cursor=page.next_cursor
            )
        listed = self.store.list_faces(image_id=image_id, cursor=cursor, limit=limit)
        return FacePage(
            items=faces_out(self.people, self.crops, listed.items),
            next_cursor=listed.next_cursor,
        )

    def get_image(self, image_id: str) -> ImageOut:
        image = self.store.get_image(image_id)
        if image is None:
            raise NotFound(f"image {image_id} not found")
        faces = list(all_faces(self.store, image_id=image_id))
        return ImageOut.from_record(image, faces_out(self.people, self.crops, faces))
