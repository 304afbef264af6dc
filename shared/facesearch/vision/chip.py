"""dlib's face chip: ``get_face_chip_details`` + ``extract_image_chip``, in numpy.

Pure geometry, no model code. dlib's ResNet descriptor was trained on chips made this
way (150 px, padding 0.25, from its 5-point predictor's landmarks), so reproducing
the cut — not just the landmark template — is part of feeding it what it knows:

- The chip is the similarity transform that best maps dlib's 5-point template
  (``TEMPLATE5``, unit square, padded) onto the landmarks; dlib keeps its angle and
  scale and the image point of the chip centre (``chip_details``).
- Faces larger than the chip are not sampled directly: dlib first builds an image
  pyramid (``pyramid_down<2>``: a separable [1 4 6 4 1] / 16 filter, then 2:1
  decimation, pixel ``p`` of a level lying at ``p / 2 - (1.25, 0.75)`` of the next)
  and samples the coarsest level still at least the chip's size. Bilinear sampling of
  a 400 px face straight down to 150 px aliases; the pyramid does not.
- Bilinear samples are truncated to uint8 (dlib's ``static_cast``); a sample whose
  2x2 neighbourhood leaves the image is black.

Mirrors ``dlib/image_transforms/interpolation.h`` and ``image_pyramid.h``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
import numpy.typing as npt

from facesearch.vision.align import similarity_transform
from facesearch.vision.types import FloatArray, ImageArray

#: dlib's 5-point template (its predictor's part order), unit square before padding.
TEMPLATE5: Final = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)
CHIP_SIZE: Final = 150
CHIP_PADDING: Final = 0.25

Rect = tuple[float, float, float, float]  # left, top, right, bottom (inclusive, float)


def chip_template(size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> FloatArray:
    """The 5 template points in chip pixels."""
    return ((padding + TEMPLATE5) * (1.0 / (2 * padding + 1)) * size).astype(np.float32)


@dataclass(frozen=True)
class ChipDetails:
    """dlib's ``chip_details``: a rotated rectangle of the image and the chip size."""

    rect: Rect
    angle: float
    size: int

    @classmethod
    def for_landmarks(
        cls, points: npt.ArrayLike, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
    ) -> ChipDetails:
        """``get_face_chip_details`` for dlib's 5 points (its part order), in image pixels."""
        landmarks = np.asarray(points, dtype=np.float64).reshape(5, 2)
        matrix = similarity_transform(chip_template(size, padding), landmarks).astype(np.float64)
        angle = math.atan2(matrix[1, 0], matrix[0, 0])
        scale = math.hypot(matrix[0, 0], matrix[1, 0])
        cx, cy = matrix[:, :2] @ np.array([size / 2, size / 2]) + matrix[:, 2]
        half = (size * scale - 1) / 2
        return cls((cx - half, cy - half, cx + half, cy + half), angle, size)


def _area(rect: Rect) -> float:
    left, top, right, bottom = rect
    if left > right or top > bottom:
        return 0.0
    return (right - left + 1) * (bottom - top + 1)


def _rect_down(rect: Rect) -> Rect:
    left, top, right, bottom = rect
    return (left / 2 - 1.25, top / 2 - 0.75, right / 2 - 1.25, bottom / 2 - 0.75)


def _rotate(center: tuple[float, float], point: tuple[float, float], angle: float) -> FloatArray:
    cos, sin = math.cos(angle), math.sin(angle)
    x, y = point[0] - center[0], point[1] - center[1]
    return np.array([cos * x - sin * y + center[0], sin * x + cos * y + center[1]])


_TAPS: Final = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32)


def pyramid_down(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """One level of dlib's ``pyramid_down<2>``: [1 4 6 4 1]^2 / 256, 2:1, 'valid' borders.

    Output pixel (r, c) is the filter centred on input (2r + 2, 2c + 2), truncated; the
    sums are integers below 2**24, so float32 filtering is exact.
    """
    rows, cols = image.shape[:2]
    if rows <= 8 or cols <= 8:
        return np.zeros((0, 0, 3), dtype=np.uint8)
    out_cols, out_rows = (cols - 3) // 2, (rows - 3) // 2
    filtered = cv2.sepFilter2D(image, cv2.CV_32F, _TAPS, _TAPS, borderType=cv2.BORDER_REFLECT)
    valid = filtered[2 : 2 + 2 * out_rows : 2, 2 : 2 + 2 * out_cols : 2]
    down: npt.NDArray[np.uint8] = np.floor(valid * np.float32(1 / 256)).astype(np.uint8)
    return down


def extract_chip(image: ImageArray, details: ChipDetails) -> ImageArray:
    """``extract_image_chip``: the (size, size, 3) uint8 chip of an RGB image."""
    height, width = image.shape[:2]
    size = details.size
    rect = details.rect
    center = ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)
    # the pixels the chip can touch: the rotated rect, grown by what the filters reach
    grow, level_rect = 2.0, _rect_down(rect)
    while _area(level_rect) > size * size:
        level_rect = _rect_down(level_rect)
        grow = grow * 2 + 2
    corners = [(rect[0], rect[1]), (rect[2], rect[1]), (rect[0], rect[3]), (rect[2], rect[3])]
    rotated = np.array([_rotate(center, c, details.angle) for c in corners])
    lo = np.maximum(rotated.min(axis=0) - grow, 0.0)
    hi = np.minimum(rotated.max(axis=0) + grow, [width - 1.0, height - 1.0])
    if np.any(lo > hi):
        return np.zeros((size, size, 3), dtype=np.uint8)
    x0, y0 = (math.floor(v + 0.5) for v in lo)
    x1, y1 = (math.floor(v + 0.5) for v in hi)
    source = image[y0 : y1 + 1, x0 : x1 + 1]
    local: Rect = (rect[0] - x0, rect[1] - y0, rect[2] - x0, rect[3] - y0)
    while _area(_rect_down(local)) > size * size:
        local = _rect_down(local)
        source = pyramid_down(source)
    local_center = ((local[0] + local[2]) / 2, (local[1] + local[3]) / 2)
    origin = _rotate(local_center, (local[0], local[1]), details.angle)
    x_axis = (_rotate(local_center, (local[2], local[1]), details.angle) - origin) / (size - 1)
    y_axis = (_rotate(local_center, (local[0], local[3]), details.angle) - origin) / (size - 1)
    steps = np.arange(size, dtype=np.float64)
    xs = origin[0] + steps[None, :] * x_axis[0] + steps[:, None] * y_axis[0]
    ys = origin[1] + steps[None, :] * x_axis[1] + steps[:, None] * y_axis[1]
    return _bilinear(source, xs, ys)


def _bilinear(
    source: npt.NDArray[np.uint8], xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]
) -> ImageArray:
    """dlib's ``interpolate_bilinear``: 0 where the 2x2 neighbourhood leaves the image."""
    rows, cols = source.shape[:2]
    if rows < 2 or cols < 2:
        return np.zeros((*xs.shape, 3), dtype=np.uint8)
    left, top = np.floor(xs), np.floor(ys)
    inside = (left >= 0) & (top >= 0) & (left <= cols - 2) & (top <= rows - 2)
    corner = np.where(inside, top * cols + left, 0).astype(np.intp).ravel()
    flat = source.reshape(-1, 3)
    fx = (xs - left).reshape(-1, 1)
    fy = (ys - top).reshape(-1, 1)
    tl, tr = flat[corner], flat[corner + 1]
    bl, br = flat[corner + cols], flat[corner + cols + 1]
    upper = tl + fx * (tr.astype(np.float64) - tl)
    lower = bl + fx * (br.astype(np.float64) - bl)
    value = upper + fy * (lower - upper)
    value *= inside.reshape(-1, 1)
    chip: ImageArray = value.astype(np.uint8).reshape(*xs.shape, 3)
    return chip


def face_chip(
    image: ImageArray, points: npt.ArrayLike, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> ImageArray:
    """dlib's ``get_face_chip(image, shape, size, padding)`` for 5 dlib landmarks."""
    return extract_chip(image, ChipDetails.for_landmarks(points, size, padding))
