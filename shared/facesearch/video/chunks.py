"""Split a long video into time chunks, and stitch the chunks' tracks back together.

Planner: ``ceil(duration / chunk_s)`` chunks on a fixed time grid; a remainder
shorter than a quarter chunk joins the previous chunk (no 2-second tail job). A
video whose header gives no duration is one open-ended chunk (it cannot be cut
without knowing where it ends; the decoder still enforces the duration cap).

Ids: ``plan_id`` hashes everything that changes what a chunk computes (video id,
duration, fps, chunk length, plan version), and ``chunk_id`` is
``{video_id}-{plan_id}-{index}``. Planning the same video again - a redelivered
upload event, a retried planner - yields the same ids, so chunk records and
results are overwritten, never duplicated; changing the sampling gives a new
plan whose results never mix with the old one's.

Stitcher (the finisher): takes each chunk's result once (a redelivered chunk's
second copy is the same result and is ignored), links tracks across
boundaries with the tracker's own rules (``tracker.link_tracks``: continuity
over the boundary, re-identification, never merging two faces seen in one
frame), drops tracks still below ``track_confirm_hits``, and numbers the final
tracks by first appearance: ``{video_id}-t{n}``.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable, Sequence
from typing import Final

from facesearch.errors import IncompleteVideo, InvalidVideo, VideoTooLong
from facesearch.video.settings import VideoSettings
from facesearch.video.tracker import link_tracks, merge_group
from facesearch.video.types import Chunk, ChunkPlan, ChunkResult, Progress, VideoInfo, VideoResult

PLAN_VERSION: Final = 1
MIN_TAIL_FRACTION: Final = 0.25


def plan_id_for(video_id: str, duration_ms: int | None, settings: VideoSettings) -> str:
    key = f"v{PLAN_VERSION}|{video_id}|{duration_ms}|{settings.fps!r}|{settings.chunk_s!r}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def chunk_id_for(video_id: str, plan_id: str, index: int) -> str:
    return f"{video_id}-{plan_id}-{index}"


def plan_chunks(video_id: str, info: VideoInfo, settings: VideoSettings) -> ChunkPlan:
    """The chunk plan of a probed video; refuses a video over the duration cap."""
    if not video_id:
        raise InvalidVideo("a video needs a non-empty video_id to be planned")
    duration = info.duration_s
    if duration is not None and duration > settings.max_duration_s:
        raise VideoTooLong(
            f"the video lasts {duration:,.1f} s; the limit is {settings.max_duration_s:,.0f} s"
        )
    chunk_ms = round(settings.chunk_s * 1000)
    duration_ms = None if duration is None else math.ceil(duration * 1000)
    plan_id = plan_id_for(video_id, duration_ms, settings)
    count = 1
    if duration_ms is not None:
        count = max(1, math.ceil(duration_ms / chunk_ms))
        tail = duration_ms - (count - 1) * chunk_ms
        if count > 1 and tail < MIN_TAIL_FRACTION * chunk_ms:
            count -= 1
    return rebuild_plan(
        video_id, plan_id, fps=settings.fps, chunk_ms=chunk_ms, duration_ms=duration_ms, total=count
    )


def rebuild_plan(
    video_id: str,
    plan_id: str,
    *,
    fps: float,
    chunk_ms: int,
    duration_ms: int | None,
    total: int,
) -> ChunkPlan:
    """The plan from what a video record keeps of it (the chunk workers' and finisher's
    view: exactly what :func:`plan_chunks` made, whatever the settings are now)."""
    if total < 1:
        raise InvalidVideo(f"a chunk plan has at least one chunk, not {total}")
    bounds: list[tuple[int, int | None]] = [
        (i * chunk_ms, (i + 1) * chunk_ms) for i in range(total)
    ]
    bounds[-1] = (bounds[-1][0], None)  # the last chunk reads to the end of the stream
    chunks = tuple(
        Chunk(index=i, chunk_id=chunk_id_for(video_id, plan_id, i), start_ms=start, end_ms=end)
        for i, (start, end) in enumerate(bounds)
    )
    return ChunkPlan(
        video_id=video_id,
        plan_id=plan_id,
        fps=fps,
        chunk_ms=chunk_ms,
        duration_ms=duration_ms,
        chunks=chunks,
    )


def progress(plan: ChunkPlan, done_chunk_ids: Iterable[str]) -> Progress:
    """Chunks done / total; ids of other plans and repeats do not count."""
    expected = {c.chunk_id for c in plan.chunks}
    return Progress(done=len(expected & set(done_chunk_ids)), total=plan.total)


def stitch(plan: ChunkPlan, results: Sequence[ChunkResult], settings: VideoSettings) -> VideoResult:
    """The finished video from every chunk's result (raises IncompleteVideo if one is missing)."""
    by_id: dict[str, ChunkResult] = {}
    for result in results:
        if result.plan_id != plan.plan_id or result.video_id != plan.video_id:
            raise InvalidVideo(
                f"chunk result {result.chunk.chunk_id} belongs to plan {result.plan_id}, "
                f"not {plan.plan_id}"
            )
        by_id.setdefault(result.chunk.chunk_id, result)  # a redelivered duplicate is ignored
    missing = [c.chunk_id for c in plan.chunks if c.chunk_id not in by_id]
    if missing:
        raise IncompleteVideo(
            f"{len(missing)} of {plan.total} chunks have not reported yet (first: {missing[0]})"
        )
    started = time.perf_counter()
    ordered = [by_id[c.chunk_id] for c in plan.chunks]
    models = {r.model for r in ordered}
    if len(models) > 1:
        raise InvalidVideo(f"chunks were embedded by different models: {sorted(models)}")
    tracks = [t for r in ordered for t in r.tracks]
    groups = link_tracks(tracks, settings)
    merged = [
        merge_group([tracks[i] for i in group], plan.video_id, "", settings) for group in groups
    ]
    confirmed = [t for t in merged if t.hits >= settings.track_confirm_hits]
    confirmed.sort(key=lambda t: (t.first.t_ms, t.first.box, t.hits))
    final = tuple(
        merge_group([track], plan.video_id, f"{plan.video_id}-t{n}", settings)
        for n, track in enumerate(confirmed)
    )
    timings: dict[str, float] = {}
    for result in ordered:
        for stage, ms in result.timings_ms.items():
            timings[stage] = timings.get(stage, 0.0) + ms
    timings["stitch"] = (time.perf_counter() - started) * 1000.0
    return VideoResult(
        video_id=plan.video_id,
        plan_id=plan.plan_id,
        tracks=final,
        samples=sum(r.samples for r in ordered),
        frames_decoded=sum(r.frames_decoded for r in ordered),
        scene_cuts=sum(r.scene_cuts for r in ordered),
        model=ordered[0].model if ordered else "",
        timings_ms={k: round(v, 3) for k, v in timings.items()},
    )
