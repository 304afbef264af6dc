"""Decoded frames → the sampled frames we run detection on.

Sampling rule (exact, chunk-independent): grid points are ``k / fps`` seconds
from the stream start. A decoded frame is a *grid sample* when at least one
grid point falls in ``(t_prev, t]`` (``t_prev`` = the previous frame's time),
i.e. it is the frame on screen right after the grid point. The decision needs
only the frame and its predecessor, so a chunk that seeks back a little
before its start (to a keyframe, decoding a second of warm-up frames it does
not sample) picks exactly the frames a single pass over the whole video would:
every frame is sampled by exactly one chunk, with no drift at boundaries.
Timestamps come from each frame's pts, so variable-frame-rate video is
sampled by time, not by frame count.

Scene cuts: a frame whose 64x36 luma thumbnail differs from its predecessor's
by more than ``scene_cut_threshold`` (mean absolute difference, 0..1) starts a
new shot. Both sides of the cut are sampled too - the first frame of the new
shot and the last frame of the old one - so an appearance that starts or ends
at a cut starts or ends exactly there; the new shot's frame is flagged so the
tracker does not carry boxes across it. A cut closer than
``scene_cut_min_gap_s`` to the previous cut adds nothing (strobes and flashes
would otherwise sample every frame). The decision again needs only a
frame and its predecessor, so chunks agree: a chunk that meets a cut on the
first frame past its end samples its own last frame before it stops. The last
frame of the stream is sampled as well, so a span that runs to the end of the
video ends exactly there.

Rotation: phones store portrait video sideways plus a display matrix; FFmpeg
exposes it per frame (``VideoFrame.rotation``, degrees counter-clockwise) and
we turn the pixels upright before detection, as a viewer would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final

import av
import av.error
import av.video.frame
import cv2
import numpy as np
import numpy.typing as npt

from facesearch.errors import InvalidVideo, VideoTooLong
from facesearch.video.probe import Source, check_frame_size, open_input, video_stream
from facesearch.video.settings import VideoSettings
from facesearch.vision.types import ImageArray

THUMB_SIZE: Final = (64, 36)  # width, height of the scene-cut thumbnail
_FULL_RANGE: Final = 2  # AVCOL_RANGE_JPEG; unspecified and MPEG mean 16-235 luma
_LUMA_FIRST: Final = frozenset(  # 8-bit formats whose first plane is the full-size luma
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)
WARMUP_S: Final = Fraction(1)  # decoded before a chunk's start: a predecessor frame for the rules
TRUNCATION_SLACK_S: Final = 1.0  # a stream may end this much before its declared duration


@dataclass(frozen=True, eq=False)
class Sample:
    """One frame chosen for detection."""

    t_ms: int  # presentation time from the stream start, milliseconds
    rgb: ImageArray  # (H, W, 3) uint8, upright
    grid: bool  # covers a grid point (False: sampled only because it starts a shot)
    cut: bool  # the first frame of a new shot
    rotation: int  # degrees counter-clockwise that were applied


@dataclass
class DecodeStats:
    """Counters one pass fills in (the caller reads them after the iterator ends)."""

    frames_decoded: int = 0
    samples: int = 0
    scene_cuts: int = 0
    decode_errors: int = 0
    first_sample_ms: int | None = None
    last_sample_ms: int | None = None
    last_frame_ms: int | None = None
    cut_scores: list[float] = field(default_factory=list)


def frame_time(pts: int, origin: int, time_base: Fraction) -> Fraction:
    """Seconds from the stream start, exactly."""
    return (pts - origin) * time_base


def covers_grid_point(previous: Fraction | None, current: Fraction, fps: Fraction) -> bool:
    """Does a grid point ``k / fps`` lie in ``(previous, current]``? (True for the first frame.)"""
    if previous is None:
        return True
    return math.floor(current * fps) > math.floor(previous * fps)


def thumbnail(frame: av.video.frame.VideoFrame) -> npt.NDArray[np.float32]:
    """A tiny grey copy for shot-change detection, computed for every decoded frame.

    For the usual 8-bit YUV layouts the luma plane is read in place, decimated and
    area-averaged (about 0.1 ms at 720p, against 5 ms for a swscale conversion:
    at 30 fps that is the difference between a free and a costly cut detector);
    other pixel formats go through swscale.
    """
    width, height = THUMB_SIZE
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        luma = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        luma = luma[: frame.height, : frame.width]
        step = max(1, min(frame.height // (4 * height), frame.width // (4 * width)))
        small = cv2.resize(luma[::step, ::step], (width, height), interpolation=cv2.INTER_AREA)
        grey = np.asarray(small, dtype=np.float32)
        if not (frame.format.name.startswith("yuvj") or frame.color_range == _FULL_RANGE):
            grey = np.clip((grey - 16.0) * (255.0 / 219.0), 0.0, 255.0)  # limited (TV) range
        return grey / 255.0
    small = frame.reformat(width=width, height=height, format="gray").to_ndarray()
    return np.asarray(small, dtype=np.float32) / 255.0


def cut_score(previous: npt.NDArray[np.float32], current: npt.NDArray[np.float32]) -> float:
    """Mean absolute luma difference of two thumbnails, 0..1."""
    return float(np.mean(np.abs(current - previous)))


def upright(frame: av.video.frame.VideoFrame) -> tuple[ImageArray, int]:
    """RGB pixels turned as the display matrix says; returns (pixels, degrees applied)."""
    rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    rotation = int(frame.rotation or 0)
    quarter_turns = round(rotation / 90) % 4
    if quarter_turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, quarter_turns))
    return rgb, quarter_turns * 90


def iter_samples(
    source: Source,
    settings: VideoSettings,
    *,
    start_ms: int = 0,
    end_ms: int | None = None,
    stats: DecodeStats | None = None,
) -> Iterator[Sample]:
    """Sampled frames with ``start_ms <= t < end_ms`` (``end_ms`` None: to the end).

    Raises ``InvalidVideo`` for undecodable or truncated data, ``VideoTooLong`` when
    frames run past the duration cap (a header that understated it), and
    ``VideoTooLarge``/``VideoTooSmall`` when a frame's size breaks the caps.
    """
    stats = stats if stats is not None else DecodeStats()
    fps = Fraction(settings.fps).limit_denominator(1000)
    start = Fraction(start_ms, 1000)
    end = None if end_ms is None else Fraction(end_ms, 1000)
    min_gap = Fraction(settings.scene_cut_min_gap_s).limit_denominator(1000)
    with open_input(source) as container:
        stream = video_stream(container)
        stream.thread_type = "AUTO"
        if settings.decode_threads:
            stream.codec_context.thread_count = settings.decode_threads
        time_base = stream.time_base or Fraction(1, 90_000)
        origin = stream.start_time or 0
        declared = _declared_duration(stream)
        if start > 0:
            target = origin + int((start - WARMUP_S) / time_base)
            try:
                container.seek(max(target, origin), stream=stream, backward=True)
            except av.error.FFmpegError:  # unseekable: decode the warm-up from the start
                container.seek(0)
        previous: av.video.frame.VideoFrame | None = None
        previous_t: Fraction | None = None
        previous_thumb: npt.NDArray[np.float32] | None = None
        previous_taken = False
        last_cut: Fraction | None = None
        for frame in _decoded_frames(container, stream, settings, stats):
            if frame.pts is None:
                continue  # no timestamp, no place on the timeline
            t = frame_time(frame.pts, origin, time_base)
            if previous_t is not None and t <= previous_t:
                continue  # a duplicate or out-of-order timestamp (broken muxing)
            if t > settings.max_duration_s:
                raise VideoTooLong(
                    f"frames run past {settings.max_duration_s:,.0f} s (the header said "
                    f"{float(declared) if declared else 'nothing'} s)"
                )
            thumb = thumbnail(frame)
            score = None if previous_thumb is None else cut_score(previous_thumb, thumb)
            cut = score is not None and score > settings.scene_cut_threshold
            cut = cut and (last_cut is None or t - last_cut >= min_gap)
            shot_end = cut and previous is not None and not previous_taken
            if shot_end and previous is not None and previous_t is not None and previous_t >= start:
                # the last frame of the old shot: its people are seen until exactly here
                yield _sample(previous, previous_t, False, False, settings, stats)
            if end is not None and t >= end:
                break  # (after the shot-end check: a cut right at the boundary is ours)
            stats.frames_decoded += 1
            stats.last_frame_ms = _ms(t)
            if score is not None and t >= start:
                stats.cut_scores.append(score)
            grid = covers_grid_point(previous_t, t, fps)
            previous, previous_t, previous_thumb = frame, t, thumb
            previous_taken = grid or cut
            last_cut = t if cut else last_cut
            if not previous_taken:
                continue
            if t < start:
                continue  # warm-up frame: it only primes the rules above
            stats.scene_cuts += int(cut)
            yield _sample(frame, t, grid, cut, settings, stats)
        else:  # the stream ended (no break): its last frame closes every open span exactly
            ended = previous is not None and previous_t is not None and not previous_taken
            if ended and previous is not None and previous_t is not None and previous_t >= start:
                yield _sample(previous, previous_t, False, False, settings, stats)
        _check_complete(declared, start, end, previous_t, stats)


def _sample(  # noqa: PLR0917 - private helper of iter_samples
    frame: av.video.frame.VideoFrame,
    t: Fraction,
    grid: bool,
    cut: bool,
    settings: VideoSettings,
    stats: DecodeStats,
) -> Sample:
    """Pixels of a chosen frame, upright and size-checked; the counters follow."""
    rgb, rotation = upright(frame)
    check_frame_size(rgb.shape[1], rgb.shape[0], settings)
    stats.samples += 1
    if stats.first_sample_ms is None:
        stats.first_sample_ms = _ms(t)
    stats.last_sample_ms = _ms(t)
    return Sample(t_ms=_ms(t), rgb=rgb, grid=grid, cut=cut, rotation=rotation)


def _ms(t: Fraction) -> int:
    return round(t * 1000)


def _declared_duration(stream: av.video.stream.VideoStream) -> Fraction | None:
    if stream.duration and stream.time_base:
        return stream.duration * stream.time_base
    return None


def _decoded_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    settings: VideoSettings,
    stats: DecodeStats,
) -> Iterator[av.video.frame.VideoFrame]:
    """Frames in presentation order; a corrupt packet is skipped, up to a budget."""
    try:
        packets = container.demux(stream)
        for packet in packets:
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                stats.decode_errors += 1
                if stats.decode_errors > settings.max_decode_errors:
                    raise InvalidVideo(
                        f"the video is corrupt: {stats.decode_errors} undecodable packets "
                        f"(last: {exc})"
                    ) from exc
                continue
            for frame in frames:
                if isinstance(frame, av.video.frame.VideoFrame):
                    yield frame
    except av.error.FFmpegError as exc:  # the demuxer itself gave up
        raise InvalidVideo(f"the video container is corrupt: {exc}") from exc


def _check_complete(
    declared: Fraction | None,
    start: Fraction,
    end: Fraction | None,
    last_t: Fraction | None,
    stats: DecodeStats,
) -> None:
    """A chunk that should hold frames but ended early means the file is cut short."""
    if declared is None:
        if last_t is None and stats.frames_decoded == 0 and start == 0:
            raise InvalidVideo("the video has no decodable frames")
        return
    expected_end = float(declared if end is None else min(end, declared))
    if float(start) >= expected_end:
        return  # nothing of this chunk lies inside the declared duration
    reached = -math.inf if last_t is None else float(last_t)
    if reached < expected_end - TRUNCATION_SLACK_S:
        got = "no frames" if last_t is None else f"frames stop at {reached:.2f} s"
        raise InvalidVideo(
            f"the video is truncated or corrupt: {got}, but the header declares "
            f"{float(declared):.2f} s"
        )
