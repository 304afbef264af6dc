"""Records to response models: one place that decides what a caller sees of a record.

Crop *locations* (bucket paths, local files) never leave the service: only the
time-limited URL :class:`~facesearch.api.crops.CropUrls` makes of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from facesearch.api.crops import CropUrls
from facesearch.api.schemas import FaceOut
from facesearch.storage.metadata import FaceRecord, MetadataStore


def person_names(store: MetadataStore, person_ids: Iterable[str]) -> dict[str, str]:
    """person_id -> name for the persons that exist."""
    names = {}
    for person_id in set(person_ids):
        person = store.get_person(person_id)
        if person is not None:
            names[person_id] = person.name
    return names


def faces_out(
    store: MetadataStore, crops: CropUrls, records: Sequence[FaceRecord]
) -> list[FaceOut]:
    names = person_names(store, (r.person_id for r in records if r.person_id))
    return [
        FaceOut.from_record(
            r,
            crop_url=crops.url(r.face_id, r.crop_url, r.collection_id),
            person_name=names.get(r.person_id or ""),
        )
        for r in records
    ]
