"""MTCNN face detector (P-Net → R-Net → O-Net) on onnxruntime.

The networks are the PyPI ``mtcnn`` 1.0.0 weights rebuilt as ONNX by
``models/export/build_mtcnn.py`` (NCHW). The pre/post-processing here reproduces
that package's TensorFlow pipeline (``mtcnn/stages``, ``mtcnn/utils``) so our
detections match its own within float noise; ``tests/unit/vision/test_detect.py``
checks that against reference output recorded with the real package. The maths,
stage by stage:

- Pixels are normalised once, ``(rgb - 127.5) / 128``, as float32.
- P-Net runs on a pyramid of area-downscaled copies (``cv2.INTER_AREA`` equals
  TF's ``resize(method=AREA)`` to ~1e-5), scales ``(12 / min_face_px) * f**k``
  (sizes truncated, as TF does), as many levels as mtcnn's closed form gives
  (see :func:`scale_pyramid` for where we must deviate: min_face_px != 20).
- Each P-Net cell scoring > t1 becomes the 12x12 window at ``(2x+1, 2y+1)``
  to ``(2x+12, 2y+12)``, regressed by ``offset * 11`` and divided by the scale.
- NMS is mtcnn's "matrix" NMS: a box is dropped when *any* higher-scored box
  overlaps it above the threshold (even one that was itself dropped). Per
  scale: union 0.5 on score order; all scales: union 0.7; R-Net: union 0.7;
  O-Net: "min" 0.7 (intersection over the smaller box, which removes a small
  box inside a big one).
- Boxes are squared around their centre before each crop; R-Net/O-Net crops
  are TF ``crop_and_resize`` samples (bilinear, box corners inclusive,
  coordinates scaled by ``(size-1)/size``); samples outside the image take the
  value 0 (mid-grey after normalisation), which is how crops that cross the
  border are padded. All crops of a stage go to ONE batched session call.
- Regression: ``box += offset * (w+1, h+1, w+1, h+1)``; O-Net landmarks are
  ``x1 - 1 + lx * (w+1)`` on the box *before* its regression. Scores are the
  O-Net softmax; the final boxes are clipped to ``[0, W-1] x [0, H-1]``
  (landmarks are not clipped), sorted by score.

Large images: when the longer side exceeds ``max_side_px`` we detect on an
area-downscaled copy and map coordinates back (pixel-centre aligned,
``x = (x' + 0.5) * W / W' - 0.5``). ``min_face_px`` then counts pixels of the
downscaled copy, so the smallest findable face grows by the same factor; that
is the speed/recall trade this setting makes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import cv2
import numpy as np
import numpy.typing as npt

from facesearch.errors import InvalidImage, ModelError
from facesearch.vision.ort import ModelSession, open_session
from facesearch.vision.types import Detection, FloatArray, ImageArray

if TYPE_CHECKING:
    from facesearch.config import Settings

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
PIXEL_MEAN: Final = 127.5
PIXEL_SCALE: Final = 1.0 / 128.0  # 0.0078125
MODEL_NAMES: Final = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")
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


# --- the detector --------------------------------------------------------------------------


def _output_index(session: ModelSession, label: str, names: Sequence[str]) -> list[int]:
    found = [o.name for o in session.get_outputs()]
    missing = [n for n in names if n not in found]
    if missing:
        raise ModelError(
            f"{label} model has outputs {found}, expected {list(names)}; "
            "rebuild it with models/export/build_mtcnn.py"
        )
    return [found.index(n) for n in names]


class MtcnnDetector:
    """Finds faces and 5 landmarks in an RGB image; see the module docstring for the maths.

    Thread-safe for concurrent ``detect`` calls (no mutable state; ORT sessions are
    safe to share).
    """

    def __init__(
        self,
        pnet: ModelSession,
        rnet: ModelSession,
        onet: ModelSession,
        *,
        min_face_px: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.8),
        scale_factor: float = 0.709,
        max_side_px: int | None = None,
        max_faces: int | None = None,
    ) -> None:
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ModelError(f"need three detection thresholds in [0, 1], got {thresholds}")
        if not 0.1 < scale_factor < 1.0:
            raise ModelError(f"scale_factor must be in (0.1, 1), got {scale_factor}")
        if min_face_px < 1:
            raise ModelError(f"min_face_px must be positive, got {min_face_px}")
        self._sessions = (pnet, rnet, onet)
        self._inputs = tuple(s.get_inputs()[0].name for s in self._sessions)
        self._pnet_out = _output_index(pnet, "P-Net", ("bbox_reg", "prob"))
        self._rnet_out = _output_index(rnet, "R-Net", ("bbox_reg", "prob"))
        self._onet_out = _output_index(onet, "O-Net", ("bbox_reg", "landmarks", "prob"))
        self.min_face_px = int(min_face_px)
        self.thresholds = (float(thresholds[0]), float(thresholds[1]), float(thresholds[2]))
        self.scale_factor = float(scale_factor)
        self.max_side_px = max_side_px
        self.max_faces = max_faces

    @classmethod
    def from_paths(
        cls,
        pnet: Path,
        rnet: Path,
        onet: Path,
        *,
        providers: str = "auto",
        threads: int = 0,
        min_face_px: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.8),
        scale_factor: float = 0.709,
        max_side_px: int | None = None,
        max_faces: int | None = None,
    ) -> MtcnnDetector:
        """From model files (callers verify hashes; :meth:`from_settings` does)."""
        sessions = [
            open_session(p, providers=providers, threads=threads) for p in (pnet, rnet, onet)
        ]
        return cls(
            *sessions,
            min_face_px=min_face_px,
            thresholds=thresholds,
            scale_factor=scale_factor,
            max_side_px=max_side_px,
            max_faces=max_faces,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> MtcnnDetector:
        """The production detector: hash-verified manifest models, knobs from settings."""
        from facesearch.models import verified_path

        pnet, rnet, onet = (verified_path(settings.vision.models_dir, name) for name in MODEL_NAMES)
        return cls.from_paths(
            pnet,
            rnet,
            onet,
            providers=settings.vision.onnx_providers,
            threads=settings.vision.onnx_threads,
            min_face_px=settings.vision.min_face_px,
            thresholds=settings.vision.detect_thresholds,
            scale_factor=settings.vision.detect_scale_factor,
            max_side_px=settings.vision.detect_max_side_px,
            max_faces=settings.vision.max_faces_per_image,
        )

    # -- public ---------------------------------------------------------------------------

    def detect(self, rgb: ImageArray) -> list[Detection]:
        """Faces in an HxWx3 uint8 RGB image, best score first, in original pixels.

        An image smaller than P-Net's 12 px window, or one without faces, gives [].
        """
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
            shape = getattr(rgb, "shape", None)
            raise InvalidImage(f"detector needs an HxWx3 RGB array, got shape {shape}")
        if rgb.dtype != np.uint8:
            raise InvalidImage(f"detector needs uint8 pixels, got {rgb.dtype}")
        height, width = rgb.shape[:2]
        if min(height, width) < PNET_MIN_INPUT_PX:
            return []
        work, factor_x, factor_y = self._working_copy(rgb)
        boxes, landmarks = self._run(work)
        if factor_x != 1.0 or factor_y != 1.0:
            boxes[:, [0, 2]] = (boxes[:, [0, 2]] + 0.5) * factor_x - 0.5
            boxes[:, [1, 3]] = (boxes[:, [1, 3]] + 0.5) * factor_y - 0.5
            landmarks[:, :, 0] = (landmarks[:, :, 0] + 0.5) * factor_x - 0.5
            landmarks[:, :, 1] = (landmarks[:, :, 1] + 0.5) * factor_y - 0.5
        boxes = clip_boxes(boxes, height, width)
        if self.max_faces is not None:
            boxes, landmarks = boxes[: self.max_faces], landmarks[: self.max_faces]
        return [
            Detection(
                box=box[:4].astype(np.float32),
                score=float(box[4]),
                landmarks=points.astype(np.float32),
            )
            for box, points in zip(boxes, landmarks, strict=True)
        ]

    # -- stages ---------------------------------------------------------------------------

    def _working_copy(self, rgb: ImageArray) -> tuple[ImageArray, float, float]:
        height, width = rgb.shape[:2]
        if self.max_side_px is None or max(height, width) <= self.max_side_px:
            return rgb, 1.0, 1.0
        ratio = self.max_side_px / max(height, width)
        new_w = max(PNET_MIN_INPUT_PX, round(width * ratio))
        new_h = max(PNET_MIN_INPUT_PX, round(height * ratio))
        small = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
        return np.asarray(small, dtype=np.uint8), width / new_w, height / new_h

    def _run(self, rgb: ImageArray) -> tuple[Boxes, FloatArray]:
        normalised = (rgb.astype(np.float32) - np.float32(PIXEL_MEAN)) * np.float32(PIXEL_SCALE)
        empty = (np.empty((0, 5)), np.empty((0, 5, 2), dtype=np.float32))
        boxes = self._stage_pnet(normalised)
        if len(boxes) == 0:
            return empty
        boxes = self._stage_rnet(normalised, boxes)
        if len(boxes) == 0:
            return empty
        return self._stage_onet(normalised, boxes)

    def _stage_pnet(self, image: FloatArray) -> Boxes:
        height, width = image.shape[:2]
        session, name = self._sessions[0], self._inputs[0]
        per_scale: list[Boxes] = []
        for scale, scaled_h, scaled_w in scale_pyramid(
            height, width, self.min_face_px, self.scale_factor
        ):
            resized = cv2.resize(image, (scaled_w, scaled_h), interpolation=cv2.INTER_AREA)
            batch = np.ascontiguousarray(resized.transpose(2, 0, 1))[None]
            outputs = session.run(None, {name: batch})
            reg, prob = (outputs[i] for i in self._pnet_out)
            candidates = pnet_boxes(reg[0], prob[0, 1], scale, self.thresholds[0])
            if len(candidates):
                per_scale.append(candidates[nms(candidates, NMS_PNET_SCALE, "union")])
        if not per_scale:
            return np.empty((0, 5))
        boxes = sort_by_score(np.concatenate(per_scale))
        return square(boxes[nms(boxes, NMS_PNET_ALL, "union")])

    def _stage_rnet(self, image: FloatArray, boxes: Boxes) -> Boxes:
        crops = crop_and_resize(image, boxes, RNET_INPUT_PX)
        outputs = self._sessions[1].run(None, {self._inputs[1]: crops})
        reg, prob = (outputs[i] for i in self._rnet_out)
        scored = boxes.copy()
        scored[:, 4] = prob[:, 1]
        scored = regress(scored, reg)
        scored = scored[scored[:, 4] > self.thresholds[1]]
        scored = sort_by_score(scored)
        return square(scored[nms(scored, NMS_RNET, "union")])

    def _stage_onet(self, image: FloatArray, boxes: Boxes) -> tuple[Boxes, FloatArray]:
        crops = crop_and_resize(image, boxes, ONET_INPUT_PX)
        outputs = self._sessions[2].run(None, {self._inputs[2]: crops})
        reg, raw_landmarks, prob = (outputs[i] for i in self._onet_out)
        landmarks = decode_landmarks(boxes, raw_landmarks)
        scored = boxes.copy()
        scored[:, 4] = prob[:, 1]
        scored = regress(scored, reg)
        passed = scored[:, 4] > self.thresholds[2]
        scored, landmarks = scored[passed], landmarks[passed]
        order = score_order(scored[:, 4])
        scored, landmarks = scored[order], landmarks[order]
        kept = nms(scored, NMS_ONET, "min")
        return scored[kept], landmarks[kept]
