"""A collection's own settings, stored on its record and validated here.

What a collection may choose differently from the deployment: the embedder (so an
event can use a 512-d model while the rest keep 128-d: each collection has its own
index), the match threshold, quality limits, how long its faces are kept, and its
quotas. Absent values fall back to the deployment's settings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facesearch.vision.settings import QualityPolicy


class QualityOverrides(BaseModel):
    """Any subset of the quality policy's limits (``FACESEARCH_QUALITY_*`` otherwise)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_face_px: int | None = Field(default=None, ge=1)
    min_sharpness: float | None = Field(default=None, ge=0.0)
    min_brightness: float | None = Field(default=None, ge=0.0, le=255.0)
    max_brightness: float | None = Field(default=None, ge=0.0, le=255.0)
    min_contrast: float | None = Field(default=None, ge=0.0)
    max_yaw_deg: float | None = Field(default=None, ge=0.0, le=90.0)
    max_pitch_deg: float | None = Field(default=None, ge=0.0, le=90.0)
    max_roll_deg: float | None = Field(default=None, ge=0.0, le=180.0)

    def apply(self, base: QualityPolicy) -> QualityPolicy:
        changes = self.model_dump(exclude_none=True)
        return base.model_copy(update=changes) if changes else base


class CollectionSettings(BaseModel):
    """What ``POST /v1/collections`` takes as ``settings`` (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    embedder: str | None = Field(
        default=None,
        max_length=128,
        description="Embedder name in the model manifest; default: the deployment's."
        " Fixed at creation (the collection's index holds one model's embeddings).",
    )
    match_threshold: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="Cosine same-person threshold for searches."
    )
    quality: QualityOverrides = Field(default_factory=QualityOverrides)
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="Faces (with their images and crops) older than this are forgotten.",
    )
    max_faces: int | None = Field(
        default=None, ge=1, description="Ingest refuses images once the collection holds this many."
    )
    requests_per_s: float | None = Field(
        default=None,
        gt=0.0,
        le=10_000.0,
        description="Signed API requests per second for this collection, per query instance.",
    )

    @classmethod
    def from_record(cls, settings: dict[str, Any] | Any) -> CollectionSettings:
        return cls.model_validate(dict(settings or {}))

    def stored(self) -> dict[str, Any]:
        """The form kept on the record (only what was set)."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)
