"""What every step of a video shares: its plan from the record, and the record's writes.

:class:`VideoSteps` holds the per-instance collaborators and the bookkeeping that the
planner, the chunk workers and the finisher (:mod:`.video`, :mod:`.video_finish`) all do:
find the video a task belongs to (or acknowledge a task with nothing to do), record a
failure, announce a finished video on ``face-events``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from facesearch.config import Settings
from facesearch.errors import FaceSearchError, InvalidVideo
from facesearch.ingest.job import IngestJob, IngestOutcome, Outcome
from facesearch.logs import log_fields
from facesearch.storage.blob import BlobStore
from facesearch.storage.bus import Bus
from facesearch.storage.messages import VideoEvent, VideoTask
from facesearch.storage.videos import VideoRecord, VideoStatus
from facesearch.video.chunks import rebuild_plan
from facesearch.video.settings import VideoSettings
from facesearch.video.types import ChunkPlan

logger = logging.getLogger("facesearch.ingest.video")

#: an :class:`IngestOutcome` about a video
video_outcome = partial(IngestOutcome, media="video")


def plan_of(record: VideoRecord) -> ChunkPlan:
    if not record.plan_id or not record.chunk_ms or not record.fps:
        raise InvalidVideo(f"video {record.video_id} has no chunk plan")
    return rebuild_plan(
        record.video_id,
        record.plan_id,
        fps=record.fps,
        chunk_ms=record.chunk_ms,
        duration_ms=record.duration_ms,
        total=record.chunks_total,
    )


def planned_settings(base: VideoSettings, record: VideoRecord) -> VideoSettings:
    """Sample exactly as planned, even if the deployment's settings changed since."""
    return base.model_copy(
        update={"fps": record.fps or base.fps, "chunk_s": (record.chunk_ms or 1000) / 1000}
    )


@dataclass(eq=False)
class VideoSteps:
    """Collaborators and bookkeeping shared by the planner, the chunks and the finisher."""

    settings: Settings
    crops: BlobStore  # track crops, and the work files (chunk results, staged copies)
    bus: Bus

    def _announce(self, job: IngestJob, record: VideoRecord, face_ids: list[str]) -> None:
        event = VideoEvent(
            event="video_done" if record.status is VideoStatus.DONE else "video_failed",
            video_id=record.video_id,
            face_ids=face_ids,
            tracks=record.track_count,
            duration_ms=record.duration_ms,
            error_code=record.error_code,
            model=record.model,
            collection_id=job.source.collection_id,
        )
        self.bus.publish(self.settings.storage.events_topic, [event.encode()])

    # --- shared ------------------------------------------------------------------------------

    def _current(
        self, job: IngestJob, task: VideoTask, *, done_ok: bool = False
    ) -> VideoRecord | IngestOutcome:
        """The video a task belongs to, or the acknowledgement of a task with nothing to do
        (the video forgotten, failed, finished, or re-planned since the task was queued)."""
        record = job.store.get_video(task.video_id)
        if record is None:
            return self._ack(job, task, Outcome.SUPERSEDED, "video gone (forgotten)")
        if record.plan_id != task.plan_id:
            return self._ack(job, task, Outcome.SUPERSEDED, "video re-planned since")
        if record.status is VideoStatus.FAILED:
            return self._ack(job, task, Outcome.SKIPPED, f"video failed ({record.error_code})")
        if record.status is VideoStatus.DONE and not done_ok:
            return self._ack(job, task, Outcome.DUPLICATE, "video already done")
        return record

    def _ack(self, job: IngestJob, task: VideoTask, outcome: Any, reason: str) -> IngestOutcome:
        logger.info(
            "video task acknowledged: %s",
            reason,
            extra=self._fields(job, task.video_id, step=task.step, chunk=task.chunk),
        )
        return video_outcome(task.video_id, job.source.display, outcome, reason=reason)

    def _fail(self, job: IngestJob, record: VideoRecord, error: FaceSearchError) -> IngestOutcome:
        """Record a permanent failure (visible, never retried), announce it, acknowledge."""
        failed = job.store.put_video(
            replace(
                record,
                status=VideoStatus.FAILED,
                error_code=error.code,
                error_message=error.message,
                finished_at=time.time(),
            )
        )
        self._announce(job, failed, [])
        logger.error(
            "video failed",
            extra=self._fields(
                job,
                record.video_id,
                **error.log_fields(),
            ),
        )
        return IngestOutcome.failed(record.video_id, record.source, error, media="video")

    @staticmethod
    def _fields(job: IngestJob, video_id: str, **extra: Any) -> dict[str, Any]:
        return log_fields(
            video_id=video_id,
            source=job.source.display,
            collection=job.source.collection_id,
            **extra,
        )
