"""Header-level checks: is this a video we accept, before a single frame is decoded.

Order matters for cost and safety: size (free), magic bytes (4 kB read), then
FFmpeg's demuxer reads only the container header (``probesize`` bounded) and we
refuse, from what it declares, audio-only files, codecs outside the accepted
list, absurd or oversized frames and over-long durations. Decoding (the
expensive and riskier part) starts only after all of that has passed, so a
10-hour or 16K upload costs a header read, not a decode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Final

import av
import av.container
import av.error
import av.stream
import av.video.stream

from facesearch.errors import (
    InvalidVideo,
    NoVideoStream,
    UnsupportedCodec,
    VideoTooLarge,
    VideoTooLong,
    VideoTooSmall,
)
from facesearch.video.settings import VideoSettings
from facesearch.video.sniff import SNIFF_BYTES, sniff_container
from facesearch.video.types import VideoInfo

Source = str | os.PathLike[str] | BinaryIO
#: Bounds on how much FFmpeg may read while probing the header (bytes / microseconds).
PROBE_OPTIONS: Final = {"probesize": str(8 * 1024 * 1024), "analyzeduration": str(10_000_000)}


def source_size(source: Source) -> int:
    """Byte size of a path or a seekable file object (its position is restored)."""
    if isinstance(source, str | os.PathLike):
        return Path(source).stat().st_size
    position = source.tell()
    try:
        return source.seek(0, os.SEEK_END)
    finally:
        source.seek(position)


def read_head(source: Source, count: int = SNIFF_BYTES) -> bytes:
    if isinstance(source, str | os.PathLike):
        with Path(source).open("rb") as handle:
            return handle.read(count)
    position = source.tell()
    try:
        source.seek(0)
        return source.read(count)
    finally:
        source.seek(position)


@contextmanager
def open_input(source: Source) -> Iterator[av.container.InputContainer]:
    """Open a container for reading; any FFmpeg failure becomes InvalidVideo."""
    if not isinstance(source, str | os.PathLike):
        source.seek(0)
    try:
        container = av.open(
            source if not isinstance(source, os.PathLike) else os.fspath(source),
            mode="r",
            options=PROBE_OPTIONS,
        )
    except av.error.FFmpegError as exc:
        raise InvalidVideo(f"the video container is corrupt or unreadable: {exc}") from exc
    try:
        yield container
    finally:
        container.close()


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first real picture track (cover art in an audio file does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = sorted({s.type for s in container.streams} - {"video"})
    what = f"only {', '.join(kinds)} tracks" if kinds else "no tracks"
    raise NoVideoStream(f"the file has no video track ({what}); audio-only files are refused")


def stream_duration_s(
    stream: av.video.stream.VideoStream, container: av.container.InputContainer
) -> float | None:
    """The picture track's declared duration, else the container's, else None."""
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return float(Fraction(container.duration, av.time_base))
    return None


def probe(source: Source, settings: VideoSettings, *, size_bytes: int | None = None) -> VideoInfo:
    """Check a video against every header-level limit; raise a typed error or return its info."""
    size = source_size(source) if size_bytes is None else size_bytes
    if size <= 0:
        raise InvalidVideo("the video is empty (0 bytes)")
    if size > settings.max_bytes:
        raise VideoTooLarge(f"the video is {size:,} bytes; the limit is {settings.max_bytes:,}")
    family = sniff_container(read_head(source))
    if family is None:
        raise InvalidVideo(
            "not a video: the content does not start with the signature of a supported "
            "container (MP4/MOV, Matroska/WebM, AVI, MPEG-TS)"
        )
    with open_input(source) as container:
        stream = video_stream(container)
        info = _info(container, stream, family, size)
    check_limits(info, settings)
    return info


def _info(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    family: str,
    size: int,
) -> VideoInfo:
    context = stream.codec_context
    if context is None or context.codec is None:
        raise UnsupportedCodec("the video track's codec is unknown to this decoder build")
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(
        container=family,
        format_name=container.format.name,
        codec=context.codec.canonical_name,
        decoder=context.codec.name,
        width=int(context.width),
        height=int(context.height),
        duration_s=stream_duration_s(stream, container),
        frame_rate=float(rate) if rate else None,
        frames=int(stream.frames) if stream.frames else None,
        size_bytes=size,
        bit_rate=int(container.bit_rate) if container.bit_rate else None,
        has_audio=bool(container.streams.audio),
    )


def check_limits(info: VideoInfo, settings: VideoSettings) -> None:
    """Codec, frame size and duration caps (shared by probe and the decoder's re-checks)."""
    if info.codec not in settings.codecs:
        raise UnsupportedCodec(
            f"the video codec {info.codec!r} is not accepted; accepted: "
            f"{', '.join(settings.codecs)}"
        )
    check_frame_size(info.width, info.height, settings)
    if info.duration_s is not None:
        if info.duration_s <= 0:
            raise InvalidVideo("the video has zero length")
        if info.duration_s > settings.max_duration_s:
            raise VideoTooLong(
                f"the video lasts {info.duration_s:,.1f} s; the limit is "
                f"{settings.max_duration_s:,.0f} s"
            )


def check_frame_size(width: int, height: int, settings: VideoSettings) -> None:
    if width <= 0 or height <= 0:
        raise InvalidVideo(f"the video declares an impossible frame size {width}x{height}")
    if width * height > settings.max_pixels:
        raise VideoTooLarge(
            f"frames are {width}x{height} = {width * height:,} pixels; the limit is "
            f"{settings.max_pixels:,} (checked before decoding)"
        )
    if min(width, height) < settings.min_side_px:
        raise VideoTooSmall(
            f"frames are {width}x{height}; faces need at least {settings.min_side_px} px per side"
        )
    if max(width, height) / min(width, height) > settings.max_aspect_ratio:
        raise VideoTooSmall(
            f"frames are {width}x{height}, an aspect ratio above {settings.max_aspect_ratio:g}:1"
        )
