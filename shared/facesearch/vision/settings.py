"""Knobs of the vision pipeline: models, decode limits, detection, liveness, quality.

Flat environment names without a section prefix (``FACESEARCH_EMBEDDER``,
``FACESEARCH_MIN_FACE_PX``; quality knobs ``FACESEARCH_QUALITY_*``). Defaults are
declared here once; the models read them from the section they are given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, NonNegativeFloat, NonNegativeInt, field_validator

from facesearch.section import Count, Fraction, SettingsSection

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_MODELS_DIR = REPO_ROOT / "models"


class VisionSettings(SettingsSection):
    """Which models run, on which ONNX providers, and the detector's limits."""

    # --- models ----------------------------------------------------------------------
    models_dir: Path = DEFAULT_MODELS_DIR
    """Folder holding manifest.json and the model files."""
    embedder: str = "dlib-resnet-v1"
    """Name in models/manifest.json"""
    embedder_path: Path | None = None
    """Override: path to another ONNX embedder (e.g. ArcFace R100)."""
    embedder_sha256: str | None = None
    """Required with embedder_path: the file's pinned sha256."""
    embedder_input: dict[str, Any] | None = None
    """JSON overrides of the custom embedder's input spec (size, layout, channels, mean, std,
    template); defaults are ArcFace 112x112."""
    onnx_providers: str = "auto"
    """Comma list of ORT providers, or 'auto' (CUDA if present)."""
    onnx_threads: NonNegativeInt = 0
    """intra-op threads; 0 = ORT default"""
    embed_batch_size: Count = Field(default=32, le=1024)
    """Faces per embedder call (GPU: larger is faster)."""
    embed_flip: bool = False
    """Test-time augmentation: embed each face and its mirror image, keep the mean (2x embedder
    cost)."""

    # --- decode ----------------------------------------------------------------------
    max_image_bytes: Count = 20 * 1024 * 1024
    """Larger uploads are refused (image-too-large)."""
    max_image_pixels: Count = 50_000_000
    """Pixel cap checked from the header before decoding."""
    min_image_side_px: Count = 16
    """Smaller images are refused (image-too-small)."""

    # --- detection -------------------------------------------------------------------
    detect_max_side_px: int = Field(default=1600, ge=64)
    """Images are downscaled to this for detection."""
    min_face_px: int = Field(default=20, ge=8)
    """Smallest face reported (shorter box side, detection px)."""
    min_face_ratio: NonNegativeFloat = Field(default=0.0, le=0.5)
    """Smallest face as a share of the image's shorter side (0 = off); the detector skips pyramid
    levels that could only find smaller faces."""
    detect_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    """MTCNN P/R/O-Net score thresholds (JSON list)."""
    detect_scale_factor: float = Field(default=0.709, gt=0.1, lt=1.0)
    """MTCNN image-pyramid step."""
    max_faces_per_image: Count = 256
    """Keep at most this many faces (highest scores first)."""

    # --- liveness & matching ---------------------------------------------------------
    liveness_model: str = "liveness-v1"
    """Liveness model name in models/manifest.json"""
    liveness_path: Path | None = None
    """Override: path to another ONNX liveness model (e.g. a MiniFASNet export)."""
    liveness_sha256: str | None = None
    """Required with liveness_path: the file's pinned sha256."""
    liveness_input: dict[str, Any] | None = None
    """JSON overrides of the custom liveness model's input spec (size, layout, channels, mean, std,
    crop, live_index, apply_softmax); defaults are MiniFASNet's 80x80 BGR 0..255, crop 2.7x the
    box, softmax column 1."""
    liveness_threshold: Fraction = 0.5
    """Faces scoring below are flagged live=false."""
    face_attributes: bool = False
    """Add per-face attributes (gender) to every face; off by default: checked on 70 faces only
    (README)."""
    attributes_model: str = "faceres-deep-v1"
    """Attribute model name in models/manifest.json"""
    match_threshold: float | None = None
    """Cosine similarity above which two faces are the same person. None = the calibrated default
    recorded for the embedder in models/manifest.json."""

    @field_validator("onnx_providers")
    @classmethod
    def _providers(cls, value: str) -> str:
        return value.strip() or "auto"


class QualityPolicy(SettingsSection):
    """Which faces count as usable; each limit becomes a human-readable reject reason."""

    env_prefix = "quality_"

    min_face_px: Count = 40
    """Smaller faces are rejected."""
    min_sharpness: NonNegativeFloat = 30.0
    """Variance of the Laplacian of the aligned face."""
    min_brightness: NonNegativeFloat = Field(default=40.0, le=255.0)
    """Mean grey level, 0..255."""
    max_brightness: NonNegativeFloat = Field(default=220.0, le=255.0)
    """Mean grey level, 0..255."""
    min_contrast: NonNegativeFloat = 15.0
    """Grey-level standard deviation."""
    max_yaw_deg: NonNegativeFloat = Field(default=45.0, le=90.0)
    """Head turn estimated from landmarks."""
    max_pitch_deg: NonNegativeFloat = Field(default=40.0, le=90.0)
    """Head tilt estimated from landmarks."""
    max_roll_deg: NonNegativeFloat = Field(default=45.0, le=180.0)
    """In-plane rotation of the eye line."""
