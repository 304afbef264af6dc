"""Records <-> stored documents, one mapping for both metadata adapters.

pydantic's ``TypeAdapter`` over the record dataclasses does the field-by-field
work (and the coercions: lists back to tuples, strings back to enums, defaults
for fields older documents lack), so a new record field is added once, on the
dataclass. The only storage quirk is Firestore's: no nested arrays, so
landmarks travel as a flat ``x, y, x, y...`` list (the same in SQLite's JSON, so
one document shape serves both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import TypeAdapter

from facesearch.errors import CollectionClosed
from facesearch.storage.metadata import (
    CollectionRecord,
    CollectionStatus,
    FaceRecord,
    ImageRecord,
    PersonRecord,
    now,
)
from facesearch.storage.videos import TrackRecord, VideoRecord

_COLLECTION = TypeAdapter(CollectionRecord)
_IMAGE = TypeAdapter(ImageRecord)
_FACE = TypeAdapter(FaceRecord)
_PERSON = TypeAdapter(PersonRecord)
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


def person_to_dict(record: PersonRecord) -> dict[str, Any]:
    data: dict[str, Any] = _PERSON.dump_python(record)
    return data


def person_from_dict(data: Mapping[str, Any]) -> PersonRecord:
    return _PERSON.validate_python(_known(data, PersonRecord))


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
