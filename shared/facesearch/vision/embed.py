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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from facesearch.errors import ModelError
from facesearch.vision.align import ARCFACE_112_TEMPLATE, Aligner, TemplateAligner, align_face
from facesearch.vision.inference import InferenceModel, LoadContext, Source, TensorSpec, single_io
from facesearch.vision.ort import ModelSession
from facesearch.vision.registry import ModelSpec
from facesearch.vision.settings import VisionSettings
from facesearch.vision.shape5 import DlibChipAligner, load_shape_predictor
from facesearch.vision.types import Detection, FloatArray, ImageArray

_NORM_EPS = 1e-12
_LANDMARKS = 5
_INPUT_KEYS = {"size", "layout", "channels", "mean", "std", "template"}


@dataclass(frozen=True, kw_only=True)
class InputSpec(TensorSpec):
    """How an embedder wants its face crops: tensor spec plus geometry and template."""

    size: tuple[int, int]  # (height, width) in pixels
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
        what = f"embedder {label!r}"
        if isinstance(block, Mapping):
            missing = _INPUT_KEYS - set(block)
            if missing:
                raise ModelError(f"{what}: 'input' lacks {sorted(missing)}")
        tensor = TensorSpec.parse_fields(block, label=what)
        try:
            height, width = (int(v) for v in block["size"])
            template = tuple((float(x), float(y)) for x, y in block["template"])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{what}: malformed 'input' block: {exc}") from exc
        problems = []
        if height <= 0 or width <= 0:
            problems.append(f"size must be positive, got {[height, width]}")
        if len(template) != _LANDMARKS:
            problems.append(f"template needs {_LANDMARKS} points, got {len(template)}")
        if problems:
            raise ModelError(f"{what}: " + "; ".join(problems))
        return cls(size=(height, width), template=template, **tensor)


class FaceEmbedder(InferenceModel):
    """Aligns faces onto the model's template and embeds them in batches.

    Construct with :meth:`from_settings` in services; tests inject any object that
    satisfies :class:`~facesearch.vision.ort.ModelSession`.
    """

    role: ClassVar[str] = "embedder"

    def __init__(
        self,
        session: Source,
        spec: InputSpec,
        *,
        model_id: str,
        batch_size: int = 32,
        match_threshold: float | None = None,
        aligner: Aligner | None = None,
        flip: bool = False,
        providers: str = "auto",
        threads: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = spec
        self.aligner: Aligner = aligner or TemplateAligner(spec.template_array, spec.size)
        self.flip = flip
        self._wanted_batch = batch_size
        self._match_threshold = match_threshold
        self._batch_size = batch_size
        self._dim = 0
        super().__init__([session], model_id=model_id, providers=providers, threads=threads)

    def _on_load(self, sessions: tuple[ModelSession, ...]) -> None:
        self._input_name, shape, self._output_name = single_io(sessions[0], self.model_id)
        self._batch_size = self._check_input_shape(shape, self._wanted_batch)
        self._dim = self._read_dim(sessions[0])

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls, vision: VisionSettings, *, session: ModelSession | None = None
    ) -> FaceEmbedder:
        """Manifest model ``vision.embedder``, or ``vision.embedder_path`` (+ sha256).

        A custom path is an ArcFace-class model unless ``input`` overrides say otherwise
        (:data:`InputSpec.arcface_112` defaults); its model id is ``<file stem>@<sha12>``
        so embeddings of two different files can never be mixed in one index.
        """
        if vision.embedder_path is None:
            return cls.from_section(
                vision,
                vision.embedder,
                session=session,
                batch_size=vision.embed_batch_size,
                match_threshold=vision.match_threshold,
                flip=vision.embed_flip,
            )
        source, model_id = cls.custom_source(
            vision.embedder_path, vision.embedder_sha256, session, setting="EMBEDDER"
        )
        return cls(
            source,
            custom_spec(vision.embedder_input or {}, label=str(vision.embedder_path)),
            model_id=model_id,
            batch_size=vision.embed_batch_size,
            match_threshold=vision.match_threshold,
            flip=vision.embed_flip,
            providers=vision.onnx_providers,
            threads=vision.onnx_threads,
        )

    @classmethod
    def from_entry(
        cls,
        entry: ModelSpec,
        source: Source,
        ctx: LoadContext,
        *,
        batch_size: int = 32,
        match_threshold: float | None = None,
        flip: bool = False,
        **opts: Any,
    ) -> FaceEmbedder:
        """``input`` → :class:`InputSpec`, ``alignment`` → the crop recipe; the manifest's
        calibrated threshold unless one is given."""
        cls.no_options(opts, "embedder")
        spec = InputSpec.from_mapping(cls.block(entry, "input"), label=entry.name)
        threshold = match_threshold
        if threshold is None and entry.extra.get("match_threshold") is not None:
            threshold = float(entry.extra["match_threshold"])
        return cls(
            source,
            spec,
            model_id=entry.model_id,
            batch_size=batch_size,
            match_threshold=threshold,
            aligner=manifest_aligner(entry, spec, ctx.models_dir),
            flip=flip,
            providers=ctx.providers,
            threads=ctx.threads,
        )

    # --- properties -------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Embedding length, as declared (or produced) by the model."""
        self.load()
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

    def crops(self, image: ImageArray, detections: Sequence[Detection]) -> list[ImageArray]:
        """The model's input crop of every detection (its alignment recipe), RGB, input_size."""
        return self.aligner.crops(image, detections)

    def embed(self, crops: Sequence[ImageArray] | npt.NDArray[np.uint8]) -> FloatArray:
        """(N, dim) float32, each row L2-normalised; one session call per batch.

        With ``flip``, each face's vector is the mean of its crop's and its mirror
        image's (test-time augmentation), then normalised.
        """
        self.load()
        batch = self._stack(crops)
        if self.flip and len(batch):
            both = self._raw(np.concatenate([batch, batch[:, :, ::-1]]))
            both /= np.maximum(np.linalg.norm(both, axis=1, keepdims=True), _NORM_EPS)
            out = both[: len(batch)] + both[len(batch) :]
        else:
            out = self._raw(batch)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, _NORM_EPS)  # type: ignore[no-any-return]

    def _raw(self, batch: npt.NDArray[np.uint8]) -> FloatArray:
        """Unnormalised model outputs, one session call per batch."""
        out = np.empty((batch.shape[0], self._dim), dtype=np.float32)
        for start in range(0, batch.shape[0], self._batch_size):
            chunk = batch[start : start + self._batch_size]
            vectors = self._run(self.preprocess(chunk))
            if vectors.shape[1] != self._dim:
                raise ModelError(
                    f"{self.model_id} returned {vectors.shape[1]}-d vectors, expected {self._dim}"
                )
            out[start : start + chunk.shape[0]] = vectors
        return out

    def preprocess(self, crops: npt.NDArray[np.uint8]) -> FloatArray:
        """(N, H, W, 3) RGB uint8 → the model's input tensor."""
        return self.spec.to_tensor(crops)

    # --- internals ----------------------------------------------------------------------

    def _stack(self, crops: Sequence[ImageArray] | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        height, width = self.spec.size
        batch = np.asarray(crops) if len(crops) else np.zeros((0, height, width, 3), np.uint8)
        if batch.ndim != 4 or batch.shape[1:] != (height, width, 3):
            raise ValueError(
                f"{self.model_id} takes (N, {height}, {width}, 3) crops, got {batch.shape};"
                " use FaceEmbedder.align to make them"
            )
        if batch.dtype != np.uint8:
            raise ValueError(f"crops must be uint8, got {batch.dtype}")
        return batch

    def _run(self, x: FloatArray, session: ModelSession | None = None) -> FloatArray:
        session = session or self.session
        result = session.run([self._output_name], {self._input_name: x})[0]
        return np.asarray(result, dtype=np.float32).reshape(x.shape[0], -1)

    def _check_input_shape(self, shape: list[Any], batch_size: int) -> int:
        """Reject a model whose declared input contradicts the spec; returns the batch size.

        Models exported with a fixed batch of 1 (common for ArcFace ONNX files) still
        work, one face per call.
        """
        height, width = self.spec.size
        want = [3, height, width] if self.spec.layout == "NCHW" else [height, width, 3]
        if len(shape) != 4:
            raise ModelError(f"{self.model_id}: input must be 4-d, model declares {shape}")
        for declared, expected in zip(shape[1:], want, strict=True):
            if isinstance(declared, int) and declared > 0 and declared != expected:
                raise ModelError(
                    f"{self.model_id}: model input is {shape}, the manifest says"
                    f" {self.spec.layout} {height}x{width}x3"
                )
        fixed = shape[0]
        if isinstance(fixed, int) and fixed > 0:
            return min(batch_size, fixed)
        return batch_size

    def _read_dim(self, session: ModelSession) -> int:
        """Output length from the model's declared output shape, or one probe run."""
        shape = list(session.get_outputs()[0].shape)
        tail = shape[1:]
        if tail and all(isinstance(d, int) and d > 0 for d in tail):
            return int(np.prod(tail))
        height, width = self.spec.size
        probe = np.zeros((1, height, width, 3), dtype=np.uint8)
        return int(self._run(self.preprocess(probe), session).shape[1])


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


def manifest_aligner(entry: ModelSpec, spec: InputSpec, models_dir: Path) -> Aligner:
    """The entry's ``alignment`` block: ``{"method": "dlib-chip", "landmarks": NAME,
    "padding": P}`` (dlib's predictor + ``get_face_chip``), else the ``input`` template."""
    block = entry.extra.get("alignment")
    if block is None or block.get("method", "template") == "template":
        return TemplateAligner(spec.template_array, spec.size)
    if block.get("method") != "dlib-chip":
        raise ModelError(f"embedder {entry.name!r}: unknown alignment method {block!r}")
    if spec.size[0] != spec.size[1]:
        raise ModelError(f"embedder {entry.name!r}: dlib chips are square, input is {spec.size}")
    predictor = load_shape_predictor(models_dir, str(block["landmarks"]))
    return DlibChipAligner(predictor, size=spec.size[0], padding=float(block.get("padding", 0.25)))
