"""dlib's 5-point landmark predictor (an ensemble of regression trees) in numpy.

Why: dlib's ResNet descriptor was trained on chips cut around the points *this*
predictor finds (the four eye corners and the base of the nose). MTCNN's points are
other anatomical points, so no fixed template maps them onto dlib's chip exactly;
running dlib's own predictor inside the MTCNN box gives the chip the network expects.

The arrays come from ``models/export/build_dlib_shape5.py`` (dlib's serialized
``shape_predictor``). Evaluation follows ``dlib/image_processing/shape_predictor.h``:

- the face rectangle maps the unit square onto ``[left, right] x [top, bottom]``
  (inclusive pixel corners, as dlib's ``unnormalizing_tform``);
- each cascade level reads 800 pixel intensities at points given relative to an
  anchor landmark, the offsets rotated and scaled by the similarity transform from
  the mean shape to the current estimate; a point is rounded to the nearest pixel
  (dlib's float→integer point conversion) and reads 0 outside the image; intensity
  is dlib's ``get_pixel_intensity`` of an RGB pixel, ``(r + g + b) // 3``;
- each of the level's 500 depth-4 trees compares two intensities with a threshold
  at every node (left child when ``a - b > thresh``) and adds its leaf's offsets
  to the shape.

All trees of a level, and all faces of an image, are evaluated together. The
output points are not rounded (dlib rounds them to integer pixels; we keep the
sub-pixel estimate, which can only make the chip steadier).

dlib's predictor expects the rectangle of dlib's own detectors. :func:`dlib_rect`
maps an MTCNN box onto that convention (a fixed offset and scale, measured; see
``SHAPE5_RECT``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from facesearch.errors import ModelError
from facesearch.vision.chip import CHIP_PADDING, CHIP_SIZE, face_chip
from facesearch.vision.registry import ModelSpec, get_spec, verified_path
from facesearch.vision.types import Detection, FloatArray, ImageArray

ROLE: Final = "landmarks"
_ARRAYS: Final = ("initial_shape", "split_index", "split_threshold", "leaves", "anchor", "deltas")

#: dlib-detector rectangle from an MTCNN box (x1, y1, x2, y2), as fractions of the box
#: width w and height h: centre shift (dx * w, dy * h) and side = scale * sqrt(w * h).
#: Measured by ``python -m tests.bench.alignment --fit-rect`` on the shipped and
#: faces-dev photos (faces that both MTCNN and dlib's HOG detector find).
SHAPE5_RECT: Final = (-0.0058, 0.0856, 0.9541)


def dlib_rect(boxes: npt.ArrayLike, params: tuple[float, float, float] = SHAPE5_RECT) -> FloatArray:
    """(N, 4) left, top, right, bottom of dlib-style rectangles for MTCNN boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    dx, dy, scale = params
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx = (b[:, 0] + b[:, 2]) / 2 + dx * w
    cy = (b[:, 1] + b[:, 3]) / 2 + dy * h
    side = scale * np.sqrt(np.maximum(w * h, 1.0))
    half = (side - 1) / 2
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).astype(np.float32)


@dataclass(frozen=True)
class ShapePredictor:
    """Arrays of one cascade; see the module docstring for the evaluation."""

    initial_shape: npt.NDArray[np.float32]  # (2P,) x0, y0, x1, y1, ... in the unit square
    split_index: npt.NDArray[np.int32]  # (L, T, S, 2) feature indices a, b per node
    split_threshold: npt.NDArray[np.float32]  # (L, T, S)
    leaves: npt.NDArray[np.float32]  # (L, T, S + 1, 2P) shape offsets
    anchor: npt.NDArray[np.int32]  # (L, F) landmark each feature pixel hangs from
    deltas: npt.NDArray[np.float32]  # (L, F, 2) offset from that landmark, mean-shape units
    model_id: str = "dlib-shape5"

    @classmethod
    def from_file(cls, path: Path, *, model_id: str = "dlib-shape5") -> ShapePredictor:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: np.asarray(data[name]) for name in _ARRAYS}
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"landmark model {path} is not a shape-predictor .npz: {exc}") from exc
        levels, trees, nodes, _ = arrays["split_index"].shape
        if arrays["leaves"].shape[:3] != (levels, trees, nodes + 1):
            raise ModelError(f"landmark model {path}: leaves do not match the trees")
        return cls(**arrays, model_id=model_id)  # type: ignore[arg-type]

    @property
    def parts(self) -> int:
        return int(self.initial_shape.shape[0] // 2)

    def predict(self, image: ImageArray, rects: npt.ArrayLike) -> FloatArray:
        """(N, parts, 2) landmarks in image pixels for (N, 4) left/top/right/bottom rects."""
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        count = len(boxes)
        mean = self.initial_shape.astype(np.float64).reshape(-1, 2)
        shapes = np.repeat(mean[None], count, axis=0)  # (N, P, 2), unit-square coordinates
        if count == 0:
            return shapes.astype(np.float32)
        height, width = image.shape[:2]
        origin = boxes[:, None, :2]  # (N, 1, 2)
        extent = (boxes[:, 2:] - boxes[:, :2])[:, None, :]  # (N, 1, 2): right-left, bottom-top
        flat = image.reshape(-1, 3)
        levels, trees, nodes, _ = self.split_index.shape
        depth = int(np.log2(nodes + 1))
        # per face, per tree: offsets into the level's flattened node and leaf tables
        node_base = np.tile(np.arange(trees) * nodes, count)
        leaf_base = np.tile(np.arange(trees) * (nodes + 1), count)
        feature_base = np.repeat(np.arange(count) * self.anchor.shape[1], trees)
        for level in range(levels):
            linear = _similarity_linear(mean, shapes)  # (N, 2, 2): rotation and scale only
            anchors = shapes[:, self.anchor[level]]  # (N, F, 2)
            offsets = np.einsum("nij,fj->nfi", linear, self.deltas[level])
            points = origin + (anchors + offsets) * extent  # (N, F, 2) pixels
            xy = np.floor(points + 0.5).astype(np.int64)
            inside = (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0)
            inside &= xy[..., 1] < height
            pixels = flat[np.where(inside, xy[..., 1] * width + xy[..., 0], 0)]
            features = ((pixels.sum(axis=2, dtype=np.int32) // 3) * inside).ravel()
            index_a = self.split_index[level, ..., 0].ravel()
            index_b = self.split_index[level, ..., 1].ravel()
            thresholds = self.split_threshold[level].ravel()
            node = np.zeros(count * trees, dtype=np.int64)
            for _ in range(depth):
                at = node_base + node
                diff = features[feature_base + index_a[at]] - features[feature_base + index_b[at]]
                # integer differences against float thresholds, as dlib compares floats
                node = 2 * node + np.where(diff > thresholds[at], 1, 2)
            leaves = self.leaves[level].reshape(trees * (nodes + 1), -1)[leaf_base + node - nodes]
            shapes = shapes + leaves.reshape(count, trees, -1, 2).sum(axis=1, dtype=np.float64)
        return (origin + shapes * extent).astype(np.float32)


def _similarity_linear(
    source: npt.NDArray[np.float64], targets: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """(N, 2, 2) rotation+scale of the least-squares similarity ``source`` → each target.

    The closed form of Umeyama's estimate in 2-d (what dlib's find_similarity_transform
    computes): a = sum(s·t) / sum(|s|²), b = sum(s×t) / sum(|s|²), matrix [[a, -b], [b, a]].
    """
    s = source - source.mean(axis=0)
    t = targets - targets.mean(axis=1, keepdims=True)
    norm = float((s**2).sum())
    a = (s[None, :, 0] * t[..., 0] + s[None, :, 1] * t[..., 1]).sum(axis=1) / norm
    b = (s[None, :, 0] * t[..., 1] - s[None, :, 1] * t[..., 0]).sum(axis=1) / norm
    return np.stack([np.stack([a, -b], axis=1), np.stack([b, a], axis=1)], axis=1)


_cache: dict[tuple[str, str], ShapePredictor] = {}
_lock = threading.Lock()


def load_shape_predictor(models_dir: Path, name: str) -> ShapePredictor:
    """The manifest's landmark model ``name`` (hash-verified), loaded once per process."""
    spec: ModelSpec = get_spec(models_dir, name)
    if spec.role != ROLE:
        raise ModelError(f"model {name!r} has role {spec.role!r}, not {ROLE!r}")
    key = (str(models_dir), name)
    with _lock:
        if key not in _cache:
            path = verified_path(models_dir, name)
            _cache[key] = ShapePredictor.from_file(path, model_id=spec.model_id)
        return _cache[key]


@dataclass(frozen=True)
class DlibChipAligner:
    """dlib's own chip for each detection: its 5-point predictor in the MTCNN box (mapped
    to a dlib rectangle), then ``get_face_chip`` (size, padding)."""

    predictor: ShapePredictor
    size: int = CHIP_SIZE
    padding: float = CHIP_PADDING
    rect: tuple[float, float, float] = SHAPE5_RECT
    name: str = "dlib-chip"

    def landmarks(self, image: ImageArray, detections: Sequence[Detection]) -> FloatArray:
        """(N, 5, 2) dlib points (its part order) for the detections, all in one pass."""
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        return self.predictor.predict(image, dlib_rect(boxes, self.rect))

    def crops(self, image: ImageArray, detections: Sequence[Detection]) -> list[ImageArray]:
        if not detections:
            return []
        points = self.landmarks(image, detections)
        return [face_chip(image, p, self.size, self.padding) for p in points]
