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
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from facesearch.errors import CollectionClosed, NotFound
from facesearch.people.ports import Kind, PeopleRecord
from facesearch.people.types import (
    correction_from_dict,
    correction_to_dict,
    person_from_dict,
    person_to_dict,
    tombstone_from_dict,
    tombstone_to_dict,
)
from facesearch.people.types import face_from_dict as cluster_face_from_dict
from facesearch.people.types import face_to_dict as cluster_face_to_dict
from facesearch.storage.catalog import CollectionChange, CollectionRecord, CollectionStatus
from facesearch.storage.metadata import DEFAULT_COLLECTION, FaceRecord, ImageRecord, now
from facesearch.storage.videos import TrackRecord, VideoRecord

R = TypeVar("R")


class _Codec(Generic[R]):
    """One record type's document mapping. A ``status`` enum is stored as its plain
    string (neither Firestore nor JSON knows enums); ``pairs`` names a field of number
    pairs stored flat (``x, y, x, y...``: Firestore has no nested arrays) and the number
    type; reading keeps only the record's fields (documents also carry e.g.
    ``embedding_dims``) and lets a None mean the field's default."""

    def __init__(self, record_type: type[R], pairs: tuple[str, type[float]] | None = None) -> None:
        self._adapter = TypeAdapter(record_type)
        self._names = record_type.__dataclass_fields__  # type: ignore[attr-defined]
        self._pairs = pairs

    def to_dict(self, record: R) -> dict[str, Any]:
        data: dict[str, Any] = self._adapter.dump_python(record)
        if "status" in data:
            data["status"] = str(data["status"])
        if self._pairs is not None:
            name, number = self._pairs
            data[name] = [number(v) for pair in getattr(record, name) for v in pair]
        return data

    def from_dict(self, data: Mapping[str, Any]) -> R:
        fields = {k: v for k, v in data.items() if k in self._names and v is not None}
        if self._pairs is not None:
            name, number = self._pairs
            flat = [number(v) for v in fields.get(name) or []]
            fields[name] = [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2)]
        return self._adapter.validate_python(fields)


_COLLECTIONS = _Codec(CollectionRecord)
_IMAGES = _Codec(ImageRecord)
_FACES = _Codec(FaceRecord, pairs=("landmarks", float))
_VIDEOS = _Codec(VideoRecord)
_TRACKS = _Codec(TrackRecord, pairs=("spans", int))

collection_to_dict = _COLLECTIONS.to_dict
collection_from_dict = _COLLECTIONS.from_dict
image_to_dict = _IMAGES.to_dict
image_from_dict = _IMAGES.from_dict
video_to_dict = _VIDEOS.to_dict
video_from_dict = _VIDEOS.from_dict
face_from_dict = _FACES.from_dict
track_from_dict = _TRACKS.from_dict


def face_to_dict(record: FaceRecord) -> dict[str, Any]:
    """JSON-able fields plus ``embedding`` as bytes (each adapter stores it natively) and
    ``embedding_dims``, for humans and queries."""
    return {**_FACES.to_dict(record), "embedding_dims": record.dims}


def track_to_dict(record: TrackRecord) -> dict[str, Any]:
    """JSON-able fields plus ``mean_embedding`` as bytes, and ``first_ms`` for humans."""
    return {**_TRACKS.to_dict(record), "first_ms": record.first_ms}


def stored_collection(
    collection_id: str, document: Mapping[str, Any] | None
) -> CollectionRecord | None:
    """The record of a collection's stored document (``None``: none is stored), which for
    ``default`` is its implicit record: it exists, active, until first written."""
    if document is not None:
        return collection_from_dict(document)
    return CollectionRecord(DEFAULT_COLLECTION) if collection_id == DEFAULT_COLLECTION else None


def current_collection(collection_id: str, document: Mapping[str, Any] | None) -> CollectionRecord:
    """The record an update starts from: NotFound if none is stored, but for ``default``,
    whose implicit record gets written now (and so is created now)."""
    record = stored_collection(collection_id, document)
    if record is None:
        raise NotFound(f"collection {collection_id} does not exist")
    return record if document is not None else replace(record, created_at=now())


def updated_collection(current: CollectionRecord, change: CollectionChange) -> CollectionRecord:
    """The record with the given fields changed; an erase is never undone."""
    name, settings = change.get("name"), change.get("settings")
    status, erase_report = change.get("status"), change.get("erase_report")
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
