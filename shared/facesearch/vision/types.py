"""Result types of the vision pipeline.

Landmark order everywhere (MTCNN / insightface convention, from the viewer's
side): 0 left eye, 1 right eye, 2 nose tip, 3 left mouth corner, 4 right mouth corner.
Coordinates are pixels of the decoded (EXIF-oriented) original image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Detection:
    box: FloatArray  # (4,) x1, y1, x2, y2
    score: float
    landmarks: FloatArray  # (5, 2) x, y

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass(frozen=True)
class Quality:
    sharpness: float  # variance of the Laplacian of the aligned grey face
    brightness: float  # mean grey level 0..255
    contrast: float  # grey standard deviation
    face_px: float  # shorter side of the detection box, original pixels
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    score: float  # 0..1 overall
    reasons: tuple[str, ...] = ()  # why the policy rejects it; empty = acceptable

    @property
    def acceptable(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Attributes:
    """Optional per-face attributes (``FACESEARCH_FACE_ATTRIBUTES``); see the README for
    how far each one was checked."""

    gender: str  # "male" | "female"
    gender_score: float  # the model's P(male), 0..1
    model: str  # name@version of the attribute model


@dataclass
class Face:
    index: int
    detection: Detection
    liveness: float | None = None
    quality: Quality | None = None
    embedding: FloatArray | None = None  # L2-normalised
    crop: ImageArray | None = None  # aligned RGB face, embedder input size
    live: bool | None = None  # liveness >= the configured threshold
    attributes: Attributes | None = None  # None unless face attributes are enabled


@dataclass
class ImageResult:
    width: int
    height: int
    faces: list[Face]
    model: str  # embedder model id (name@version)
    timings_ms: dict[str, float] = field(default_factory=dict)
    source_format: str = ""
