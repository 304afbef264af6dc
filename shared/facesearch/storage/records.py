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
from typing import Any

from pydantic import TypeAdapter

from facesearch.storage.metadata import FaceRecord, ImageRecord, PersonRecord

_IMAGE = TypeAdapter(ImageRecord)
_FACE = TypeAdapter(FaceRecord)
_PERSON = TypeAdapter(PersonRecord)


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


def _known(data: Mapping[str, Any], record_type: type) -> dict[str, Any]:
    """Only the record's fields (documents also carry e.g. ``embedding_dims``); None = default."""
    names = record_type.__dataclass_fields__  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in names and v is not None}
