"""The finisher of a video: stitch the chunks' tracks, store and index the track faces.

Runs as the ``finish`` task the last chunk queues (:mod:`.video`). It reads every chunk's
result from the crops store, links tracks across chunk boundaries (``stitch``), writes one
face record per confirmed track (its best face: crop, embedding; ``image_id`` = the video,
``face_id`` = the track id) and the track records (spans, hits, mean embedding), sends
the faces to the indexer like a photo's, announces ``video_done`` and marks the video
done; then the chunk results (every tracklet's crop and embedding) and a staged copy go.
Idempotent: a re-run writes the same ids; a finish after done is acknowledged silently.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from facesearch.errors import FaceSearchError, IncompleteVideo, NotFound
from facesearch.ingest.job import IngestJob, IngestOutcome, Outcome
from facesearch.ingest.outputs import crop_name, publish_embeddings, write_crop
from facesearch.ingest.video_steps import (
    VideoSteps,
    logger,
    plan_of,
    planned_settings,
    video_outcome,
)
from facesearch.storage.messages import VideoTask
from facesearch.storage.metadata import FaceRecord, embedding_bytes
from facesearch.storage.videos import TrackRecord, VideoRecord, VideoStatus
from facesearch.video.chunks import stitch
from facesearch.video.names import result_name, staged_name
from facesearch.video.records import chunk_result_from_dict
from facesearch.video.types import Track


class VideoFinisher(VideoSteps):
    """The ``finish`` step (mixed into :class:`facesearch.ingest.video.VideoIngest`)."""

    # --- the finisher ------------------------------------------------------------------------

    def finish(self, job: IngestJob, task: VideoTask) -> IngestOutcome:
        store, video_id = job.store, task.video_id
        record = self._current(job, task, done_ok=True)
        if not isinstance(record, VideoRecord):
            return record
        if record.status is VideoStatus.DONE:  # redelivered (its event went out before)
            return self._ack(job, task, Outcome.DUPLICATE, "video already done")
        plan = plan_of(record)
        started = time.perf_counter()
        done = store.chunks_done(video_id, plan.plan_id)
        if done < plan.total:
            raise IncompleteVideo(f"{done} of {plan.total} chunks are done")
        results = []
        for chunk in plan.chunks:
            try:
                raw, _ = self.crops.read(
                    result_name(job.source.collection_id, video_id, chunk.chunk_id)
                )
            except NotFound as exc:
                raise IncompleteVideo(f"the result of chunk {chunk.index} is missing") from exc
            results.append(chunk_result_from_dict(json.loads(raw)))
        load_ms = (time.perf_counter() - started) * 1000.0
        try:
            video = stitch(plan, results, planned_settings(self.settings.video, record))
        except FaceSearchError as error:
            if error.retryable:
                raise
            return self._fail(job, record, error)
        faces, tracks = [], []
        for index, track in enumerate(video.tracks):  # final ids: <video_id>-t<index>
            face, track_record = self._track_records(job, track, index, video.model)
            faces.append(face)
            tracks.append(track_record)
        store.put_tracks(video_id, tracks, faces)
        publish_embeddings(
            self.bus,
            self.settings.storage.embeddings_topic,
            faces,
            source=job.source,
            image_id=video_id,
            model=video.model,
            per_message=self.settings.ingest.faces_per_message,
        )
        timings = {**video.timings_ms, "load_results": round(load_ms, 3)}
        finished = replace(
            record,
            status=VideoStatus.DONE,
            chunks_done=plan.total,
            track_count=len(tracks),
            samples=video.samples,
            frames_decoded=video.frames_decoded,
            scene_cuts=video.scene_cuts,
            model=video.model,
            timings_ms=timings,
            finished_at=time.time(),
            error_code=None,
            error_message=None,
        )
        # announced before the record says done: a crash in between re-runs the finisher,
        # which announces again (at least once); a redelivered finish after done is silent
        self._announce(job, finished, [f.face_id for f in faces])
        store.put_video(finished)
        for chunk in plan.chunks:  # embeddings and crops of every tracklet: not kept
            self.crops.delete(result_name(job.source.collection_id, video_id, chunk.chunk_id))
        self.crops.delete(staged_name(job.source.collection_id, video_id))
        logger.info(
            "video done",
            extra=self._fields(job, video_id, tracks=len(tracks), timings_ms=timings),
        )
        return video_outcome(
            video_id, record.source, Outcome.DONE, faces=len(faces), timings_ms=timings
        )

    def _track_records(
        self, job: IngestJob, track: Track, index: int, model: str
    ) -> tuple[FaceRecord, TrackRecord]:
        """A track's best face as a face record (crop stored) and its track record."""
        best = track.best
        collection_id, video_id = job.source.collection_id, track.video_id
        crop_url = write_crop(self.crops, crop_name(collection_id, video_id, index), best.crop)
        quality: dict[str, Any] = asdict(best.quality)
        quality["reasons"] = list(best.quality.reasons)
        live = None
        if best.liveness is not None:
            live = best.liveness >= self.settings.vision.liveness_threshold
        face = FaceRecord(
            face_id=track.track_id,
            image_id=video_id,
            face_index=index,
            bbox=best.box,
            landmarks=tuple((float(x), float(y)) for x, y in np.asarray(best.landmarks)),
            det_score=float(best.det_score),
            embedding=embedding_bytes(best.embedding),
            model=model,
            liveness=best.liveness,
            live=live,
            quality=quality,
            crop_url=crop_url,
            video_id=video_id,
            track_id=track.track_id,
            t_ms=best.t_ms,
        )
        record = TrackRecord(
            track_id=track.track_id,
            video_id=video_id,
            track_index=index,
            spans=tuple((s.start_ms, s.end_ms) for s in track.spans),
            hits=track.hits,
            best_t_ms=best.t_ms,
            mean_embedding=embedding_bytes(track.mean_embedding),
            model=model,
        )
        return face, record
