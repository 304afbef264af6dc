"""Pure MTCNN box geometry: the scale pyramid, NMS, box regression, landmarks, crops.

No ONNX here: these functions reproduce the pre/post-processing of the PyPI ``mtcnn``
1.0.0 package (``mtcnn/stages``, ``mtcnn/utils``) on numpy arrays, so they can be
tested on their own; :mod:`facesearch.vision.detect` runs the three networks around
them. See that module's docstring for the maths, stage by stage.
"""

from __future__ import annotations

import itertools
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from facesearch.vision.types import FloatArray

Boxes = npt.NDArray[np.float64]  # (N, 5): x1, y1, x2, y2, score
IndexArray = npt.NDArray[np.intp]
NmsMethod = Literal["union", "min"]

PNET_MIN_INPUT_PX: Final = 12  # P-Net's receptive field: one output cell
PNET_STRIDE_PX: Final = 2
PNET_CELL_PX: Final = 12
RNET_INPUT_PX: Final = 24
ONET_INPUT_PX: Final = 48
NMS_PNET_SCALE: Final = 0.5
NMS_PNET_ALL: Final = 0.7
NMS_RNET: Final = 0.7
NMS_ONET: Final = 0.7
_NMS_BLOCK: Final = 512  # columns per block: bounds NMS memory to O(N * block)
_CROP_CHUNK: Final = 256  # boxes per crop chunk: bounds crop temporaries to a few MB


# --- geometry ---------------------------------------------------------------------------


def scale_pyramid(
    height: int, width: int, min_face_px: int, scale_factor: float
) -> list[tuple[float, int, int]]:
    """(scale, scaled height, scaled width) for every pyramid level P-Net runs on.

    Level k shrinks the image by ``(12 / min_face_px) * scale_factor**k`` so that a
    ``min_face_px`` face fills P-Net's 12 px window at level 0 and ever larger faces
    at later levels. Sizes are truncated like TF's resize of a float shape.

    How many levels: mtcnn 1.0.0 uses ``round(log(min_side / 12) / log(1 / f) - 1)``,
    a closed form tuned for ``min_face_px == 20``; there it matches "until the
    shorter side drops below 12 px" except that it can leave out a last level of
    12.0-12.2 px. We keep it exactly (to match mtcnn) for ``min_face_px >= 20``,
    dropping levels under 12 px that P-Net cannot run on (mtcnn fails on them);
    below 20 px the closed form would stop before the largest faces are covered, so
    the pyramid goes on down to 12 px like the original MTCNN.
    """
    base = PNET_MIN_INPUT_PX / min_face_px
    min_side = min(height, width)
    levels: list[tuple[float, int, int]] = []
    if min_side < PNET_MIN_INPUT_PX:
        return levels
    closed_form = round(-(np.log(min_side / PNET_MIN_INPUT_PX) / np.log(scale_factor) + 1))
    limit = closed_form if min_face_px >= 20 else None
    for k in itertools.count():
        if limit is not None and k >= limit:
            break
        scale = base * scale_factor**k
        scaled_h, scaled_w = (np.array([height, width], dtype=np.float64) * scale).astype(np.int64)
        if min(scaled_h, scaled_w) < PNET_MIN_INPUT_PX:
            break
        levels.append((float(scale), int(scaled_h), int(scaled_w)))
    return levels


def iou_matrix(a: Boxes, b: Boxes, method: NmsMethod = "union") -> npt.NDArray[np.float64]:
    """Overlap of every box in ``a`` with every box in ``b`` (rows a, columns b).

    ``union``: intersection over union. ``min``: intersection over the smaller box.
    Areas are ``(x2-x1)*(y2-y1)`` (no +1), as mtcnn computes them for NMS.
    """
    ax1, ay1, ax2, ay2 = (a[:, i, None] for i in range(4))
    bx1, by1, bx2, by2 = (b[None, :, i] for i in range(4))
    inter = np.maximum(0.0, np.minimum(ay2, by2) - np.maximum(ay1, by1)) * np.maximum(
        0.0, np.minimum(ax2, bx2) - np.maximum(ax1, bx1)
    )
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    denominator = area_a + area_b - inter if method == "union" else np.minimum(area_a, area_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(inter / denominator, dtype=np.float64)


def nms(boxes: Boxes, threshold: float, method: NmsMethod = "union") -> npt.NDArray[np.intp]:
    """Indices (ascending) of boxes that no *earlier* box overlaps by more than ``threshold``.

    Rows must already be in priority order (score descending). This is mtcnn's
    matrix NMS, not greedy NMS: a box suppressed by an earlier one still
    suppresses later ones. Computed in column blocks so memory stays O(N * block).
    """
    count = len(boxes)
    keep = np.ones(count, dtype=bool)
    for start in range(0, count, _NMS_BLOCK):
        stop = min(count, start + _NMS_BLOCK)
        overlap = iou_matrix(boxes[:stop], boxes[start:stop], method) > threshold
        earlier = np.arange(stop)[:, None] < np.arange(start, stop)[None, :]
        keep[start:stop] = ~(overlap & earlier).any(axis=0)
    return np.flatnonzero(keep)


def score_order(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Indices for score-descending order; equal scores: the later row first.

    Ties are common: P-Net's softmax saturates at 1.0 in float32, and which of two
    tied windows goes first decides which one NMS keeps. mtcnn uses
    ``np.argsort(s)[::-1]``, whose tie order depends on numpy's version and the
    array length (introsort/SIMD sorts are unstable); for short arrays it is
    insertion sort, i.e. "later row first", which we make deterministic for all
    lengths with a stable sort. Matching TF bit-for-bit on ties is not possible anyway
    (TF and onnxruntime round the saturated softmax differently: 0.99999994 vs 1.0).
    """
    return np.argsort(scores, kind="stable")[::-1]


def sort_by_score(boxes: Boxes) -> Boxes:
    return boxes[score_order(boxes[:, 4])]


def square(boxes: Boxes) -> Boxes:
    """Grow the shorter side to the longer one around the same centre (no rounding)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress(boxes: Boxes, offsets: npt.ArrayLike) -> Boxes:
    """Apply R-/O-Net box offsets, which are fractions of (width + 1, height + 1)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    out[:, :4] += np.asarray(offsets, dtype=np.float64) * np.stack([w, h, w, h], axis=1)
    return out


def decode_landmarks(boxes: Boxes, raw: npt.ArrayLike) -> FloatArray:
    """O-Net's (x1..x5, y1..y5) box fractions → (N, 5, 2) image pixels, on the unregressed box."""
    raw = np.asarray(raw, dtype=np.float64)
    w = boxes[:, 2:3] - boxes[:, 0:1] + 1.0
    h = boxes[:, 3:4] - boxes[:, 1:2] + 1.0
    xs = w * raw[:, 0:5] + boxes[:, 0:1] - 1.0
    ys = h * raw[:, 5:10] + boxes[:, 1:2] - 1.0
    return np.stack([xs, ys], axis=2).astype(np.float32)


def pnet_boxes(
    reg: npt.NDArray[np.float32], prob: npt.NDArray[np.float32], scale: float, threshold: float
) -> Boxes:
    """Candidate boxes (original pixels, score-sorted) from one P-Net output map.

    ``reg`` is [4,h,w], ``prob`` is [h,w] (face channel).
    """
    ys, xs = np.nonzero(prob > threshold)
    if ys.size == 0:
        return np.empty((0, 5), dtype=np.float64)
    offsets = reg[:, ys, xs].astype(np.float64)  # (4, n)
    span = PNET_CELL_PX - 1.0
    left = xs * PNET_STRIDE_PX + 1.0
    top = ys * PNET_STRIDE_PX + 1.0
    right = xs * PNET_STRIDE_PX + float(PNET_CELL_PX)
    bottom = ys * PNET_STRIDE_PX + float(PNET_CELL_PX)
    boxes = np.stack(
        [
            (left + offsets[0] * span) / scale,
            (top + offsets[1] * span) / scale,
            (right + offsets[2] * span) / scale,
            (bottom + offsets[3] * span) / scale,
            prob[ys, xs].astype(np.float64),
        ],
        axis=1,
    )
    return sort_by_score(boxes)


def crop_and_resize(image: FloatArray, boxes: Boxes, size: int) -> FloatArray:
    """Bilinear ``size``x``size`` crops of ``boxes`` from an HWC float image, as NCHW.

    Exactly TF's ``crop_and_resize`` on boxes normalised by the image size (what
    mtcnn feeds it): samples at ``y1*(H-1)/H + i*(y2-y1)*(H-1)/H/(size-1)``; a sample
    row or column outside the image is 0 (mid-grey), which pads crops that cross
    the border. cv2.resize would sample at pixel centres instead and shift every
    crop by a fraction of a pixel. Vectorised: one gather per bilinear corner, in
    chunks of boxes so the temporaries stay small however many candidates there are.
    """
    out = np.empty((len(boxes), image.shape[2], size, size), dtype=np.float32)
    for start in range(0, len(boxes), _CROP_CHUNK):
        chunk = boxes[start : start + _CROP_CHUNK]
        out[start : start + len(chunk)] = _crop_chunk(image, chunk, size).transpose(0, 3, 1, 2)
    return out


def _crop_chunk(image: FloatArray, boxes: Boxes, size: int) -> FloatArray:
    """NHWC crops for :func:`crop_and_resize`."""
    height, width = image.shape[:2]
    steps = np.arange(size, dtype=np.float32)
    norm = (boxes[:, :4] / np.array([width, height, width, height])).astype(np.float32)

    def axis(
        lo: FloatArray, hi: FloatArray, extent: int
    ) -> tuple[IndexArray, IndexArray, FloatArray, npt.NDArray[np.bool_]]:
        """Sample positions along one axis: floor/ceil indices, fraction, inside-image mask."""
        span = np.float32(extent - 1)
        coords = (
            lo[:, None] * span + steps[None, :] * ((hi - lo) * span / np.float32(size - 1))[:, None]
        )
        inside = (coords >= 0) & (coords <= span)
        low = np.floor(coords)
        frac = (coords - low).astype(np.float32)
        low_i = np.clip(low, 0, extent - 1).astype(np.intp)
        high_i = np.clip(np.ceil(coords), 0, extent - 1).astype(np.intp)
        return low_i, high_i, frac, inside

    top, bottom, y_frac, y_in = axis(norm[:, 1], norm[:, 3], height)
    left, right, x_frac, x_in = axis(norm[:, 0], norm[:, 2], width)
    flat = image.reshape(height * width, image.shape[2])

    def gather(rows: IndexArray, cols: IndexArray) -> FloatArray:
        # np.take along axis 0 is ~8x faster than fancy indexing for this shape
        taken: FloatArray = np.take(flat, rows[:, :, None] * width + cols[:, None, :], axis=0)
        return taken

    xf = x_frac[:, None, :, None]
    upper = gather(top, left)
    upper += (gather(top, right) - upper) * xf
    lower = gather(bottom, left)
    lower += (gather(bottom, right) - lower) * xf
    crops = upper + (lower - upper) * y_frac[:, :, None, None]
    crops *= (y_in[:, :, None] & x_in[:, None, :])[..., None]
    return crops


def clip_boxes(boxes: Boxes, height: int, width: int) -> Boxes:
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width - 1)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height - 1)
    return out
