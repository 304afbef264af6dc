"""One chunk of video → tracks, using the image pipeline for detect/align/embed.

Sampled frames go to ``FacePipeline.process_decoded_batch`` ``batch_frames`` at a
time, so the faces of several frames share one embedder call; then the
tracker links them frame by frame, in time order. ``process_video`` is the
laptop path: probe, plan, every chunk in turn, stitch - the very code path the
cloud runs with one chunk per instance, so both give the same tracks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from itertools import islice

from facesearch.video.chunks import plan_chunks, stitch
from facesearch.video.frames import DecodeStats, Sample, iter_samples
from facesearch.video.probe import Source, probe
from facesearch.video.settings import VideoSettings
from facesearch.video.tracker import Tracker, chunk_tracks
from facesearch.video.types import Chunk, ChunkPlan, ChunkResult, VideoResult
from facesearch.vision.decode import DecodedImage
from facesearch.vision.pipeline import FacePipeline
from facesearch.vision.settings import QualityPolicy

#: told the time (ms) of the last frame sampled so far, after each batch (progress bars)
ProgressCallback = Callable[[int], None]


def video_pipeline(base: FacePipeline, settings: VideoSettings) -> FacePipeline:
    """A pipeline for video frames: the base's models, its own detector minimum face size.

    The embedder, liveness and attribute sessions are shared (loaded once per instance);
    only the detector is rebuilt, because ``min_face_px`` is baked into its image pyramid.
    """
    overrides = base.settings.with_overrides(min_face_px=settings.min_face_px)
    return FacePipeline(
        overrides, liveness=base.liveness, embedder=base.embedder, attributes=base.attributes
    )


def _batches(samples: Iterator[Sample], size: int) -> Iterator[list[Sample]]:
    while batch := list(islice(samples, size)):
        yield batch


def process_chunk(
    source: Source,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    pipeline: FacePipeline,
    settings: VideoSettings,
    policy: QualityPolicy | None = None,
    on_progress: ProgressCallback | None = None,
) -> ChunkResult:
    """Decode, sample, detect, embed and track one chunk; typed errors for bad video.

    ``policy``: the quality limits faces are judged by (a collection's own; default the
    pipeline's); ``on_progress`` hears the last sampled time after each batch.
    """
    stats = DecodeStats()
    tracker = Tracker(settings=settings, video_id=plan.video_id, id_prefix=chunk.chunk_id)
    timings = {"decode": 0.0, "detect": 0.0, "embed": 0.0, "track": 0.0}
    samples = iter_samples(
        source, settings, start_ms=chunk.start_ms, end_ms=chunk.end_ms, stats=stats
    )
    started = time.perf_counter()
    for batch in _batches(samples, settings.batch_frames):
        timings["decode"] += (time.perf_counter() - started) * 1000.0
        images = [
            DecodedImage(rgb=s.rgb, format="video", exif_orientation=1, original_mode="RGB")
            for s in batch
        ]
        results = pipeline.process_decoded_batch(images, policy=policy)
        tick = time.perf_counter()
        for sample, result in zip(batch, results, strict=True):
            for stage in ("detect", "liveness", "attributes", "align", "quality"):
                timings["detect"] += result.timings_ms.get(stage, 0.0)
            timings["embed"] += result.timings_ms.get("embed", 0.0)
            tracker.update(sample.t_ms, result.faces, cut=sample.cut)
        timings["track"] += (time.perf_counter() - tick) * 1000.0
        if on_progress is not None:
            on_progress(batch[-1].t_ms)
        started = time.perf_counter()
    timings["decode"] += (time.perf_counter() - started) * 1000.0
    tick = time.perf_counter()
    tracks = chunk_tracks(
        tracker.finish(),
        video_id=plan.video_id,
        id_prefix=chunk.chunk_id,
        settings=settings,
    )
    timings["track"] += (time.perf_counter() - tick) * 1000.0
    return ChunkResult(
        video_id=plan.video_id,
        plan_id=plan.plan_id,
        chunk=chunk,
        tracks=tracks,
        samples=stats.samples,
        frames_decoded=stats.frames_decoded,
        scene_cuts=stats.scene_cuts,
        first_sample_ms=stats.first_sample_ms,
        last_sample_ms=stats.last_sample_ms,
        model=pipeline.embedder.model_id,
        timings_ms={k: round(v, 3) for k, v in timings.items()},
    )


def process_video(
    source: Source,
    video_id: str,
    *,
    pipeline: FacePipeline,
    settings: VideoSettings,
) -> VideoResult:
    """Embedded mode: the whole video in this process, chunk after chunk, then stitched."""
    info = probe(source, settings)
    plan = plan_chunks(video_id, info, settings)
    results = [
        process_chunk(source, plan, chunk, pipeline=pipeline, settings=settings)
        for chunk in plan.chunks
    ]
    return stitch(plan, results, settings)
