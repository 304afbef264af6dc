"""Frame sampling: the grid rule, chunk independence, VFR, scene cuts, rotation."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from facesearch.errors import VideoTooLong
from facesearch.video.frames import (
    DecodeStats,
    Sample,
    covers_grid_point,
    iter_samples,
    thumbnail,
)
from facesearch.video.settings import VideoSettings
from tests.data.video_corpus import pattern, steady, write_video

NO_CUTS = VideoSettings(scene_cut_threshold=1.0)


def grid_samples(times_ms: list[int], fps: float) -> list[int]:
    """Brute force: for every grid point k/fps, the first frame at or after it; and the
    stream's last frame."""
    chosen = []
    k = 0
    while k / fps * 1000 <= times_ms[-1]:
        t = next(t for t in times_ms if t >= k / fps * 1000 - 1e-9)
        if not chosen or chosen[-1] != t:
            chosen.append(t)
        k += 1
    return chosen if chosen[-1] == times_ms[-1] else [*chosen, times_ms[-1]]


def sample_times(samples: list[Sample]) -> list[int]:
    return [s.t_ms for s in samples]


@pytest.fixture(scope="module")
def cfr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("frames") / "cfr.mp4"
    write_video(path, steady(96, 64, 5.0, fps=25.0), gop=12)
    return path


@pytest.fixture(scope="module", params=["mpegts", "webm", "avi"])
def other_container(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The cut clip in containers whose seeking works differently (byte offsets, cues, index)."""
    container = request.param
    codec = {"mpegts": "libx264", "webm": "libvpx-vp9", "avi": "mpeg4"}[container]
    shots = [(0, 1), (1240, 2), (2000, 4), (3480, 5)]
    frames = [
        (t, pattern(96, 64, max(seed for start, seed in shots if start <= t), shift=t // 40))
        for t in range(0, 4000, 40)
    ]
    path = tmp_path_factory.mktemp("frames") / f"cuts.{container}"
    options = {"cpu-used": "8"} if codec == "libvpx-vp9" else None
    write_video(path, frames, codec=codec, container=container, gop=12, options=options)
    return path


def test_chunks_agree_in_other_containers(other_container: Path) -> None:
    whole = [(s.t_ms, s.cut, s.grid) for s in iter_samples(other_container, VideoSettings())]
    parts = []
    for start, end in itertools.pairwise([0, 40, 1960, 2000, 3500, None]):
        assert start is not None
        chunk = iter_samples(other_container, VideoSettings(), start_ms=start, end_ms=end)
        parts.extend((s.t_ms, s.cut, s.grid) for s in chunk)
    assert parts == whole
    assert [t for t, cut, _ in whole if cut] == [1240, 2000, 3480]


@pytest.fixture(scope="module")
def cuts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hard cuts at 1240 ms (between grid points), 2000 ms (on one), 3480 ms, and 4120 ms
    (120 ms after a grid sample)."""
    path = tmp_path_factory.mktemp("frames") / "cuts.mp4"
    shots = [(0, 1), (1240, 2), (2000, 4), (3480, 5), (4120, 6)]  # luma differences >= 0.23
    frames = [
        (t, pattern(96, 64, max(seed for start, seed in shots if start <= t), shift=t // 40))
        for t in range(0, 5000, 40)
    ]
    write_video(path, frames, gop=12)
    return path


@pytest.fixture(scope="module")
def vfr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    rng = np.random.default_rng(3)
    times, t = [], 0
    while t < 6000:
        times.append(t)
        t += 900 if len(times) == 40 else int(rng.integers(7, 120))
    path = tmp_path_factory.mktemp("frames") / "vfr.mkv"
    frames = [(t, pattern(96, 64, 1, shift=i)) for i, t in enumerate(times)]
    write_video(path, frames, container="matroska", gop=15)
    return path, times


def test_covers_grid_point() -> None:
    fps = Fraction(2)
    assert covers_grid_point(None, Fraction(7, 10), fps)
    assert covers_grid_point(Fraction(48, 100), Fraction(52, 100), fps)  # 0.5 in (0.48, 0.52]
    assert covers_grid_point(Fraction(46, 100), Fraction(1, 2), fps)  # grid point hit exactly
    assert not covers_grid_point(Fraction(1, 2), Fraction(54, 100), fps)


@pytest.mark.parametrize("fps", [2.0, 1.0, 3.0, 0.5])
def test_constant_rate_sampling_follows_the_grid(cfr: Path, fps: float) -> None:
    settings = VideoSettings(fps=fps, scene_cut_threshold=1.0)
    samples = list(iter_samples(cfr, settings))
    times = [round(i * 40) for i in range(125)]
    assert sample_times(samples) == grid_samples(times, fps)
    assert all(s.grid and not s.cut for s in samples[:-1])  # the last: the stream's end
    assert samples[0].rgb.shape == (64, 96, 3) and samples[0].rgb.dtype == np.uint8


def test_variable_frame_rate_is_sampled_by_time(vfr: tuple[Path, list[int]]) -> None:
    path, times = vfr
    samples = list(iter_samples(path, NO_CUTS))
    assert sample_times(samples) == grid_samples(times, 2.0)
    gaps = np.diff(sample_times(samples))
    assert gaps.max() >= 900  # the frozen frame covers two grid points: one sample


@pytest.mark.parametrize("bounds", [[0, 1000, 2300, None], [0, 40, 1960, 2000, 3500, None]])
def test_chunks_sample_exactly_what_one_pass_samples(
    cfr: Path, cuts: Path, vfr: tuple[Path, list[int]], bounds: list[int | None]
) -> None:
    """Seek to a keyframe before each chunk, warm up, and pick the same frames: no drift,
    even for a cut right on a chunk boundary (2000 ms)."""
    for path in (cfr, cuts, vfr[0]):
        whole = [(s.t_ms, s.cut, s.grid) for s in iter_samples(path, VideoSettings())]
        parts = []
        for start, end in itertools.pairwise(bounds):
            assert start is not None
            chunk = list(iter_samples(path, VideoSettings(), start_ms=start, end_ms=end))
            assert all(start <= s.t_ms and (end is None or s.t_ms < end) for s in chunk)
            parts.extend((s.t_ms, s.cut, s.grid) for s in chunk)
        assert parts == whole


def test_both_sides_of_a_cut_are_sampled(cuts: Path) -> None:
    stats = DecodeStats()
    samples = list(iter_samples(cuts, VideoSettings(), stats=stats))
    grid = grid_samples(list(range(0, 5000, 40)), 2.0)
    # 1200/1240: last frame of shot 1, first of shot 2; 2000 is a grid sample, so only
    # 1960 is added before it; 3440/3480 and 4080/4120 around the last two cuts
    extra = [1200, 1240, 1960, 3440, 3480, 4080, 4120]
    assert sample_times(samples) == sorted([*grid, *extra])  # grid includes the last, 4960
    assert [s.t_ms for s in samples if s.cut] == [1240, 2000, 3480, 4120]
    assert [s.t_ms for s in samples if not s.grid] == [*extra, 4960]
    assert stats.scene_cuts == 4
    # panning inside a shot scores far below the threshold
    assert sorted(stats.cut_scores)[-5] < VideoSettings().scene_cut_threshold / 3


def test_scene_cut_samples_are_rate_limited(tmp_path: Path) -> None:
    """A strobe (a new picture every frame) does not turn into 25 samples a second."""
    frames = [(t, pattern(96, 64, t // 40)) for t in range(0, 2000, 40)]
    path = tmp_path / "strobe.mp4"
    write_video(path, frames)
    samples = list(iter_samples(path, VideoSettings()))
    min_gap_ms = VideoSettings().scene_cut_min_gap_s * 1000
    cut_times = [s.t_ms for s in samples if s.cut]
    assert len(cut_times) >= 5
    assert min(np.diff(cut_times)) >= min_gap_ms
    assert len(samples) <= 4 + 2 * math.ceil(2000 / min_gap_ms)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_turns_frames_upright(tmp_path: Path, rotation: int) -> None:
    upright = pattern(64, 96, 5)  # portrait: 96 high, 64 wide
    upright[:20, :20] = (255, 0, 0)  # a marker in the top-left corner
    stored = np.ascontiguousarray(np.rot90(upright, -rotation // 90))  # what the phone writes
    path = tmp_path / f"rot{rotation}.mp4"
    write_video(path, [(0, stored), (40, stored)], rotation=rotation)
    sample, last = iter_samples(path, NO_CUTS)  # the grid sample and the stream's last frame
    assert last.t_ms == 40
    assert sample.rotation == rotation
    assert sample.rgb.shape == upright.shape
    difference = np.abs(sample.rgb.astype(int) - upright.astype(int)).mean()
    assert difference < 8, difference
    assert sample.rgb[5:15, 5:15, 0].mean() > 200 and sample.rgb[5:15, 5:15, 2].mean() < 60


def test_decoder_stops_at_the_duration_cap(cfr: Path) -> None:
    with pytest.raises(VideoTooLong):
        list(iter_samples(cfr, VideoSettings(max_duration_s=2.0)))


@pytest.mark.parametrize("size", [(1280, 720), (96, 64), (33, 47)])
def test_fast_thumbnail_matches_swscale(size: tuple[int, int]) -> None:
    """The in-place luma thumbnail agrees with FFmpeg's own grey downscale."""
    width, height = size
    rgb = pattern(width, height, 9)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    fast = thumbnail(frame)
    reference = frame.reformat(width=64, height=36, format="gray").to_ndarray() / 255.0
    assert fast.shape == (36, 64)
    assert float(np.abs(fast - reference).mean()) < 0.02
    # another pixel format takes the swscale path and gives the same picture
    assert float(np.abs(thumbnail(frame.reformat(format="rgb24")) - fast).mean()) < 0.02
