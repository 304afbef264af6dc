"""Videos through ingest: plan, chunks on many instances, a finisher (docs/video.md).

An upload that sniffs as a video (or a Cloudinary ``video`` request) is **planned** by
the ingest instance that received its event: probe the container header (typed errors:
the video is recorded failed and the event acknowledged), split it into time chunks,
write ``videos/{video_id}`` and publish one :class:`VideoTask` per chunk on
``ingest-requests``. Each **chunk** task is processed by whichever ingest instance Pub/Sub
pushes it to: it reads only its stretch of the video (a ranged reader), detects, embeds
and tracks, writes its result to the crops store (``<collection>/videos/<id>/chunks/``)
and marks its chunk done; the chunk that completes the plan publishes the **finish**
task, which stitches the tracks across boundaries, writes one face record per track
(its best face: crop, embedding; ``image_id`` = the video) and the track records, sends
the faces to the indexer like a photo's, marks the video done and announces it on
``face-events``.

Redelivery is harmless at every step: ids come from the plan, chunk markers record
done chunks (a redelivered chunk is acknowledged without work), results and records
are overwritten with the same content, the index ignores faces it holds. A chunk that
keeps crashing its instance is given up after ``MAX_CHUNK_ATTEMPTS`` (the video
failed ``too-many-attempts``) instead of cycling into the dead-letter queue.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from facesearch.errors import (
    ConfigError,
    FaceSearchError,
    ImageTooLarge,
    ModelError,
    TooManyAttempts,
    VideoTooLarge,
)
from facesearch.ingest.job import MAX_PROCESSING_ATTEMPTS, IngestJob, IngestOutcome, Outcome
from facesearch.ingest.video_finish import VideoFinisher
from facesearch.ingest.video_steps import logger, plan_of, planned_settings, video_outcome
from facesearch.storage.messages import VideoTask
from facesearch.storage.videos import VideoRecord, VideoStatus
from facesearch.video.chunks import plan_chunks
from facesearch.video.names import result_name, staged_name
from facesearch.video.probe import probe
from facesearch.video.process import process_chunk, video_pipeline
from facesearch.video.records import chunk_result_to_dict
from facesearch.video.settings import VideoSettings
from facesearch.video.sniff import SNIFF_BYTES, sniff_container
from facesearch.vision.pipeline import FacePipeline

#: processing attempts of one chunk (redeliveries) before its video is failed
MAX_CHUNK_ATTEMPTS = 5

#: opens a video task's source as a seekable reader (SourceLoader.open_video)
VideoOpener = Callable[[dict[str, Any]], BinaryIO]
#: the embedded CLI's progress bar: (video_id, last sampled ms, duration ms or None)
VideoProgress = Callable[[str, int, int | None], None]


def is_video(head: bytes) -> bool:
    """Does content starting with ``head`` sniff as a video container? (never the name)"""
    return sniff_container(head[:SNIFF_BYTES]) is not None


@dataclass(eq=False)
class VideoIngest(VideoFinisher):
    """The video half of :class:`facesearch.ingest.service.IngestService` (per instance):
    planning and chunks here, the finisher in :mod:`.video_finish`."""

    open_video: VideoOpener
    fetch_video: Callable[[str], bytes] | None = None
    on_progress: VideoProgress | None = None
    _pipelines: dict[int, FacePipeline] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    # --- planning (the upload's event) -----------------------------------------------------

    def plan(self, job: IngestJob, data: bytes | None) -> IngestOutcome:
        source, store = job.source, job.store
        video_id = source.image_id
        existing = store.get_video(video_id)
        if existing is not None and existing.model == job.model:
            if existing.status is VideoStatus.DONE:
                return video_outcome(
                    video_id, source.display, Outcome.DUPLICATE, faces=existing.track_count
                )
            if existing.status is VideoStatus.PROCESSING and existing.chunks_total:
                # a redelivered upload event: the planner may have died before publishing,
                # so the tasks go out again (done chunks are acknowledged without work)
                self._publish_chunks(job, existing)
                return video_outcome(
                    video_id, source.display, Outcome.DUPLICATE, reason="processing, re-queued"
                )
        attempts = (existing.attempts if existing else 0) + 1
        base = VideoRecord(
            video_id=video_id,
            source=source.display,
            status=VideoStatus.PROCESSING,
            source_info=source.info(),
            model=job.model,
            attempts=attempts,
            created_at=existing.created_at if existing else 0.0,
        )
        if existing is not None and existing.attempts >= MAX_PROCESSING_ATTEMPTS:
            if existing.status is VideoStatus.FAILED:
                return video_outcome(
                    video_id, source.display, Outcome.FAILED, error_code=existing.error_code
                )
            error = TooManyAttempts(f"gave up after {existing.attempts} planning attempts")
            return self._fail(job, existing, error)
        store.put_video(base)
        try:
            where, size, data = self._locate(job, data)
            with self._reader(where, data) as reader:
                info = probe(reader, self.settings.video, size_bytes=size)
            plan = plan_chunks(video_id, info, self.settings.video)
        except (ConfigError, ModelError):
            raise
        except FaceSearchError as error:
            if error.retryable:
                raise
            return self._fail(job, base, error)
        # the whole plan is stored before any task is published: a chunk reads it
        record = store.put_video(
            replace(
                base,
                container=info.container,
                codec=info.codec,
                width=info.width,
                height=info.height,
                duration_ms=plan.duration_ms,
                frame_rate=info.frame_rate,
                size_bytes=info.size_bytes,
                plan_id=plan.plan_id,
                fps=plan.fps,
                chunk_ms=plan.chunk_ms,
                chunks_total=plan.total,
                read_from=where,
            )
        )
        self._publish_chunks(job, record)
        logger.info(
            "video planned",
            extra=self._fields(job, video_id, chunks=plan.total, duration_ms=plan.duration_ms),
        )
        return video_outcome(
            video_id, source.display, Outcome.QUEUED, reason=f"{plan.total} chunk(s) queued"
        )

    def _publish_chunks(self, job: IngestJob, record: VideoRecord) -> None:
        plan, collection_id = plan_of(record), job.source.collection_id
        tasks = [
            VideoTask(
                "chunk",
                record.video_id,
                plan.plan_id,
                dict(record.read_from),
                c.index,
                collection_id,
            )
            for c in plan.chunks
        ]
        self.bus.publish(self.settings.storage.ingest_topic, [t.encode() for t in tasks])

    def _locate(
        self, job: IngestJob, data: bytes | None
    ) -> tuple[dict[str, Any], int, bytes | None]:
        """Where the chunks read the video (a task's ``source``), its size, bytes in hand."""
        source = job.source
        if source.kind == "gcs":
            where: dict[str, Any] = {"kind": "gcs", "bucket": source.bucket, "name": source.name}
            if source.generation is not None:
                where["generation"] = source.generation
            size = source.size if data is None else len(data)
            if size is None:
                with self.open_video(where) as reader:
                    size = reader.seek(0, io.SEEK_END)
            return where, size, data
        if source.kind == "file":
            size = len(data) if data is not None else (source.size or 0)
            return {"kind": "file", "path": source.name}, size, data
        if source.kind == "url":  # fetched once, staged in our own store for the chunks
            if data is None:
                if self.fetch_video is None:
                    raise ConfigError("video URL requests need a video fetcher (none configured)")
                try:
                    data = self.fetch_video(source.name)
                except ImageTooLarge as exc:  # the fetcher's cap (FACESEARCH_VIDEO_FETCH_MAX_BYTES)
                    raise VideoTooLarge(exc.message) from exc
            if len(data) > self.settings.video.max_bytes:
                raise VideoTooLarge(f"the video is {len(data):,} bytes")
            name = staged_name(source.collection_id, source.image_id)
            self.crops.write(name, data)
            return {"kind": "blob", "name": name}, len(data), data
        raise ConfigError(f"cannot process a video from a {source.kind!r} source")

    @contextmanager
    def _reader(self, where: dict[str, Any], data: bytes | None) -> Iterator[BinaryIO]:
        if data is not None:
            yield io.BytesIO(data)
            return
        reader = self.open_video(where)
        try:
            yield reader
        finally:
            reader.close()

    # --- one chunk -------------------------------------------------------------------------

    def chunk(self, job: IngestJob, task: VideoTask) -> IngestOutcome:
        store, video_id = job.store, task.video_id
        record = self._current(job, task)
        if not isinstance(record, VideoRecord):
            return record
        plan = plan_of(record)
        if task.chunk is None or not 0 <= task.chunk < plan.total:
            return self._ack(job, task, Outcome.SKIPPED, "no such chunk in the plan")
        chunk = plan.chunks[task.chunk]
        state = store.start_chunk(video_id, plan.plan_id, chunk.index)
        if state.done:  # a redelivery; make sure the finish was queued if this was the last
            if store.chunks_done(video_id, plan.plan_id) >= plan.total:
                self._queue_finish(task)
            return self._ack(job, task, Outcome.DUPLICATE, "chunk already done")
        if state.attempts > MAX_CHUNK_ATTEMPTS:
            error = TooManyAttempts(
                f"chunk {chunk.index} of {plan.total} crashed or timed out "
                f"{state.attempts - 1} times"
            )
            return self._fail(job, record, error)
        settings = planned_settings(self.settings.video, record)
        pipeline = self._video_pipeline(job.pipeline, settings)
        report = self.on_progress

        def progress(t_ms: int) -> None:
            if report is not None:
                report(video_id, t_ms, record.duration_ms)

        try:
            with self._reader(task.source, None) as reader:
                result = process_chunk(
                    reader,
                    plan,
                    chunk,
                    pipeline=pipeline,
                    settings=settings,
                    policy=job.policy,
                    on_progress=progress,
                )
        except (ConfigError, ModelError):
            raise
        except FaceSearchError as error:
            if error.retryable:
                raise
            return self._fail(job, record, error)
        name = result_name(job.source.collection_id, video_id, chunk.chunk_id)
        self.crops.write(name, json.dumps(chunk_result_to_dict(result)).encode())
        done = store.finish_chunk(video_id, plan.plan_id, chunk.index)
        if store.get_video(video_id) is None:  # forgotten meanwhile: leave nothing behind
            self.crops.delete(name)
            store.delete_video(video_id)
            return self._ack(job, task, Outcome.SUPERSEDED, "video forgotten meanwhile")
        if done >= plan.total and store.claim_finish(video_id, plan.plan_id):
            self._queue_finish(task)  # once, though two last chunks may finish together
        logger.info(
            "video chunk processed",
            extra=self._fields(
                job,
                video_id,
                chunk=chunk.index,
                chunks=plan.total,
                done=done,
                tracklets=len(result.tracks),
                samples=result.samples,
                timings_ms=result.timings_ms,
            ),
        )
        return video_outcome(
            video_id,
            record.source,
            Outcome.DONE,
            faces=len(result.tracks),
            reason=f"chunk {chunk.index + 1}/{plan.total}",
            timings_ms=dict(result.timings_ms),
        )

    def _queue_finish(self, task: VideoTask) -> None:
        finish = replace(task, step="finish", chunk=None)
        self.bus.publish(self.settings.storage.ingest_topic, [finish.encode()])

    def _video_pipeline(self, base: FacePipeline, settings: VideoSettings) -> FacePipeline:
        """One video pipeline per base pipeline (its detector is built once per instance)."""
        with self._lock:
            built = self._pipelines.get(id(base))
            if built is None or built.detector.min_face_px != settings.min_face_px:
                built = self._pipelines[id(base)] = video_pipeline(base, settings)
            return built


__all__ = ["MAX_CHUNK_ATTEMPTS", "VideoIngest", "is_video"]
