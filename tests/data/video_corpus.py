"""Small generated videos for unit tests: a clip writer, and a corpus of bad videos.

Built on the fly with PyAV (no binary fixtures in git). Each corpus case names
the outcome the video pipeline must give: "ok" or the typed error ``code``
(``facesearch.errors``), plus the settings it is checked under.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

RGB = npt.NDArray[np.uint8]


def pattern(width: int, height: int, seed: int, shift: int = 0) -> RGB:
    """A smooth seed-specific picture, moved by ``shift``: cheap to encode, easy to tell apart."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    fx, fy, phase = rng.uniform(0.02, 0.08), rng.uniform(0.02, 0.08), rng.uniform(0, 6.28)
    base = rng.uniform(60, 190, 3)
    wave = np.sin((xs + shift) * fx + phase)[..., None] * 50 + np.cos(ys * fy)[..., None] * 40
    return np.clip(base + wave, 0, 255).astype(np.uint8)


def write_video(
    path: Path | io.BytesIO,
    frames: Iterable[tuple[int, RGB]],
    *,
    codec: str = "libx264",
    container: str = "mp4",
    rotation: int = 0,
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
) -> None:
    """Encode ``(t_ms, rgb)`` frames with exact millisecond timestamps."""
    items = list(frames)
    height, width = items[0][1].shape[:2]
    target = str(path) if isinstance(path, Path) else path
    with av.open(target, "w", format=container) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # MPEG-1/2 allow only standard frame rates: those clips keep the 25 fps clock
        clock = Fraction(1, 25) if codec in ("mpeg1video", "mpeg2video") else Fraction(1, 1000)
        stream.codec_context.time_base = clock
        stream.time_base = clock
        stream.options = options or ({"preset": "ultrafast"} if codec == "libx264" else {})
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        for t_ms, rgb in items:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = round(Fraction(t_ms, 1000) / clock)
            frame.time_base = clock
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def steady(
    width: int, height: int, seconds: float, fps: float = 25.0, seed: int = 0
) -> list[tuple[int, RGB]]:
    """A slowly panning pattern at a constant frame rate."""
    count = round(seconds * fps)
    return [(round(i * 1000 / fps), pattern(width, height, seed, shift=i)) for i in range(count)]


def encode_bytes(frames: Iterable[tuple[int, RGB]], **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    write_video(buffer, frames, **kwargs)
    return buffer.getvalue()


def audio_only_m4a() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100)
        for i in range(40):
            samples = np.zeros((1, 1024), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 44100
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def faststart_mp4(folder: Path, frames: list[tuple[int, RGB]]) -> bytes:
    """An MP4 with its index (moov) before the media data, as streaming uploads are."""
    plain = folder / "plain.mp4"
    moved = folder / "faststart.mp4"
    write_video(plain, frames)
    with (
        av.open(str(plain)) as src,
        av.open(str(moved), "w", format="mp4", options={"movflags": "faststart"}) as dst,
    ):
        source = src.streams.video[0]
        stream = dst.add_stream_from_template(source)
        for packet in src.demux(source):
            if packet.dts is None:
                continue
            packet.stream = stream
            dst.mux(packet)
    return moved.read_bytes()


@dataclass(frozen=True)
class VideoCase:
    name: str
    data: bytes
    outcome: str  # "ok" or the error code
    why: str
    settings: dict[str, Any] = field(default_factory=dict)


def build_corpus(folder: Path) -> list[VideoCase]:
    """Bad (and a few good) videos, each with its documented outcome."""
    good = steady(96, 64, 2.0)
    mp4 = encode_bytes(good)
    fast = faststart_mp4(folder, steady(96, 64, 4.0))
    rng = np.random.default_rng(7)
    unknown_fourcc = bytearray(encode_bytes(good, codec="mpeg4", container="avi"))
    for tag in (b"FMP4", b"mp4v"):  # the AVI stream header and the BITMAPINFOHEADER
        position = unknown_fourcc.find(tag)
        while position >= 0:
            unknown_fourcc[position : position + 4] = b"ZZZZ"
            position = unknown_fourcc.find(tag)
    ten_hours = [(i * 60_000, pattern(32, 32, 3, shift=i % 7)) for i in range(601)]
    return [
        VideoCase("empty", b"", "invalid-video", "zero bytes"),
        VideoCase("text", b"hello, this is not a video\n" * 50, "invalid-video", "no signature"),
        VideoCase(
            "random_bytes",
            rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
            "invalid-video",
            "no signature",
        ),
        VideoCase(
            "jpeg_image",
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(500),
            "invalid-video",
            "an image is not a video (sniffed by content)",
        ),
        VideoCase(
            "heic_image",
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(500),
            "invalid-video",
            "an ISO-BMFF image brand is not a video",
        ),
        VideoCase(
            "ftyp_then_garbage",
            b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
            + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
            "invalid-video",
            "right signature, corrupt container",
        ),
        VideoCase(
            "ebml_then_garbage",
            b"\x1a\x45\xdf\xa3\x84\x42\x82\x84webm"
            + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
            "invalid-video",
            "WebM signature, corrupt container",
        ),
        VideoCase(
            "truncated_index_at_end",
            mp4[: len(mp4) // 2],
            "invalid-video",
            "MP4 cut in half: the index (moov, written last) is gone",
        ),
        VideoCase(
            "truncated_faststart",
            fast[: int(len(fast) * 0.6)],
            "invalid-video",
            "MP4 with its index first, cut short: frames stop before the declared end",
        ),
        VideoCase(
            "header_only",
            fast[: fast.find(b"mdat") + 4],
            "invalid-video",
            "a complete index that promises 4 s, and no media data: zero frames",
        ),
        VideoCase("audio_only", audio_only_m4a(), "no-video-stream", "AAC in MP4, no picture"),
        VideoCase(
            "unsupported_codec",
            encode_bytes(good, codec="ffv1", container="matroska"),
            "unsupported-codec",
            "FFV1 (archival lossless) is decodable but not on the accepted list",
        ),
        VideoCase(
            "unknown_fourcc",
            bytes(unknown_fourcc),
            "unsupported-codec",
            "an AVI whose codec tag no decoder knows",
        ),
        VideoCase(
            "tiny_frames",
            encode_bytes(steady(16, 16, 1.0)),
            "video-too-small",
            "16x16 frames cannot hold a detectable face",
        ),
        VideoCase(
            "absurd_aspect",
            encode_bytes(steady(640, 32, 1.0)),
            "video-too-small",
            "20:1 frames",
        ),
        VideoCase(
            "too_many_pixels",
            encode_bytes([(0, pattern(4096, 2304, 1))]),
            "video-too-large",
            "9.4 MP frames over the 8.3 MP (4K UHD) cap, refused from the header",
        ),
        VideoCase(
            "too_many_bytes",
            mp4,
            "video-too-large",
            "a file over max_bytes",
            settings={"max_bytes": 1000},
        ),
        VideoCase(
            "ten_hours",
            encode_bytes(ten_hours),
            "video-too-long",
            "a real 10-hour video (one frame a minute) over the 4-hour cap",
        ),
        VideoCase(
            "ten_hours_allowed",
            encode_bytes(ten_hours),
            "ok",
            "the same video with max_duration_s raised: it is planned into chunks",
            settings={"max_duration_s": 11 * 3600.0},
        ),
        VideoCase("mp4_h264", mp4, "ok", "baseline good case"),
        VideoCase(
            "mpegts_h264",
            encode_bytes(good, container="mpegts"),
            "ok",
            "transport stream (starts at a non-zero timestamp)",
        ),
        VideoCase("mov_h264", encode_bytes(good, container="mov"), "ok", "QuickTime container"),
        VideoCase(
            "avi_mpeg4",
            encode_bytes(good, codec="mpeg4", container="avi"),
            "ok",
            "AVI with MPEG-4 Part 2",
        ),
        VideoCase(
            "webm_vp9",
            encode_bytes(good, codec="libvpx-vp9", container="webm", options={"cpu-used": "8"}),
            "ok",
            "WebM with VP9",
        ),
    ]
