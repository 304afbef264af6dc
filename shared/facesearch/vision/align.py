"""Face alignment: a similarity transform of 5 landmarks onto an embedder's template.

Pure geometry, no model code. Each embedder declares the template (5 points in
its own input pixel coordinates) that matches how its training crops were made;
aligning onto the wrong template costs accuracy silently, so it lives with the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from facesearch.vision.types import Detection, FloatArray, ImageArray

# insightface / ArcFace 112x112 template (for ArcFace-class embedders).
ARCFACE_112_TEMPLATE: FloatArray = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(src: npt.ArrayLike, dst: npt.ArrayLike) -> FloatArray:
    """Least-squares similarity (Umeyama, no reflection) mapping src points onto dst.

    Returns a 2x3 matrix. Deterministic and exact for 5 points, unlike RANSAC-based
    estimators whose inlier choice can flip on near-degenerate landmarks.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / n
    scale = float((s * d).sum() / src_var) if src_var > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    matrix = np.empty((2, 3), dtype=np.float32)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = translation
    return matrix


def align_face(
    image: ImageArray, landmarks: FloatArray, template: FloatArray, size: tuple[int, int]
) -> ImageArray:
    """Warp ``image`` so ``landmarks`` land on ``template``; ``size`` is (width, height)."""
    matrix = similarity_transform(landmarks, template)
    warped = cv2.warpAffine(
        image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(warped, dtype=np.uint8)


class Aligner(Protocol):
    """Cuts the embedder's input crop for every detection of one image."""

    @property
    def name(self) -> str: ...

    def crops(self, image: ImageArray, detections: Sequence[Detection]) -> list[ImageArray]: ...


@dataclass(frozen=True)
class TemplateAligner:
    """MTCNN's 5 landmarks warped onto a fixed template (ArcFace-class embedders)."""

    template: FloatArray  # (5, 2) in crop pixels
    size: tuple[int, int]  # (height, width)
    name: str = "template"

    def crops(self, image: ImageArray, detections: Sequence[Detection]) -> list[ImageArray]:
        height, width = self.size
        return [align_face(image, d.landmarks, self.template, (width, height)) for d in detections]
