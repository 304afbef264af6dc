"""Request and response bodies of the query API, as pydantic models.

These models are the single source of the OpenAPI document (``/openapi.json``
is generated from them) and of the client's typed results, so the spec, the
server and the client cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from facesearch.people.representative import PersonMatch
    from facesearch.storage.metadata import FaceRecord, ImageRecord
    from facesearch.vision.types import Face

M = TypeVar("M", bound=BaseModel)

STRICT = ConfigDict(extra="forbid")
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

    model_config = STRICT
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
    group_by: Literal["face", "person"] = Field(
        default="face",
        description="'person': each query face answers with persons ranked by the similarity"
        " of their centroid (``persons``; ``k`` of them, ``threshold`` defaults to"
        " FACESEARCH_PEOPLE_PERSON_MATCH_SIMILARITY) instead of single faces.",
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


class Moment(BaseModel):
    """A stretch of a video in which a face is on screen (sampled-frame times, ms)."""

    start_ms: int
    end_ms: int


class Match(BaseModel):
    face_id: str
    image_id: str | None = Field(description="The image, or the video, the face is from.")
    similarity: float
    person_id: str | None = None
    person_name: str | None = None
    crop_url: str | None = Field(
        default=None, description="Time-limited URL of the face crop (a video's thumbnail)."
    )
    video_id: str | None = Field(default=None, description="Set when the face is a video track.")
    track_id: str | None = None
    t_ms: int | None = Field(default=None, description="When in the video the crop was taken.")
    moments: list[Moment] | None = Field(
        default=None, description="Every stretch of the video in which this track is seen."
    )


class FaceSummary(BaseModel):
    """What answers say about one face: where it is, how sure, how live, how usable.

    Built from a detected face (:meth:`from_face`) or a stored one (:meth:`from_record`),
    so every response that shows a face shows the same fields, rounded the same way.
    """

    face_index: int | None = None
    bbox: list[float] | None = None
    det_score: float | None = None
    liveness: float | None = None
    live: bool | None = None
    quality: float | None = None
    quality_reasons: list[str] = []

    @classmethod
    def from_face(cls, face: Face, **extra: Any) -> Self:
        quality = face.quality
        return cls(
            face_index=face.index,
            bbox=[round(float(v), 1) for v in face.detection.box],
            det_score=round(face.detection.score, 4),
            liveness=None if face.liveness is None else round(face.liveness, 4),
            live=face.live,
            quality=None if quality is None else quality.score,
            quality_reasons=list(quality.reasons) if quality else [],
            **extra,
        )

    @classmethod
    def from_record(cls, record: FaceRecord, **extra: Any) -> Self:
        return cls(
            face_index=record.face_index,
            bbox=[float(v) for v in record.bbox],
            det_score=record.det_score,
            liveness=record.liveness,
            live=record.live,
            quality=record.quality.get("score"),
            quality_reasons=list(record.quality.get("reasons") or []),
            **extra,
        )


class PersonMatchOut(BaseModel):
    """A person found by a search with ``group_by=person``."""

    person_id: str
    name: str | None
    similarity: float = Field(description="Of the query face to the person's centroid.")
    faces: int
    cover_face_id: str | None
    cover_url: str | None = Field(default=None, description="Time-limited URL of its crop.")

    @classmethod
    def from_match(cls, match: PersonMatch, *, cover_url: str | None) -> PersonMatchOut:
        return cls(
            person_id=match.person_id,
            name=match.name,
            similarity=round(match.similarity, 6),
            faces=match.faces,
            cover_face_id=match.cover,
            cover_url=cover_url,
        )


class QueryFace(FaceSummary):
    """One face of the query (an image face, or the stored face / embedding searched with)."""

    skipped: str | None = Field(
        default=None, description="Why this face was not searched (below min_liveness, ...)."
    )
    matches: list[Match] = []
    persons: list[PersonMatchOut] = Field(
        default=[], description="With group_by=person: the persons, best first."
    )


class SearchResponse(BaseModel):
    model: str
    k: int
    threshold: float
    faces: list[QueryFace]
    index_size: int
    timings_ms: dict[str, float]


# --- match -------------------------------------------------------------------------------


class MatchOptions(BaseModel):
    """Which faces a match compares, and the threshold that decides."""

    model_config = STRICT
    face_a: int | None = Field(default=None, ge=0, description="Face index in image A.")
    face_b: int | None = Field(default=None, ge=0, description="Face index in image B.")
    largest: bool = Field(default=False, description="With several faces, use the largest.")
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)


class MatchRequest(MatchOptions):
    """JSON body of ``POST /v1/match``; multipart uses files ``image_a`` / ``image_b``."""

    image_a_base64: str | None = None
    image_b_base64: str | None = None
    image_a_url: str | None = Field(default=None, max_length=2048)
    image_b_url: str | None = Field(default=None, max_length=2048)


class MatchFace(FaceSummary):
    """The face of one image that a match compared."""

    face_index: int
    face_count: int
    bbox: list[float]
    det_score: float


class QualityOut(BaseModel):
    """The quality measurements behind a face's score (``facesearch detect --json``)."""

    model_config = ConfigDict(from_attributes=True)
    score: float
    sharpness: float
    brightness: float
    contrast: float
    face_px: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    reasons: list[str]


class DetectedFace(FaceSummary):
    """A detected face with its landmarks and quality measurements (``detect --json``)."""

    landmarks: list[list[float]]
    quality_metrics: QualityOut | None = None

    @classmethod
    def from_detection(cls, face: Face) -> Self:
        points = face.detection.landmarks
        return cls.from_face(
            face,
            landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in points],
            quality_metrics=None
            if face.quality is None
            else QualityOut.model_validate(face.quality, from_attributes=True),
        )


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
    model_config = ConfigDict(from_attributes=True)
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
    person_id: str | None = None
    person_name: str | None = None
    person_source: str | None = Field(
        default=None, description="'user' (assigned by a user: never moved) or 'machine'."
    )
    crop_url: str | None = None
    video_id: str | None = None
    track_id: str | None = None
    t_ms: int | None = None
    created_at: float
    updated_at: float

    @classmethod
    def from_record(
        cls,
        record: FaceRecord,
        *,
        crop_url: str | None,
        person: tuple[str, str | None, str] | None = None,
    ) -> FaceOut:
        """Every stored field, but the crop *location* never: only its time-limited URL;
        ``person`` = (person id, name, source) from the collection's people store."""
        out = cls.model_validate(record, from_attributes=True)
        update: dict[str, Any] = {"crop_url": crop_url}
        if person is not None:
            update.update(person_id=person[0], person_name=person[1], person_source=person[2])
        return out.model_copy(update=update)


class ImageOut(BaseModel):
    image_id: str
    source: str = Field(
        description="The object name in its bucket, the Cloudinary public_id or the file name."
    )
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

    @classmethod
    def from_record(cls, record: ImageRecord, faces: list[FaceOut]) -> ImageOut:
        return from_attributes(
            cls, record, source=public_source(record.source), status=str(record.status), faces=faces
        )


class FacePage(BaseModel):
    items: list[FaceOut]
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
    videos: int = 0
    tracks: int = Field(default=0, description="Video tracks (each also counts as a face).")
    index: IndexStats
    models: dict[str, str]


class Health(BaseModel):
    status: str
    env: str
    models: dict[str, str]
    index_readable: bool
    index_faces: int | None
    problems: list[str]


def public_source(source: str) -> str:
    """What a caller sees of where an image came from: the object name within its bucket,
    the Cloudinary public_id, a file's name — never bucket names, local paths or versions
    (deployment internals; docs/security.md)."""
    identity = source.split("#", 1)[0]
    for scheme in ("gs://", "cloudinary://", "cloudinary-video://"):
        if identity.startswith(scheme):
            rest = identity[len(scheme) :]
            return rest.split("/", 1)[1] if "/" in rest else rest
    return identity.replace("\\", "/").rsplit("/", 1)[-1]


def from_attributes(model: type[M], record: object, **given: Any) -> M:
    """``model`` with each of its fields read from ``record``'s attribute of that name,
    except the fields ``given`` (what the answer computes, renames or hides).

    A stored record carries more than an answer shows (internal fields stay out because
    the model does not declare them), and a field added to both needs no new line here.
    """
    copied = {name: getattr(record, name) for name in model.model_fields if name not in given}
    return model.model_validate({**copied, **given})
