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

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import cv2
import numpy as np

from facesearch.errors import InvalidImage, ModelError
from facesearch.vision.inference import InferenceModel, ModelFile, Source, TensorSpec
from facesearch.vision.mtcnn_geometry import (
    NMS_ONET,
    NMS_PNET_ALL,
    NMS_PNET_SCALE,
    NMS_RNET,
    ONET_INPUT_PX,
    PNET_MIN_INPUT_PX,
    RNET_INPUT_PX,
    Boxes,
    clip_boxes,
    crop_and_resize,
    decode_landmarks,
    nms,
    pnet_boxes,
    regress,
    scale_pyramid,
    score_order,
    sort_by_score,
    square,
)
from facesearch.vision.ort import ModelSession
from facesearch.vision.settings import VisionSettings
from facesearch.vision.types import Detection, FloatArray, ImageArray

MODEL_NAMES: Final = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")
#: MTCNN's input convention: (rgb - 127.5) / 128, NCHW.
MTCNN_INPUT: Final = TensorSpec(layout="NCHW", mean=(127.5,) * 3, std=(128.0,) * 3)


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


class MtcnnDetector(InferenceModel):
    """Finds faces and 5 landmarks in an RGB image; see the module docstring for the maths.

    Three graphs (P-, R-, O-Net), opened lazily. Thread-safe for concurrent ``detect``
    calls (no mutable state after loading; ORT sessions are safe to share).
    """

    role: ClassVar[str] = "detector"

    def __init__(
        self,
        pnet: Source,
        rnet: Source,
        onet: Source,
        *,
        min_face_px: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.8),
        scale_factor: float = 0.709,
        max_side_px: int | None = None,
        max_faces: int | None = None,
        min_face_ratio: float = 0.0,
        providers: str = "auto",
        threads: int = 0,
    ) -> None:
        if not 0.0 <= min_face_ratio <= 0.5:
            raise ModelError(f"min_face_ratio must be in [0, 0.5], got {min_face_ratio}")
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ModelError(f"need three detection thresholds in [0, 1], got {thresholds}")
        if not 0.1 < scale_factor < 1.0:
            raise ModelError(f"scale_factor must be in (0.1, 1), got {scale_factor}")
        if min_face_px < 1:
            raise ModelError(f"min_face_px must be positive, got {min_face_px}")
        self.min_face_px = int(min_face_px)
        self.thresholds = (float(thresholds[0]), float(thresholds[1]), float(thresholds[2]))
        self.scale_factor = float(scale_factor)
        self.max_side_px = max_side_px
        self.max_faces = max_faces
        self.min_face_ratio = float(min_face_ratio)
        super().__init__([pnet, rnet, onet], model_id="mtcnn", providers=providers, threads=threads)

    def _on_load(self, sessions: tuple[ModelSession, ...]) -> None:
        pnet, rnet, onet = sessions
        self._inputs = tuple(s.get_inputs()[0].name for s in sessions)
        self._pnet_out = _output_index(pnet, "P-Net", ("bbox_reg", "prob"))
        self._rnet_out = _output_index(rnet, "R-Net", ("bbox_reg", "prob"))
        self._onet_out = _output_index(onet, "O-Net", ("bbox_reg", "landmarks", "prob"))

    @classmethod
    def from_paths(cls, pnet: Path, rnet: Path, onet: Path, **knobs: Any) -> MtcnnDetector:
        """From model files (callers verify hashes; :meth:`from_settings` does); ``knobs``
        are the constructor's keywords, so the two can never disagree."""
        return cls(*(ModelFile(p, "") for p in (pnet, rnet, onet)), **knobs)

    @classmethod
    def from_settings(cls, vision: VisionSettings) -> MtcnnDetector:
        """The production detector: hash-verified manifest models, knobs from settings."""
        pnet, rnet, onet = (cls.manifest_source(vision.models_dir, n)[1] for n in MODEL_NAMES)
        return cls(
            pnet,
            rnet,
            onet,
            providers=vision.onnx_providers,
            threads=vision.onnx_threads,
            min_face_px=vision.min_face_px,
            thresholds=vision.detect_thresholds,
            scale_factor=vision.detect_scale_factor,
            max_side_px=vision.detect_max_side_px,
            max_faces=vision.max_faces_per_image,
            min_face_ratio=vision.min_face_ratio,
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
        self.load()
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
        normalised = MTCNN_INPUT.normalise(rgb)
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
        session, name = self.sessions[0], self._inputs[0]
        per_scale: list[Boxes] = []
        min_face = max(self.min_face_px, int(self.min_face_ratio * min(height, width)))
        for scale, scaled_h, scaled_w in scale_pyramid(height, width, min_face, self.scale_factor):
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
        outputs = self.sessions[1].run(None, {self._inputs[1]: crops})
        reg, prob = (outputs[i] for i in self._rnet_out)
        scored = boxes.copy()
        scored[:, 4] = prob[:, 1]
        scored = regress(scored, reg)
        scored = scored[scored[:, 4] > self.thresholds[1]]
        scored = sort_by_score(scored)
        return square(scored[nms(scored, NMS_RNET, "union")])

    def _stage_onet(self, image: FloatArray, boxes: Boxes) -> tuple[Boxes, FloatArray]:
        crops = crop_and_resize(image, boxes, ONET_INPUT_PX)
        outputs = self.sessions[2].run(None, {self._inputs[2]: crops})
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
