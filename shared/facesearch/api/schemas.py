"""Request and response bodies of the query API, as pydantic models.

These models are the single source of the OpenAPI document (``/openapi.json``
is generated from them) and of the client's typed results, so the spec, the
server and the client cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STRICT = ConfigDict(extra="forbid")
_OPEN = ConfigDict(extra="ignore")

MAX_EMBEDDING_DIMS = 4096
MAX_ID_CHARS = 512


class Problem(BaseModel):
    """RFC 9457 problem details; ``type`` is stable per error code."""

    model_config = _OPEN
    type: str = Field(examples=["urn:facesearch:problem:no-face"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Field-level validation failures (400)."
    )


# --- search ------------------------------------------------------------------------------


class SearchParams(BaseModel):
    """Knobs shared by every search flavour; in the query string for raw/multipart bodies."""

    model_config = _STRICT
    k: int | None = Field(
        default=None, ge=1, le=1000, description="Matches per face (default 10, max search_max_k)."
    )
    threshold: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="Minimum cosine similarity of a match. Default: the embedder's calibrated "
        "same-person threshold (models/manifest.json, from the accuracy eval).",
    )
    min_liveness: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Skip query faces scoring lower liveness."
    )
    min_quality: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Skip query faces with a lower quality score."
    )
    face_index: int | None = Field(
        default=None, ge=0, description="Selective search: only this detected face."
    )
    bbox: list[float] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="Selective search: the detected face overlapping this x1,y1,x2,y2 box most.",
    )

    @field_validator("bbox", mode="before")
    @classmethod
    def _bbox_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):  # query string / form field: "x1,y1,x2,y2"
            return [part.strip() for part in value.split(",")]
        return value


class SearchRequest(SearchParams):
    """JSON body of ``POST /v1/search``: exactly one of image / image_url / embedding / face_id."""

    image_base64: str | None = Field(default=None, description="The image, base64-encoded.")
    image_url: str | None = Field(
        default=None, max_length=2048, description="https URL on an allow-listed host."
    )
    embedding: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EMBEDDING_DIMS,
        description="Search with this embedding (no detection); same model as the index.",
    )
    face_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="Search with a stored face's embedding (the face itself is excluded).",
    )


class Match(BaseModel):
    face_id: str
    image_id: str | None
    similarity: float
    person_id: str | None = None
    person_name: str | None = None
    crop_url: str | None = Field(default=None, description="Time-limited URL of the face crop.")


class QueryFace(BaseModel):
    """One face of the query (an image face, or the stored face / embedding searched with)."""

    face_index: int | None = None
    bbox: list[float] | None = None
    det_score: float | None = None
    liveness: float | None = None
    live: bool | None = None
    quality: float | None = None
    quality_reasons: list[str] = []
    skipped: str | None = Field(
        default=None, description="Why this face was not searched (below min_liveness, ...)."
    )
    matches: list[Match] = []


class SearchResponse(BaseModel):
    model: str
    k: int
    threshold: float
    faces: list[QueryFace]
    index_size: int
    timings_ms: dict[str, float]


# --- match -------------------------------------------------------------------------------


class MatchRequest(BaseModel):
    """JSON body of ``POST /v1/match``; multipart uses files ``image_a`` / ``image_b``."""

    model_config = _STRICT
    image_a_base64: str | None = None
    image_b_base64: str | None = None
    image_a_url: str | None = Field(default=None, max_length=2048)
    image_b_url: str | None = Field(default=None, max_length=2048)
    face_a: int | None = Field(default=None, ge=0, description="Face index in image A.")
    face_b: int | None = Field(default=None, ge=0, description="Face index in image B.")
    largest: bool = Field(default=False, description="With several faces, use the largest.")
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)


class MatchFace(BaseModel):
    face_index: int
    face_count: int
    bbox: list[float]
    det_score: float
    liveness: float | None
    live: bool | None
    quality: float | None
    quality_reasons: list[str]


class MatchResponse(BaseModel):
    same_person: bool
    similarity: float
    distance: float = Field(description="Euclidean distance of the unit embeddings.")
    threshold: float
    model: str
    faces: list[MatchFace]
    timings_ms: dict[str, float]


# --- records -----------------------------------------------------------------------------


class FaceOut(BaseModel):
    face_id: str
    image_id: str
    face_index: int
    bbox: list[float]
    landmarks: list[list[float]]
    det_score: float
    liveness: float | None
    live: bool | None
    quality: dict[str, Any]
    model: str
    person_id: str | None
    person_name: str | None = None
    crop_url: str | None = None
    created_at: float
    updated_at: float


class ImageOut(BaseModel):
    image_id: str
    source: str
    status: str
    error_code: str | None
    error_message: str | None
    face_count: int
    width: int | None
    height: int | None
    format: str | None
    model: str | None
    created_at: float
    updated_at: float
    faces: list[FaceOut]


class FacePage(BaseModel):
    items: list[FaceOut]
    next_cursor: str | None


class PersonCreate(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=256)
    metadata: dict[str, Any] = Field(default_factory=dict)


class PersonPatch(BaseModel):
    model_config = _STRICT
    name: str | None = Field(default=None, min_length=1, max_length=256)
    metadata: dict[str, Any] | None = None


class FacePersonPut(BaseModel):
    model_config = _STRICT
    person_id: str | None = Field(
        min_length=1, max_length=MAX_ID_CHARS, description="null removes the label."
    )


class PersonOut(BaseModel):
    person_id: str
    name: str
    metadata: dict[str, Any]
    created_at: float
    updated_at: float


class PersonPage(BaseModel):
    items: list[PersonOut]
    next_cursor: str | None


class Forgotten(BaseModel):
    """What a forget (DELETE) removed."""

    deleted_faces: list[str]
    crops_deleted: int
    index: str = Field(description="'tombstoned' (applied now) or 'queued' (indexer applies).")


# --- operations --------------------------------------------------------------------------


class IndexStats(BaseModel):
    live_faces: int
    vectors: int
    segments: int
    size_bytes: int
    manifest_version: int | None
    model: str | None


class Stats(BaseModel):
    faces: int
    images: int
    persons: int
    images_by_status: dict[str, int]
    index: IndexStats
    models: dict[str, str]


class Health(BaseModel):
    status: str
    env: str
    models: dict[str, str]
    index_readable: bool
    index_faces: int | None
    problems: list[str]
