"""Records to response models: one place that decides what a caller sees of a record.

Crop *locations* (bucket paths, local files) never leave the service: only the
time-limited URL :class:`~facesearch.api.crops.CropUrls` makes of them. Who a face
belongs to comes from the collection's people store (one notion of person: found by
the clusterer or assigned by a user), resolved to the person users see.
"""

from __future__ import annotations

from collections.abc import Sequence

from facesearch.api.crops import CropUrls
from facesearch.api.schemas import FaceOut
from facesearch.people.service import PeopleService
from facesearch.storage.metadata import FaceRecord


def faces_out(
    people: PeopleService, crops: CropUrls, records: Sequence[FaceRecord]
) -> list[FaceOut]:
    assigned = people.assignments(r.face_id for r in records)
    out = []
    for r in records:
        person = assigned.get(r.face_id)
        out.append(
            FaceOut.from_record(
                r,
                crop_url=crops.url(r.face_id, r.crop_url, r.collection_id),
                person=None
                if person is None
                else (person.person_id, person.name, str(person.source)),
            )
        )
    return out
