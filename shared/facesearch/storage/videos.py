"""Video and track records: what the metadata store keeps of an uploaded video.

A video is processed in time chunks by many instances (:mod:`facesearch.ingest.video`);
the store keeps

* ``videos/{video_id}`` — where it came from, its status, what the header said, the
  chunk plan (``plan_id``, ``chunks_total``) and, once done, what was found;
* ``video_chunks/{chunk_id}`` — one small marker per chunk of the plan: processing
  attempts (a chunk that keeps crashing its instance is given up, not retried into the
  dead-letter queue) and whether it is done. Progress is the number of done markers of
  the plan; markers are separate documents so that hundreds of chunks finishing at once
  do not contend on the video's document;
* ``tracks/{track_id}`` — one per confirmed track: appearance spans (ms), hits, the
  mean embedding; the track's best face is an ordinary ``faces/{track_id}`` record
  (``image_id`` = the video id, ``video_id``/``track_id``/``t_ms`` set), indexed like any
  photo face, so search, persons and forget treat it as a face.

Every record belongs to the store's collection, like images and faces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch.storage.metadata import DEFAULT_COLLECTION, MetadataStore, check_id
from facesearch.storage.paging import iter_pages


class VideoStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"  # chunks are being processed (progress: done / total)
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class VideoRecord:
    """``videos/{video_id}``: a video's source, status, header facts, plan and result."""

    video_id: str
    source: str  # e.g. gs://bucket/object#generation, cloudinary://cloud/public_id#version
    status: VideoStatus = VideoStatus.QUEUED
    source_info: Mapping[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    container: str | None = None  # sniffed family (mp4, webm, ...)
    codec: str | None = None
    width: int | None = None  # coded frame size (before rotation)
    height: int | None = None
    duration_ms: int | None = None
    frame_rate: float | None = None
    size_bytes: int | None = None
    plan_id: str | None = None
    fps: float | None = None  # sampling rate of the plan
    chunk_ms: int | None = None
    chunks_total: int = 0
    chunks_done: int = 0  # the final count (live progress: MetadataStore.chunks_done)
    read_from: Mapping[str, Any] = field(
        default_factory=dict
    )  # where chunks read it (a task's source)
    track_count: int = 0
    samples: int = 0
    frames_decoded: int = 0
    scene_cuts: int = 0
    model: str | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    attempts: int = 0  # planning attempts (redeliveries of the upload event)
    finish_claimed: str | None = None  # the plan whose finisher was queued (claim_finish)
    finished_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    collection_id: str = DEFAULT_COLLECTION


@dataclass(frozen=True)
class TrackRecord:
    """``tracks/{track_id}``: one person's appearances in one video.

    ``track_id`` is also the id of the track's face record (its best face);
    ``track_index`` numbers the video's tracks by first appearance.
    """

    track_id: str
    video_id: str
    track_index: int
    spans: tuple[tuple[int, int], ...]  # (start_ms, end_ms), sampled-frame times
    hits: int  # sampled frames the face was detected in
    best_t_ms: int  # when the best face was seen
    mean_embedding: bytes  # float32 little endian, L2-normalised mean of every sighting
    model: str
    created_at: float = 0.0
    updated_at: float = 0.0
    collection_id: str = DEFAULT_COLLECTION

    @property
    def face_id(self) -> str:
        return self.track_id

    @property
    def first_ms(self) -> int:
        return self.spans[0][0] if self.spans else self.best_t_ms

    @property
    def last_ms(self) -> int:
        return self.spans[-1][1] if self.spans else self.best_t_ms

    def mean_vector(self) -> npt.NDArray[np.float32]:
        return np.frombuffer(self.mean_embedding, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class ChunkState:
    """A chunk marker after :meth:`MetadataStore.start_chunk`."""

    attempts: int  # this one included
    done: bool  # an earlier delivery already finished the chunk


__all__ = ["ChunkState", "TrackRecord", "VideoRecord", "VideoStatus"]


def check_tracks(video_id: str, tracks: Sequence[TrackRecord], faces: Sequence[Any]) -> None:
    """What every ``put_tracks`` refuses before it writes: ids that are not ours to store, a
    track of another video, a face that is not this video's (``faces`` are FaceRecords)."""
    check_id("video", video_id)
    for track in tracks:
        check_id("track", track.track_id)
        if track.video_id != video_id:
            raise ValueError(f"track {track.track_id} belongs to {track.video_id}")
    for face in faces:
        check_id("face", face.face_id)
        if face.image_id != video_id or face.video_id != video_id:
            raise ValueError(f"face {face.face_id} does not belong to video {video_id}")


def all_tracks(store: MetadataStore, video_id: str) -> Iterator[TrackRecord]:
    """Every track of a video, following the pages."""
    return iter_pages(lambda cursor: store.list_tracks(video_id, cursor=cursor, limit=1000))
