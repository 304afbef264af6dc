"""Video knobs: the ``video`` section of :class:`facesearch.config.Settings`.

Every field maps to the flat environment variable ``FACESEARCH_VIDEO_<FIELD>``
(e.g. ``FACESEARCH_VIDEO_FPS``); nothing here reads the environment itself. Defaults marked
"measured" were chosen with ``python -m tests.bench.video`` (see docs/video.md).
"""

from __future__ import annotations

from typing import Final

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    field_validator,
    model_validator,
)

from facesearch.section import Cosine, Count, Fraction, SettingsSection

#: Codecs we agree to decode. Every name also has a decoder in the PyAV wheel (checked
#: by tests/unit/video/test_codecs.py). FFmpeg carries hundreds of rarely used
#: decoders; an upload service exposes only the ones people actually record with.
DEFAULT_CODECS: Final = (
    "h264",
    "hevc",
    "vp8",
    "vp9",
    "av1",
    "mpeg4",
    "mpeg2video",
    "mpeg1video",
    "mjpeg",
    "prores",
    "theora",
    "vc1",
    "wmv3",
    "h263",
)


class VideoSettings(SettingsSection):
    """Sampling, limits, chunking and tracker thresholds for video ingest."""

    env_prefix = "video_"

    # --- sampling ---------------------------------------------------------------------
    fps: float = Field(default=2.0, gt=0.0, le=30.0)
    """Frames sampled per second of video, on a fixed grid from t=0 (plus scene-cut frames).
    Measured default: 2."""
    scene_cut_threshold: float = Field(default=0.10, gt=0.0, le=1.0)
    """Mean absolute luma difference (0..1) between consecutive 64x36 thumbnails above which a frame
    starts a new shot; the frames on both sides of the cut are sampled too. Measured on the
    clips: motion inside a shot <= 0.053, cuts >= 0.141."""
    scene_cut_min_gap_s: NonNegativeFloat = 0.2
    """A cut closer than this to the previous cut adds no samples (bounds the cost of strobes and
    flashes)."""
    decode_threads: NonNegativeInt = Field(default=0, le=64)
    """FFmpeg decoder threads; 0 = FFmpeg's choice."""
    batch_frames: Count = Field(default=8, le=256)
    """Sampled frames whose faces are embedded in one batched model call."""
    min_face_px: int = Field(default=40, ge=8)
    """Smallest face detected in a video frame (shorter box side, px). Measured default: faces below
    40 px fail the quality policy anyway."""
    max_decode_errors: NonNegativeInt = 16
    """Corrupt packets tolerated per chunk before the video is refused."""

    # --- limits (checked from the container header before decoding) ------------------
    max_bytes: Count = 4 * 1024**3
    """Larger video files are refused (video-too-large)."""
    max_duration_s: PositiveFloat = 4 * 3600.0
    """Longer videos are refused (video-too-long)."""
    max_pixels: Count = 3840 * 2160
    """Frame pixel cap (width x height), checked from the header."""
    min_side_px: Count = 32
    """Frames with a shorter side are refused (video-too-small)."""
    max_aspect_ratio: float = Field(default=8.0, ge=1.0)
    """Longer/shorter side above this is refused as absurd."""
    codecs: tuple[str, ...] = Field(default=DEFAULT_CODECS, min_length=1)
    """FFmpeg codec names accepted (JSON list); others are unsupported-codec."""

    fetch_max_bytes: Count = 512 * 1024**2
    """Largest video fetched from a URL (Cloudinary video uploads); the planner holds it in memory
    once and stages it in the crops bucket for the chunks."""
    fetch_timeout_s: PositiveFloat = 300.0
    """Deadline of one video download from a URL."""

    # --- chunking ---------------------------------------------------------------------
    chunk_s: float = Field(default=60.0, ge=1.0)
    """Length of the time chunks one instance processes; a long video is split into chunks processed
    in parallel and stitched."""

    # --- tracking ---------------------------------------------------------------------
    track_confirm_hits: Count = 2
    """Detections (counted after stitching) before a track is reported: a face seen in one sampled
    frame only is dropped as a likely false detection."""
    track_min_iou: Fraction = 0.2
    """Box overlap that, with track_link_similarity, continues a track between consecutive samples
    (0.2: the face moved at most 2/3 of its width)."""
    track_link_similarity: Cosine = 0.90
    """Cosine similarity needed, with overlap, to continue a track. Measured on faces-dev: every
    genuine pair passes, 1.8% of impostor pairs do."""
    track_reid_similarity: Cosine = 0.93
    """Cosine similarity of track means that joins two tracks without any spatial cue (after a cut,
    a gap, or across chunks). Measured on faces-dev: 99.2% of genuine pairs pass, 0.05% of
    impostor pairs (one look-alike pair) do."""
    track_max_missed: NonNegativeInt = 2
    """Grid samples a face may be missed (not detected) and its track still continue by overlap; the
    same window ((missed + 1) / fps) bridges a span, so one missed detection does not split it."""

    @field_validator("codecs")
    @classmethod
    def _lowercase(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.strip().lower() for name in value if name.strip())

    @model_validator(mode="after")
    def _consistent(self) -> VideoSettings:
        if self.track_reid_similarity < self.track_link_similarity:
            raise ValueError(
                "track_reid_similarity must be >= track_link_similarity (re-identification "
                "without a spatial cue cannot be looser than continuation with one)"
            )
        return self

    @property
    def interval_s(self) -> float:
        """Seconds between grid samples."""
        return 1.0 / self.fps
