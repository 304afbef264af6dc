"""Bodies of the collection routes (``/v1/collections``), as pydantic models.

Kept apart from :mod:`facesearch.api.schemas` (the data routes' bodies): a collection's
record is administration — settings, status, erase report — not faces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from facesearch.api.schemas import Stats
from facesearch.collections.policy import CollectionSettings

if TYPE_CHECKING:
    from facesearch.storage.catalog import CollectionRecord

_STRICT = ConfigDict(extra="forbid")


class CollectionCreate(BaseModel):
    """``POST /v1/collections``: a new, empty collection with its own settings."""

    model_config = _STRICT
    collection_id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="1-63 of a-z, 0-9 and '-'; never reused, even after an erase.",
    )
    name: str = Field(default="", max_length=256)
    settings: CollectionSettings = Field(default_factory=CollectionSettings)


class CollectionPatch(BaseModel):
    """``PATCH /v1/collections/{id}``: rename, or replace the settings (not the embedder)."""

    model_config = _STRICT
    name: str | None = Field(default=None, max_length=256)
    settings: CollectionSettings | None = None


class CollectionOut(BaseModel):
    collection_id: str
    name: str
    settings: CollectionSettings
    status: str = Field(description="active, erasing or erased")
    created_at: float
    updated_at: float
    stats: Stats | None = Field(default=None, description="Counts and index (GET of one).")
    erase_report: dict[str, Any] = Field(
        default_factory=dict,
        description="While erasing and after: what was removed, and the final scan.",
    )

    @classmethod
    def from_record(cls, record: CollectionRecord, stats: Stats | None = None) -> CollectionOut:
        return cls(
            collection_id=record.collection_id,
            name=record.name,
            settings=CollectionSettings.from_record(record.settings),
            status=str(record.status),
            created_at=record.created_at,
            updated_at=record.updated_at,
            stats=stats,
            erase_report=dict(record.erase_report),
        )


class CollectionPage(BaseModel):
    items: list[CollectionOut]
    next_cursor: str | None
