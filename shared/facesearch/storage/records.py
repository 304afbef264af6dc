"""Records <-> stored documents, one mapping for both adapters of each store.

pydantic's ``TypeAdapter`` over the record dataclasses does the field-by-field
work (and the coercions: lists back to tuples, strings back to enums, defaults
for fields older documents lack), so a new record field is added once, on the
dataclass. The only storage quirk is Firestore's: no nested arrays, so
landmarks travel as a flat ``x, y, x, y...`` list (the same in SQLite's JSON, so
one document shape serves both).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

from facesearch.errors import CollectionClosed
from facesearch.people.ports import Kind
from facesearch.people.types import (
    ClusterFace,
    Correction,
    Person,
    Tombstone,
    correction_from_dict,
    correction_to_dict,
    person_from_dict,
    person_to_dict,
    tombstone_from_dict,
    tombstone_to_dict,
)
from facesearch.people.types import face_from_dict as cluster_face_from_dict
from facesearch.people.types import face_to_dict as cluster_face_to_dict
from facesearch.storage.catalog import CollectionRecord, CollectionStatus
from facesearch.storage.metadata import FaceRecord, ImageRecord, now
from facesearch.storage.videos import TrackRecord, VideoRecord

#: a record of the people store
PeopleRecord = ClusterFace | Person | Tombstone | Correction

_COLLECTION = TypeAdapter(CollectionRecord)
_IMAGE = TypeAdapter(ImageRecord)
_FACE = TypeAdapter(FaceRecord)
_VIDEO = TypeAdapter(VideoRecord)
_TRACK = TypeAdapter(TrackRecord)


def collection_to_dict(record: CollectionRecord) -> dict[str, Any]:
    data: dict[str, Any] = _COLLECTION.dump_python(record)
    data["status"] = str(record.status)
    return data


def collection_from_dict(data: Mapping[str, Any]) -> CollectionRecord:
    return _COLLECTION.validate_python(_known(data, CollectionRecord))


def image_to_dict(record: ImageRecord) -> dict[str, Any]:
    data: dict[str, Any] = _IMAGE.dump_python(record)
    data["status"] = str(record.status)
    return data


def image_from_dict(data: Mapping[str, Any]) -> ImageRecord:
    return _IMAGE.validate_python(_known(data, ImageRecord))


def face_to_dict(record: FaceRecord) -> dict[str, Any]:
    """JSON-able fields plus ``embedding`` as bytes (each adapter stores it natively)."""
    data: dict[str, Any] = _FACE.dump_python(record)
    data["landmarks"] = [float(v) for point in record.landmarks for v in point]
    data["embedding_dims"] = record.dims
    return data


def face_from_dict(data: Mapping[str, Any]) -> FaceRecord:
    fields = _known(data, FaceRecord)
    flat = [float(v) for v in fields.get("landmarks") or []]
    fields["landmarks"] = [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2)]
    return _FACE.validate_python(fields)


def video_to_dict(record: VideoRecord) -> dict[str, Any]:
    data: dict[str, Any] = _VIDEO.dump_python(record)
    data["status"] = str(record.status)
    return data


def video_from_dict(data: Mapping[str, Any]) -> VideoRecord:
    return _VIDEO.validate_python(_known(data, VideoRecord))


def track_to_dict(record: TrackRecord) -> dict[str, Any]:
    """JSON-able fields plus ``mean_embedding`` as bytes; spans flat (``s, e, s, e...``)
    like landmarks (Firestore has no nested arrays), and ``first_ms`` for humans."""
    data: dict[str, Any] = _TRACK.dump_python(record)
    data["spans"] = [int(v) for span in record.spans for v in span]
    data["first_ms"] = record.first_ms
    return data


def track_from_dict(data: Mapping[str, Any]) -> TrackRecord:
    fields = _known(data, TrackRecord)
    flat = [int(v) for v in fields.get("spans") or []]
    fields["spans"] = [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2)]
    return _TRACK.validate_python(fields)


def _known(data: Mapping[str, Any], record_type: type) -> dict[str, Any]:
    """Only the record's fields (documents also carry e.g. ``embedding_dims``); None = default."""
    names = record_type.__dataclass_fields__  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in names and v is not None}


def updated_collection(
    current: CollectionRecord,
    name: str | None,
    settings: Mapping[str, Any] | None,
    status: CollectionStatus | None,
    erase_report: Mapping[str, Any] | None,
) -> CollectionRecord:
    """The record with the given fields changed; an erase is never undone."""
    if status is CollectionStatus.ACTIVE and current.status is not CollectionStatus.ACTIVE:
        raise CollectionClosed(f"collection {current.collection_id} is {current.status}")
    if status is CollectionStatus.ERASING and current.status is CollectionStatus.ERASED:
        status = CollectionStatus.ERASED
    return replace(
        current,
        name=current.name if name is None else name,
        settings=current.settings if settings is None else dict(settings),
        status=current.status if status is None else status,
        erase_report=current.erase_report if erase_report is None else dict(erase_report),
        updated_at=now(),
    )


# --- people records (facesearch.people.types), the same document shape in both adapters -------

#: the fields each kind's queries filter on, stored beside the JSON text
_PEOPLE_QUERY_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.FACE: ("image_id", "person_id"),
    Kind.PERSON: ("merged_into",),
    Kind.TOMBSTONE: (),
    Kind.CORRECTION: ("correction_id",),  # Firestore cannot scan document ids newest first
}
_PEOPLE_TO_DICT: dict[Kind, Callable[[Any], dict[str, Any]]] = {
    Kind.FACE: cluster_face_to_dict,
    Kind.PERSON: person_to_dict,
    Kind.TOMBSTONE: tombstone_to_dict,
    Kind.CORRECTION: correction_to_dict,
}
_PEOPLE_FROM_DICT: dict[Kind, Callable[[Mapping[str, Any]], Any]] = {
    Kind.FACE: cluster_face_from_dict,
    Kind.PERSON: person_from_dict,
    Kind.TOMBSTONE: tombstone_from_dict,
    Kind.CORRECTION: correction_from_dict,
}


def people_document(kind: Kind, record: PeopleRecord, version: int) -> dict[str, Any]:
    """A people record as both adapters store it: ``version``, the query fields, the
    embedding (faces) as bytes, and everything else as one JSON text in ``data`` —
    Firestore refuses the nested arrays some records have (exemplars, face changes)."""
    data = _PEOPLE_TO_DICT[kind](record)
    data.pop("version", None)
    document: dict[str, Any] = {"version": version}
    for name in _PEOPLE_QUERY_FIELDS[kind]:
        document[name] = data.get(name)
    if kind is Kind.FACE:
        document["embedding"] = data.pop("embedding")
    document["data"] = json.dumps(data, separators=(",", ":"))
    return document


def people_record(kind: Kind, document: Mapping[str, Any]) -> Any:
    """The record of a stored document. A person document from before clustering (a
    manual person: ``name``, ``metadata``, no ``data``) reads as an unversioned person."""
    if "data" not in document:
        legacy = {k: v for k, v in document.items() if k != "version"}
        return _PEOPLE_FROM_DICT[kind]({**legacy, "version": 0})
    data = json.loads(document["data"])
    data["version"] = int(document.get("version") or 0)
    if kind is Kind.FACE:
        data["embedding"] = bytes(document["embedding"])
    return _PEOPLE_FROM_DICT[kind](data)
