"""The base of every ONNX model in the pipeline: lazy loading by manifest role, one tensor spec.

Shaped like Immich's ``InferenceModel``: a model is described by where its graph(s)
come from — a hash-verified file named in ``models/manifest.json`` (checked when the
model is built, so a missing or corrupt file fails at start), or a session injected by
a test — and opens its onnxruntime sessions on first use (:meth:`InferenceModel.load`,
idempotent and thread-safe). Subclasses declare their manifest ``role`` and implement
:meth:`InferenceModel._on_load`, where they read input names and shapes from the
sessions; everything else they add is their own pre/post-processing.

:class:`TensorSpec` is the one description of "pixels → model input" shared by every
model: channel order, per-channel mean/std in 0..255 units, tensor layout.
Model input = (pixel - mean) / std.

Subclasses: :class:`~facesearch.vision.detect.MtcnnDetector` (three graphs),
:class:`~facesearch.vision.liveness.LivenessModel`,
:class:`~facesearch.vision.embed.FaceEmbedder`,
:class:`~facesearch.vision.attributes.AttributeModel` (about 80 lines: a new model is a
small subclass).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

from facesearch.errors import ModelError
from facesearch.vision.ort import ModelSession, open_session
from facesearch.vision.registry import ModelSpec, get_spec, verify_file
from facesearch.vision.settings import VisionSettings

Layout = Literal["NCHW", "NHWC"]
Channels = Literal["RGB", "BGR"]


def triple(value: object) -> tuple[float, float, float]:
    """A number (the same for every channel) or three numbers, R, G, B."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value),) * 3
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3:
        r, g, b = (float(v) for v in value)
        return (r, g, b)
    raise ValueError(f"expected a number or 3 numbers, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """How pixels become a model's input tensor: channel order, mean/std, layout.

    The defaults describe "RGB scaled to 0..1, NHWC", the tfjs convention.
    """

    layout: Layout = "NHWC"
    channels: Channels = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # R, G, B order, 0..255 units
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)  # R, G, B order

    @staticmethod
    def parse_fields(block: Mapping[str, Any], *, label: str) -> dict[str, Any]:
        """The tensor keys of a manifest/settings block, validated; absent keys default.

        Every problem is a :class:`ModelError` naming ``label``.
        """
        if not isinstance(block, Mapping):
            raise ModelError(f"{label}: 'input' must be an object, got {block!r}")
        try:
            fields: dict[str, Any] = {
                "layout": block.get("layout", "NHWC"),
                "channels": block.get("channels", "RGB"),
                "mean": triple(block.get("mean", 0.0)),
                "std": triple(block.get("std", 255.0)),
            }
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{label}: malformed 'input' block: {exc}") from exc
        problems = []
        if fields["layout"] not in ("NCHW", "NHWC"):
            problems.append(f"layout must be NCHW or NHWC, got {fields['layout']!r}")
        if fields["channels"] not in ("RGB", "BGR"):
            problems.append(f"channels must be RGB or BGR, got {fields['channels']!r}")
        if not all(math.isfinite(s) and s > 0 for s in fields["std"]):
            problems.append(f"std must be positive, got {list(fields['std'])}")
        if not all(math.isfinite(m) for m in fields["mean"]):
            problems.append(f"mean must be finite, got {list(fields['mean'])}")
        if problems:
            raise ModelError(f"{label}: " + "; ".join(problems))
        return fields

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any], *, label: str) -> TensorSpec:
        return cls(**cls.parse_fields(block, label=label))

    def _constants(self) -> tuple[list[int], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        order = [2, 1, 0] if self.channels == "BGR" else [0, 1, 2]
        mean = np.asarray(self.mean, dtype=np.float32)[order]
        inv_std = (1.0 / np.asarray(self.std, dtype=np.float64)).astype(np.float32)[order]
        return order, mean, inv_std

    def normalise(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(..., 3) RGB uint8 → float32 in the model's channel order, (x - mean) / std."""
        order, mean, inv_std = self._constants()
        x = pixels[..., order] if order != [0, 1, 2] else pixels
        out = x.astype(np.float32)
        out -= mean
        out *= inv_std
        return out

    def to_tensor(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(N, H, W, 3) RGB uint8 → the model's contiguous input tensor."""
        x = self.normalise(batch)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def image_size(self, shape: Sequence[Any], *, label: str) -> tuple[int | None, int | None]:
        """(height, width) a 4-d input shape declares for this layout (None: symbolic)."""
        if len(shape) != 4:
            raise ModelError(f"{label}: input must be 4-d, model declares {list(shape)}")
        if self.layout == "NHWC":
            height, width, channels = shape[1], shape[2], shape[3]
        else:
            channels, height, width = shape[1], shape[2], shape[3]
        if isinstance(channels, int) and channels > 0 and channels != 3:
            raise ModelError(f"{label}: input {list(shape)} is not a 3-channel {self.layout} image")

        def fixed(d: Any) -> int | None:
            return int(d) if isinstance(d, int) and d > 0 else None

        return fixed(height), fixed(width)


@dataclass(frozen=True)
class ModelFile:
    """An ONNX file whose sha256 was checked when this was made; opened on first use."""

    path: Path
    sha256: str

    @classmethod
    def verified(cls, path: Path, sha256: str, *, label: str) -> ModelFile:
        verify_file(path, sha256, label=label)
        return cls(path, sha256.lower())


Source = ModelSession | ModelFile


@dataclass(frozen=True)
class LoadContext:
    """Where a manifest entry is being loaded: its models dir and the ORT session knobs."""

    models_dir: Path
    providers: str = "auto"
    threads: int = 0


class InferenceModel:
    """One or more ONNX graphs, opened lazily; subclasses add pre/post-processing.

    ``sources`` are sessions (tests, or a caller that shares them) or verified
    :class:`ModelFile` s. With only sessions the model is loaded (and its inputs
    checked) at once; with files, on the first :meth:`load` — which every public
    method of a subclass calls — so building a pipeline stays cheap at cold start.
    """

    #: the manifest ``role`` this class accepts
    role: ClassVar[str] = ""

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        model_id: str,
        providers: str = "auto",
        threads: int = 0,
    ) -> None:
        if not sources:
            raise ModelError(f"{model_id}: no model graph given")
        self.model_id = model_id
        self._sources = tuple(sources)
        self._providers = providers
        self._threads = threads
        self._sessions: tuple[ModelSession, ...] | None = None
        self._lock = threading.Lock()
        if not any(isinstance(s, ModelFile) for s in self._sources):
            self.load()

    # --- loading -----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._sessions is not None

    def load(self) -> None:
        """Open every session and read its inputs; idempotent and thread-safe."""
        if self._sessions is not None:
            return
        with self._lock:
            if self._sessions is not None:
                return
            sessions = tuple(
                open_session(s.path, providers=self._providers, threads=self._threads)
                if isinstance(s, ModelFile)
                else s
                for s in self._sources
            )
            self._on_load(sessions)
            self._sessions = sessions

    @property
    def sessions(self) -> tuple[ModelSession, ...]:
        self.load()
        assert self._sessions is not None
        return self._sessions

    @property
    def session(self) -> ModelSession:
        return self.sessions[0]

    def _on_load(self, sessions: tuple[ModelSession, ...]) -> None:
        """Read (and check) input/output names and shapes; raise ModelError on a misfit."""

    # --- manifest ----------------------------------------------------------------------

    @classmethod
    def manifest_entry(cls, models_dir: Path, name: str) -> ModelSpec:
        """The manifest entry ``name``, refused unless its role is this class's."""
        spec = get_spec(models_dir, name)
        if spec.role != cls.role:
            raise ModelError(f"model {name!r} has role {spec.role!r}, not {cls.role!r}")
        return spec

    @classmethod
    def manifest_source(
        cls, models_dir: Path, name: str, session: ModelSession | None = None
    ) -> tuple[ModelSpec, Source]:
        """(entry, source): the injected session, else the entry's file, hash-verified now."""
        spec = cls.manifest_entry(models_dir, name)
        if session is not None:
            return spec, session
        return spec, ModelFile.verified(spec.path(models_dir), spec.sha256, label=name)

    @classmethod
    def from_manifest(
        cls,
        models_dir: Path,
        name: str,
        *,
        session: ModelSession | None = None,
        providers: str = "auto",
        threads: int = 0,
        **options: Any,
    ) -> Self:
        """Manifest entry ``name`` (role checked, file hash-verified now, opened on first use).

        ``options`` go to the subclass's :meth:`from_entry` (e.g. an embedder's batch size).
        """
        entry, source = cls.manifest_source(models_dir, name, session)
        return cls.from_entry(entry, source, LoadContext(models_dir, providers, threads), **options)

    @classmethod
    def from_section(
        cls,
        vision: VisionSettings,
        name: str,
        *,
        session: ModelSession | None = None,
        **options: Any,
    ) -> Self:
        """Manifest entry ``name`` with the section's ONNX providers and threads."""
        return cls.from_manifest(
            vision.models_dir,
            name,
            session=session,
            providers=vision.onnx_providers,
            threads=vision.onnx_threads,
            **options,
        )

    @staticmethod
    def custom_source(
        path: Path, sha256: str | None, session: ModelSession | None, *, setting: str
    ) -> tuple[Source, str]:
        """(source, model id) of an operator-supplied file outside the manifest.

        ``setting`` is the env-name stem (``EMBEDDER``): ``FACESEARCH_<setting>_SHA256``
        must pin the file. The id ``<file stem>@<sha12>`` keeps two files apart forever.
        """
        if not sha256:
            raise ModelError(
                f"FACESEARCH_{setting}_PATH is set without FACESEARCH_{setting}_SHA256;"
                " a model is only loaded when its hash is pinned"
            )
        sha = sha256.lower()
        model_id = f"{Path(path).stem}@{sha[:12]}"
        if session is not None:
            return session, model_id
        return ModelFile.verified(Path(path), sha, label=str(path)), model_id

    @classmethod
    def from_entry(cls, entry: ModelSpec, source: Source, ctx: LoadContext, **opts: Any) -> Self:
        """Build from one manifest entry (``ctx.models_dir`` finds helper models it names);
        single-graph subclasses implement this."""
        raise ModelError(f"{cls.__name__} is not built from a single manifest entry")

    @staticmethod
    def no_options(opts: Mapping[str, Any], kind: str) -> None:
        """A subclass's :meth:`from_entry` refuses options it does not take (the base
        signature accepts any, so a misspelt option would otherwise pass silently)."""
        if opts:
            raise TypeError(f"unknown {kind} options {sorted(opts)}")

    @staticmethod
    def block(spec: ModelSpec, key: str, *, required: bool = True) -> Mapping[str, Any]:
        """An object-valued manifest key (``input``, ``crop``, ``output``)."""
        value = spec.extra.get(key)
        if value is None and not required:
            return {}
        if not isinstance(value, Mapping):
            raise ModelError(f"{spec.role} {spec.name!r}: manifest entry needs an {key!r} object")
        return value


def single_io(session: ModelSession, label: str) -> tuple[str, list[Any], str]:
    """(input name, input shape, first output name) of a one-input graph."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{label}: expected 1 input, model has {len(inputs)}")
    return inputs[0].name, list(inputs[0].shape), session.get_outputs()[0].name
