"""Chunk planner (ids, bounds, limits), progress, and stitching across chunk boundaries."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facesearch.errors import IncompleteVideo, InvalidVideo, VideoTooLong
from facesearch.video.chunks import plan_chunks, progress, stitch
from facesearch.video.settings import VideoSettings
from facesearch.video.tracker import Tracker, chunk_tracks
from facesearch.video.types import ChunkPlan, ChunkResult, VideoInfo, VideoResult
from tests.unit.video.synthetic import box_at, face, identity_vector, jittered


def info(duration_s: float | None) -> VideoInfo:
    return VideoInfo(
        container="mp4",
        format_name="mov,mp4",
        codec="h264",
        decoder="h264",
        width=1280,
        height=720,
        duration_s=duration_s,
        frame_rate=25.0,
        frames=None,
        size_bytes=1000,
        bit_rate=None,
        has_audio=False,
    )


def test_plan_bounds_cover_the_video_once() -> None:
    plan = plan_chunks("vid", info(150.0), VideoSettings())
    assert [(c.start_ms, c.end_ms) for c in plan.chunks] == [
        (0, 60_000),
        (60_000, 120_000),
        (120_000, None),
    ]
    assert [c.index for c in plan.chunks] == [0, 1, 2]
    assert plan.duration_ms == 150_000 and plan.total == 3


def test_short_tail_joins_the_previous_chunk() -> None:
    plan = plan_chunks("vid", info(125.0), VideoSettings())
    assert [(c.start_ms, c.end_ms) for c in plan.chunks] == [(0, 60_000), (60_000, None)]


def test_ids_are_stable_and_depend_on_what_changes_results() -> None:
    settings = VideoSettings()
    first, again = (
        plan_chunks("vid", info(150.0), settings),
        plan_chunks("vid", info(150.0), settings),
    )
    assert first == again  # a redelivered event plans the same ids
    ids = [c.chunk_id for c in first.chunks]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"vid-{first.plan_id}-") for i in ids)
    other_fps = plan_chunks("vid", info(150.0), VideoSettings(fps=3.0))
    other_video = plan_chunks("vid2", info(150.0), settings)
    assert first.plan_id not in (other_fps.plan_id, other_video.plan_id)
    assert first.chunk(ids[1]).index == 1
    with pytest.raises(KeyError):
        first.chunk("nope")


def test_unknown_duration_is_one_open_chunk() -> None:
    plan = plan_chunks("vid", info(None), VideoSettings())
    assert [(c.start_ms, c.end_ms) for c in plan.chunks] == [(0, None)]


def test_planner_refuses_too_long_and_empty_ids() -> None:
    with pytest.raises(VideoTooLong):
        plan_chunks("vid", info(10 * 3600.0), VideoSettings())
    with pytest.raises(InvalidVideo):
        plan_chunks("", info(10.0), VideoSettings())
    assert (
        plan_chunks("vid", info(10 * 3600.0), VideoSettings(max_duration_s=36_000.0)).total == 600
    )


def test_progress_counts_only_this_plans_chunks() -> None:
    plan = plan_chunks("vid", info(150.0), VideoSettings())
    ids = [c.chunk_id for c in plan.chunks]
    assert progress(plan, []).fraction == 0.0
    half = progress(plan, [ids[0], ids[0], "vid-other-1"])
    assert (half.done, half.total, half.complete) == (1, 3, False)
    assert progress(plan, ids).complete


# --- stitching -----------------------------------------------------------------------------

SAMPLE_MS = 500  # the default 2 fps grid
PEOPLE = 5  # persons 0 and 3 (1 and 4) stand in the same place: position alone cannot tell them


def chunk_results(
    plan: ChunkPlan, appearances: dict[int, set[int]], samples: int, settings: VideoSettings
) -> list[ChunkResult]:
    """What each chunk's instance would report for people seen at these sample indices."""
    results = []
    for chunk in plan.chunks:
        end = samples * SAMPLE_MS if chunk.end_ms is None else chunk.end_ms
        times = [i * SAMPLE_MS for i in range(samples) if chunk.start_ms <= i * SAMPLE_MS < end]
        tracker = Tracker(settings=settings, video_id=plan.video_id, id_prefix=chunk.chunk_id)
        for t in times:
            faces = [
                face(box_at(50 + 150 * (person % 3)), jittered(identity_vector(person), t + person))
                for person, seen in appearances.items()
                if t // SAMPLE_MS in seen
            ]
            tracker.update(t, faces)
        tracks = chunk_tracks(
            tracker.finish(),
            video_id=plan.video_id,
            id_prefix=chunk.chunk_id,
            settings=settings,
        )
        results.append(
            ChunkResult(
                video_id=plan.video_id,
                plan_id=plan.plan_id,
                chunk=chunk,
                tracks=tracks,
                samples=len(times),
                frames_decoded=len(times),
                scene_cuts=0,
                first_sample_ms=times[0] if times else None,
                last_sample_ms=times[-1] if times else None,
                model="fake@1",
            )
        )
    return results


def summary(video: VideoResult) -> list[tuple[int, tuple[int, ...], tuple[tuple[int, int], ...]]]:
    """Per track: the person (nearest identity vector), observation times, spans."""
    people = np.stack([identity_vector(p) for p in range(PEOPLE)])
    return sorted(
        (
            int(np.argmax(people @ t.mean_embedding)),
            tuple(o.t_ms for o in t.observations),
            tuple((s.start_ms, s.end_ms) for s in t.spans),
        )
        for t in video.tracks
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    samples=st.integers(4, 60),
    chunk_s=st.sampled_from([1.0, 1.5, 2.0, 3.5, 7.0, 60.0]),
    appearances=st.dictionaries(
        st.integers(0, PEOPLE - 1), st.sets(st.integers(0, 59), min_size=1, max_size=40), max_size=4
    ),
)
def test_chunked_equals_whole(
    samples: int, chunk_s: float, appearances: dict[int, set[int]]
) -> None:
    """However the video is cut into chunks, the stitched tracks are the whole-video tracks,
    and they are right: one per person seen at least twice, holding exactly their sightings."""
    whole_settings = VideoSettings(chunk_s=3600.0)
    chunked_settings = VideoSettings(chunk_s=chunk_s)
    duration = samples * SAMPLE_MS / 1000.0
    whole_plan = plan_chunks("vid", info(duration), whole_settings)
    chunked_plan = plan_chunks("vid", info(duration), chunked_settings)
    whole = stitch(
        whole_plan, chunk_results(whole_plan, appearances, samples, whole_settings), whole_settings
    )
    chunked = stitch(
        chunked_plan,
        chunk_results(chunked_plan, appearances, samples, chunked_settings),
        chunked_settings,
    )
    assert summary(chunked) == summary(whole)
    # and the truth: one track per person seen at least track_confirm_hits times
    seen = {p: {i for i in s if i < samples} for p, s in appearances.items()}
    expected = sorted(
        (p, tuple(i * SAMPLE_MS for i in sorted(s))) for p, s in seen.items() if len(s) >= 2
    )
    assert [(person, times) for person, times, _ in summary(whole)] == expected
    ids = [t.track_id for t in chunked.tracks]
    assert ids == [f"vid-t{n}" for n in range(len(ids))]
    assert all(t.best.track_id == t.track_id for t in chunked.tracks)


def test_stitch_ignores_redelivered_duplicates_and_needs_every_chunk() -> None:
    settings = VideoSettings(chunk_s=2.0)
    plan = plan_chunks("vid", info(6.0), settings)
    results = chunk_results(plan, {0: set(range(12)), 1: {2, 3, 9, 10}}, 12, settings)
    once = stitch(plan, results, settings)
    twice = stitch(plan, results + results[::-1], settings)
    assert summary(once) == summary(twice)
    assert [len(t.spans) for t in once.tracks] == [1, 2]
    with pytest.raises(IncompleteVideo) as missing:
        stitch(plan, results[:-1], settings)
    assert missing.value.retryable
    foreign = replace(results[0], plan_id="other")
    with pytest.raises(InvalidVideo, match="belongs to plan"):
        stitch(plan, [foreign, *results[1:]], settings)
    mixed = replace(results[0], model="other@2")
    with pytest.raises(InvalidVideo, match="different models"):
        stitch(plan, [mixed, *results[1:]], settings)
