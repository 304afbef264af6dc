"""Face embedder: aligned face crops → L2-normalised vectors, one ONNX call per batch.

One generic class for every embedder (dlib ResNet, mobileface, a user-supplied
ArcFace): what differs between models — input size, layout, channel order,
normalisation and the alignment template — is data in the manifest entry's
``input`` block, not code. The output dimension is read from the model, never assumed,
so a 128-d and a 512-d model go through the same path.

Manifest embedder schema::

    "role": "embedder",
    "input": {"size": [H, W], "layout": "NCHW" | "NHWC", "channels": "RGB" | "BGR",
              "mean": [r, g, b] (0..255 units), "std": [r, g, b] or a number,
              "template": [[x, y] x 5] in input pixels (MTCNN landmark order)},
    "match_threshold": cosine similarity above which two faces are the same person

Model input = (pixel - mean) / std, per channel, in the model's channel order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from facesearch.config import Settings
from facesearch.errors import ModelError
from facesearch.models import get_spec, verified_path, verify_file
from facesearch.vision.align import ARCFACE_112_TEMPLATE, align_face
from facesearch.vision.ort import ModelSession, open_session
from facesearch.vision.types import FloatArray, ImageArray

Layout = Literal["NCHW", "NHWC"]
Channels = Literal["RGB", "BGR"]

_NORM_EPS = 1e-12
_LANDMARKS = 5


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its face crops: geometry, tensor layout and normalisation."""

    size: tuple[int, int]  # (height, width) in pixels
    layout: Layout
    channels: Channels
    mean: tuple[float, float, float]  # per channel, R, G, B order, 0..255 units
    std: tuple[float, float, float]  # per channel, R, G, B order
    template: tuple[tuple[float, float], ...]  # 5 (x, y) points in input pixels

    @property
    def template_array(self) -> FloatArray:
        return np.asarray(self.template, dtype=np.float32)

    @classmethod
    def arcface_112(cls) -> InputSpec:
        """insightface ArcFace convention: 112x112 RGB NCHW, (x - 127.5) / 127.5."""
        return cls(
            size=(112, 112),
            layout="NCHW",
            channels="RGB",
            mean=(127.5, 127.5, 127.5),
            std=(127.5, 127.5, 127.5),
            template=tuple((float(x), float(y)) for x, y in ARCFACE_112_TEMPLATE),
        )

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any], *, label: str) -> InputSpec:
        """Validate a manifest ``input`` block; every problem is a ModelError naming ``label``."""
        if not isinstance(block, Mapping):
            raise ModelError(f"embedder {label!r}: 'input' must be an object, got {block!r}")
        missing = {"size", "layout", "channels", "mean", "std", "template"} - set(block)
        if missing:
            raise ModelError(f"embedder {label!r}: 'input' lacks {sorted(missing)}")
        try:
            height, width = (int(v) for v in block["size"])
            mean = _triple(block["mean"])
            std = _triple(block["std"])
            template = tuple((float(x), float(y)) for x, y in block["template"])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"embedder {label!r}: malformed 'input' block: {exc}") from exc
        layout, channels = block["layout"], block["channels"]
        problems = []
        if height <= 0 or width <= 0:
            problems.append(f"size must be positive, got {[height, width]}")
        if layout not in ("NCHW", "NHWC"):
            problems.append(f"layout must be NCHW or NHWC, got {layout!r}")
        if channels not in ("RGB", "BGR"):
            problems.append(f"channels must be RGB or BGR, got {channels!r}")
        if any(s <= 0 or not math.isfinite(s) for s in std):
            problems.append(f"std must be positive, got {list(std)}")
        if not all(math.isfinite(m) for m in mean):
            problems.append(f"mean must be finite, got {list(mean)}")
        if len(template) != _LANDMARKS:
            problems.append(f"template needs {_LANDMARKS} points, got {len(template)}")
        if problems:
            raise ModelError(f"embedder {label!r}: " + "; ".join(problems))
        return cls((height, width), layout, channels, mean, std, template)


def _triple(value: object) -> tuple[float, float, float]:
    """A number (same for all channels) or three numbers."""
    if isinstance(value, int | float):
        return (float(value),) * 3
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3:
        r, g, b = (float(v) for v in value)
        return (r, g, b)
    raise ValueError(f"expected a number or 3 numbers, got {value!r}")


class FaceEmbedder:
    """Aligns faces onto the model's template and embeds them in batches.

    Construct with :meth:`from_settings` in services; tests inject any object that
    satisfies :class:`~facesearch.vision.ort.ModelSession`.
    """

    def __init__(
        self,
        session: ModelSession,
        spec: InputSpec,
        *,
        model_id: str,
        batch_size: int = 32,
        match_threshold: float | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._session = session
        self.spec = spec
        self._model_id = model_id
        self._match_threshold = match_threshold
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"embedder {model_id}: expected 1 input, model has {len(inputs)}")
        # Constants for the one vectorised preprocessing step, in the model's channel order.
        order = [2, 1, 0] if spec.channels == "BGR" else [0, 1, 2]
        self._mean = np.asarray(spec.mean, dtype=np.float32)[order]
        self._inv_std = (1.0 / np.asarray(spec.std, dtype=np.float64)).astype(np.float32)[order]
        self._order = order
        self._input_name: str = inputs[0].name
        self._batch_size = self._check_input_shape(list(inputs[0].shape), batch_size)
        self._output_name: str = session.get_outputs()[0].name
        self._dim = self._read_dim()

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls, settings: Settings, *, session: ModelSession | None = None
    ) -> FaceEmbedder:
        """Manifest model ``vision.embedder``, or ``vision.embedder_path`` (+ sha256).

        A custom path is an ArcFace-class model unless ``input`` overrides say otherwise
        (:data:`InputSpec.arcface_112` defaults); its model id is ``<file stem>@<sha12>``
        so embeddings of two different files can never be mixed in one index.
        """
        if settings.vision.embedder_path is not None:
            if not settings.vision.embedder_sha256:
                raise ModelError(
                    "FACESEARCH_EMBEDDER_PATH is set without FACESEARCH_EMBEDDER_SHA256;"
                    " a model is only loaded when its hash is pinned"
                )
            path = Path(settings.vision.embedder_path)
            sha = settings.vision.embedder_sha256.lower()
            spec = custom_spec(settings.vision.embedder_input or {}, label=str(path))
            if session is None:
                verify_file(path, sha, label=str(path))
                session = open_session(
                    path,
                    providers=settings.vision.onnx_providers,
                    threads=settings.vision.onnx_threads,
                )
            return cls(
                session,
                spec,
                model_id=f"{path.stem}@{sha[:12]}",
                batch_size=settings.vision.embed_batch_size,
                match_threshold=settings.vision.match_threshold,
            )
        return cls.from_manifest(
            settings.vision.models_dir,
            settings.vision.embedder,
            session=session,
            providers=settings.vision.onnx_providers,
            threads=settings.vision.onnx_threads,
            batch_size=settings.vision.embed_batch_size,
            match_threshold=settings.vision.match_threshold,
        )

    @classmethod
    def from_manifest(
        cls,
        models_dir: Path,
        name: str,
        *,
        session: ModelSession | None = None,
        providers: str = "auto",
        threads: int = 0,
        batch_size: int = 32,
        match_threshold: float | None = None,
    ) -> FaceEmbedder:
        """Load manifest entry ``name``; the file's sha256 is checked before ORT sees it."""
        model = get_spec(models_dir, name)
        if model.role != "embedder":
            raise ModelError(f"model {name!r} has role {model.role!r}, not 'embedder'")
        spec = InputSpec.from_mapping(model.extra.get("input"), label=name)  # type: ignore[arg-type]
        threshold = match_threshold
        if threshold is None and model.extra.get("match_threshold") is not None:
            threshold = float(model.extra["match_threshold"])
        if session is None:
            path = verified_path(models_dir, name)
            session = open_session(path, providers=providers, threads=threads)
        return cls(
            session,
            spec,
            model_id=model.model_id,
            batch_size=batch_size,
            match_threshold=threshold,
        )

    # --- properties -------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """``name@version``, stamped on every embedding."""
        return self._model_id

    @property
    def dim(self) -> int:
        """Embedding length, as declared (or produced) by the model."""
        return self._dim

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the aligned crop the model takes."""
        return self.spec.size

    @property
    def match_threshold(self) -> float | None:
        """Cosine threshold for "same person": settings override, else the manifest's."""
        return self._match_threshold

    # --- work ---------------------------------------------------------------------------

    def align(self, image: ImageArray, landmarks: FloatArray) -> ImageArray:
        """Warp the face whose 5 MTCNN landmarks are given onto this model's template.

        ``image`` is RGB (the pipeline's decode output); the crop is RGB, input_size.
        """
        points = np.asarray(landmarks, dtype=np.float32)
        if points.shape != (_LANDMARKS, 2):
            raise ValueError(f"landmarks must be (5, 2), got {points.shape}")
        height, width = self.spec.size
        return align_face(image, points, self.spec.template_array, (width, height))

    def embed(self, crops: Sequence[ImageArray] | npt.NDArray[np.uint8]) -> FloatArray:
        """(N, dim) float32, each row L2-normalised; one session call per batch."""
        batch = self._stack(crops)
        out = np.empty((batch.shape[0], self._dim), dtype=np.float32)
        for start in range(0, batch.shape[0], self._batch_size):
            chunk = batch[start : start + self._batch_size]
            vectors = self._run(self.preprocess(chunk))
            if vectors.shape[1] != self._dim:
                raise ModelError(
                    f"{self._model_id} returned {vectors.shape[1]}-d vectors, expected {self._dim}"
                )
            out[start : start + chunk.shape[0]] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, _NORM_EPS)  # type: ignore[no-any-return]

    def preprocess(self, crops: npt.NDArray[np.uint8]) -> FloatArray:
        """(N, H, W, 3) RGB uint8 → the model's input tensor."""
        x = crops[..., self._order].astype(np.float32)
        x -= self._mean
        x *= self._inv_std
        if self.spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    # --- internals ----------------------------------------------------------------------

    def _stack(self, crops: Sequence[ImageArray] | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        height, width = self.spec.size
        batch = np.asarray(crops) if len(crops) else np.zeros((0, height, width, 3), np.uint8)
        if batch.ndim != 4 or batch.shape[1:] != (height, width, 3):
            raise ValueError(
                f"{self._model_id} takes (N, {height}, {width}, 3) crops, got {batch.shape};"
                " use FaceEmbedder.align to make them"
            )
        if batch.dtype != np.uint8:
            raise ValueError(f"crops must be uint8, got {batch.dtype}")
        return batch

    def _run(self, x: FloatArray) -> FloatArray:
        result = self._session.run([self._output_name], {self._input_name: x})[0]
        return np.asarray(result, dtype=np.float32).reshape(x.shape[0], -1)

    def _check_input_shape(self, shape: list[Any], batch_size: int) -> int:
        """Reject a model whose declared input contradicts the spec; returns the batch size.

        Models exported with a fixed batch of 1 (common for ArcFace ONNX files) still
        work, one face per call.
        """
        height, width = self.spec.size
        want = [3, height, width] if self.spec.layout == "NCHW" else [height, width, 3]
        if len(shape) != 4:
            raise ModelError(f"{self._model_id}: input must be 4-d, model declares {shape}")
        for declared, expected in zip(shape[1:], want, strict=True):
            if isinstance(declared, int) and declared > 0 and declared != expected:
                raise ModelError(
                    f"{self._model_id}: model input is {shape}, the manifest says"
                    f" {self.spec.layout} {height}x{width}x3"
                )
        fixed = shape[0]
        if isinstance(fixed, int) and fixed > 0:
            return min(batch_size, fixed)
        return batch_size

    def _read_dim(self) -> int:
        """Output length from the model's declared output shape, or one probe run."""
        shape = list(self._session.get_outputs()[0].shape)
        tail = shape[1:]
        if tail and all(isinstance(d, int) and d > 0 for d in tail):
            return int(np.prod(tail))
        height, width = self.spec.size
        probe = np.zeros((1, height, width, 3), dtype=np.uint8)
        return int(self._run(self.preprocess(probe)).shape[1])


def custom_spec(overrides: Mapping[str, Any], *, label: str) -> InputSpec:
    """ArcFace 112x112 defaults, with any ``input`` keys from ``overrides`` replacing them."""
    base = InputSpec.arcface_112()
    if not overrides:
        return base
    merged: dict[str, Any] = {
        "size": list(base.size),
        "layout": base.layout,
        "channels": base.channels,
        "mean": list(base.mean),
        "std": list(base.std),
        "template": [list(p) for p in base.template],
    }
    unknown = set(overrides) - set(merged)
    if unknown:
        raise ModelError(f"embedder {label!r}: unknown input keys {sorted(unknown)}")
    merged.update(overrides)
    return InputSpec.from_mapping(merged, label=label)


def with_template(spec: InputSpec, template: FloatArray) -> InputSpec:
    """The same spec with another alignment template (used when deriving templates)."""
    points = np.asarray(template, dtype=np.float64)
    if points.shape != (_LANDMARKS, 2):
        raise ValueError(f"template must be (5, 2), got {points.shape}")
    return replace(spec, template=tuple((float(x), float(y)) for x, y in points))
