"""Response bodies of the video routes (``GET /v1/videos/{id}``), as pydantic models.

Like :mod:`.schemas` (which holds :class:`~.schemas.Moment`, shared with search
results), these are the source of the OpenAPI document and the client's typed results.
The shape follows what users of Rekognition's GetFaceSearch know: the job's status, the
video's facts, and a page of per-video persons (tracks) with their timestamps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from facesearch.api.schemas import Moment, from_attributes, public_source

if TYPE_CHECKING:
    from facesearch.storage.metadata import FaceRecord
    from facesearch.storage.videos import TrackRecord, VideoRecord


class VideoProgress(BaseModel):
    chunks_done: int
    chunks_total: int = Field(description="0 until the video is planned into chunks.")
    fraction: float


class TrackOut(BaseModel):
    """One person's appearances in the video; its best face is the face ``face_id``."""

    track_id: str
    face_id: str
    track_index: int = Field(description="Tracks are numbered by first appearance.")
    moments: list[Moment]
    first_ms: int
    last_ms: int
    hits: int = Field(description="Sampled frames the face was detected in.")
    best_t_ms: int = Field(description="When the best face (the crop) was seen.")
    quality: float | None
    det_score: float | None
    person_id: str | None
    person_name: str | None
    crop_url: str | None = Field(description="Time-limited URL of the best face's crop.")

    @classmethod
    def from_records(
        cls,
        track: TrackRecord,
        face: FaceRecord | None,
        *,
        crop_url: str | None,
        person_id: str | None,
        person_name: str | None,
    ) -> TrackOut:
        return from_attributes(
            cls,
            track,
            moments=[Moment(start_ms=a, end_ms=b) for a, b in track.spans],
            quality=None if face is None else face.quality.get("score"),
            det_score=None if face is None else face.det_score,
            person_id=person_id,
            person_name=person_name,
            crop_url=crop_url,
        )


class VideoOut(BaseModel):
    video_id: str
    source: str = Field(description="The object name in its bucket, or the Cloudinary public_id.")
    status: str = Field(description="queued, processing, done or failed")
    error_code: str | None
    error_message: str | None
    container: str | None
    codec: str | None
    width: int | None
    height: int | None
    duration_ms: int | None
    frame_rate: float | None
    progress: VideoProgress
    track_count: int
    model: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    tracks: list[TrackOut] = Field(description="A page of tracks, by first appearance.")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page of tracks.")

    @classmethod
    def from_record(
        cls,
        record: VideoRecord,
        *,
        chunks_done: int,
        tracks: list[TrackOut],
        next_cursor: str | None,
    ) -> VideoOut:
        total = record.chunks_total
        return from_attributes(
            cls,
            record,
            source=public_source(record.source),
            status=str(record.status),
            progress=VideoProgress(
                chunks_done=chunks_done,
                chunks_total=total,
                fraction=round(chunks_done / total, 4) if total else 0.0,
            ),
            tracks=tracks,
            next_cursor=next_cursor,
        )
