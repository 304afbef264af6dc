"""LivenessModel: crop geometry, batching and validation (fake sessions), and what the
real ``liveness-v1`` model does on real faces and on synthetic presentation attacks.

The attack images are made here, from the real photos, at test time (no binary
fixtures): a re-captured screen (moiré, gamma, blur, cool tint), a printed page
(CMY halftone, reduced ink range, paper tint and grain) and heavy JPEG re-compression,
plus pure noise and flat images. Faces keep the boxes detected on the original photo,
so each attack changes the pixels the model sees and nothing else.

What is asserted is what the model was measured to do, not what a liveness model
should do: it scores real faces high, but it does NOT reliably score noise or flat
images low and it does not catch these synthetic attacks (see
``models/liveness/PROVENANCE.md``). Those gaps are pinned with ``xfail(strict=True)``,
so a better model makes them XPASS and fail loudly, prompting an update.
Run with ``-s`` to print the score table.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from facesearch.config import DEFAULT_MODELS_DIR, load_settings
from facesearch.errors import InvalidImage, ModelError
from facesearch.vision.decode import decode_image
from facesearch.vision.detect import MtcnnDetector
from facesearch.vision.embed import FaceEmbedder
from facesearch.vision.liveness import LivenessCrop, LivenessInput, LivenessModel
from facesearch.vision.types import Detection, ImageArray

MODEL = "liveness-v1"
# Real faces: the labelled portraits (their largest face) and group-photo faces at least
# this wide; smaller boxes in these photos include non-faces (a 56 px patch of a chair).
GROUP_MIN_FACE_PX = 80
NOISE_SEEDS = 20


# --------------------------------------------------------------------------------------
# Fake session: records calls, returns a chosen function of its input


@dataclass
class _Node:
    name: str
    shape: list[Any]


class FakeSession:
    def __init__(self, shape: list[Any], fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.shape = shape
        self.fn = fn
        self.calls: list[np.ndarray] = []

    def get_inputs(self) -> list[Any]:
        return [_Node("x", self.shape)]

    def get_outputs(self) -> list[Any]:
        return [_Node("y", ["batch", 2])]

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feed["x"]
        self.calls.append(x)
        return [self.fn(x)]


def _mean_score(x: np.ndarray) -> np.ndarray:
    """Column 0 = mean of the input tensor, column 1 = its complement."""
    m = x.reshape(len(x), -1).mean(axis=1)
    return np.stack([m, 1 - m], axis=1).astype(np.float32)


def _det(x1: float, y1: float, x2: float, y2: float) -> Detection:
    return Detection(
        box=np.array([x1, y1, x2, y2], dtype=np.float32),
        score=0.99,
        landmarks=np.zeros((5, 2), dtype=np.float32),
    )


# --------------------------------------------------------------------------------------
# Crop geometry and batching (fake sessions)


def test_crop_region_is_the_scaled_square_around_the_shifted_centre() -> None:
    crop = LivenessCrop(square=True, scale=1.5, center_shift=(0.0, 0.1))
    # box 100 wide, 200 high, centre (150, 200) -> shifted centre (150, 220), side 300
    assert crop.region((100, 100, 200, 300)) == (0, 70, 300, 300)
    loose = LivenessCrop(square=False, scale=2.0, center_shift=(0.0, 0.0))
    assert loose.region((10, 10, 30, 50)) == (0, -10, 40, 80)


def test_one_session_call_for_all_faces_in_detection_order() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[:, 100:] = 255  # left half black, right half white
    session = FakeSession(["batch", 32, 32, 3], _mean_score)
    model = LivenessModel(session, model_id="fake@1", crop=LivenessCrop(True, 1.0, (0, 0)))
    scores = model.score(image, [_det(120, 20, 180, 80), _det(20, 20, 80, 80)])
    assert len(session.calls) == 1 and session.calls[0].shape == (2, 32, 32, 3)
    assert scores.dtype == np.float32 and scores.shape == (2,)
    assert scores == pytest.approx([1.0, 0.0])


def test_outside_the_image_is_zero_padded() -> None:
    image = np.full((40, 40, 3), 255, dtype=np.uint8)
    session = FakeSession(["batch", 8, 8, 3], _mean_score)
    model = LivenessModel(session, model_id="fake@1", crop=LivenessCrop(True, 2.0, (0, 0)))
    # a 20 px box centred on the image corner -> a 40 px square of which only the
    # bottom-right quarter lies inside the image
    corner = [_det(-10, -10, 10, 10)]
    crop = model.crops(image, corner)[0]
    assert crop[:4, :].max() == 0 and crop[:, :4].max() == 0 and crop[4:, 4:].min() == 255
    assert model.score(image, corner)[0] == pytest.approx(0.25)


def test_normalisation_channel_order_and_nchw_layout() -> None:
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    image[..., 0] = 200  # pure red
    session = FakeSession(["batch", 3, 4, 6], lambda x: np.zeros((len(x), 2), np.float32))
    spec = LivenessInput(layout="NCHW", channels="BGR", mean=(100, 0, 0), std=(50, 1, 1))
    model = LivenessModel(session, model_id="fake@1", input_spec=spec)
    assert model.size == (4, 6)
    model.score(image, [_det(5, 5, 15, 15)])
    x = session.calls[0]
    assert x.shape == (1, 3, 4, 6)
    assert np.allclose(x[0, 2], (200 - 100) / 50)  # red is the last channel in BGR
    assert np.allclose(x[0, :2], 0.0)


def test_no_faces_no_session_call() -> None:
    session = FakeSession(["batch", 32, 32, 3], _mean_score)
    model = LivenessModel(session, model_id="fake@1")
    scores = model.score(np.zeros((50, 50, 3), np.uint8), [])
    assert scores.shape == (0,) and scores.dtype == np.float32 and session.calls == []


@pytest.mark.parametrize(
    "image",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3))],
)
def test_rejects_non_rgb_uint8_images(image: np.ndarray) -> None:
    model = LivenessModel(FakeSession(["batch", 32, 32, 3], _mean_score), model_id="fake@1")
    with pytest.raises(InvalidImage):
        model.score(image, [_det(0, 0, 5, 5)])


@pytest.mark.parametrize(
    "shape", [["batch", "h", "w", 3], ["batch", 32, 32, 1], ["batch", 32, 32], [1, 3, 32, 32]]
)
def test_rejects_inputs_it_cannot_fill(shape: list[Any]) -> None:
    with pytest.raises(ModelError):
        LivenessModel(FakeSession(shape, _mean_score), model_id="fake@1")


def test_live_index_beyond_the_output_is_a_model_error() -> None:
    session = FakeSession(["batch", 32, 32, 3], lambda x: np.zeros((len(x), 1), np.float32))
    model = LivenessModel(session, model_id="fake@1", live_index=1)
    with pytest.raises(ModelError, match="live_index"):
        model.score(np.zeros((50, 50, 3), np.uint8), [_det(10, 10, 40, 40)])


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"scale": -1}, "positive"),
        ({"scale": "big"}, "malformed"),
        ({"square": True}, "malformed"),
        ({"scale": 1.1, "pad": "replicate"}, "pad=zeros"),
    ],
)
def test_malformed_crop_blocks_are_model_errors(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        LivenessCrop.from_mapping(block, label="x")


# --------------------------------------------------------------------------------------
# The real model, from the manifest


@pytest.fixture(scope="module")
def model() -> LivenessModel:
    return LivenessModel.from_settings(load_settings().vision)


def test_manifest_model_reads_its_size_and_recipe(model: LivenessModel) -> None:
    assert model.model_id == f"{MODEL}@1"
    assert model.size == (32, 32)
    assert model.crop.square and model.crop.scale == pytest.approx(1.11)
    assert model.input_spec.std == (255.0, 255.0, 255.0)


def test_manifest_size_must_match_the_model() -> None:
    session = FakeSession(["batch", 64, 64, 3], _mean_score)
    with pytest.raises(ModelError, match="manifest size"):
        LivenessModel.from_manifest(DEFAULT_MODELS_DIR, MODEL, session=session)


def test_a_model_of_another_role_is_refused() -> None:
    with pytest.raises(ModelError, match="role"):
        LivenessModel.from_manifest(DEFAULT_MODELS_DIR, "mobileface-v1")


# --------------------------------------------------------------------------------------
# Real faces and synthetic attacks


@dataclass(frozen=True)
class Photo:
    name: str
    rgb: ImageArray
    faces: list[Detection]
    portrait: bool  # a labelled single-person photo


@pytest.fixture(scope="module")
def real_photos(photos_dir: Path) -> list[Photo]:
    detector = MtcnnDetector.from_settings(load_settings().vision)
    photos: list[Photo] = []
    for path in sorted((photos_dir / "labelled").rglob("*.*")):
        rgb = decode_image(path.read_bytes()).rgb
        faces = detector.detect(rgb)
        assert faces, f"no face found in {path}"
        photos.append(Photo(path.stem, rgb, [max(faces, key=lambda d: d.width)], portrait=True))
    for path in sorted((photos_dir / "group").glob("*.jpg")):
        rgb = decode_image(path.read_bytes()).rgb
        faces = [d for d in detector.detect(rgb) if d.width >= GROUP_MIN_FACE_PX]
        photos.append(Photo(path.stem, rgb, faces, portrait=False))
    return photos


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, name)))


def screen_recapture(rgb: ImageArray, rng: np.random.Generator) -> ImageArray:
    """A photo of a screen: moiré beat of two gratings, display gamma, blur, cool tint."""
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    a1, a2 = np.deg2rad(12 + rng.uniform(-2, 2)), np.deg2rad(17 + rng.uniform(-2, 2))
    grating = np.sin(2 * np.pi / 3.1 * (xx * np.cos(a1) + yy * np.sin(a1))) * np.sin(
        2 * np.pi / 3.3 * (xx * np.cos(a2) + yy * np.sin(a2))
    )
    x = (rgb.astype(np.float32) / 255) ** 0.7
    x = x * (1 + 0.25 * grating[..., None]) * np.array([0.92, 0.98, 1.08], np.float32)
    x = np.asarray(cv2.GaussianBlur(x, (0, 0), 1.2), dtype=np.float32)
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def printed_paper(rgb: ImageArray, rng: np.random.Generator) -> ImageArray:
    """A printed photo: CMY halftone dots, ink spread, reduced range, paper tint and grain."""
    height, width = rgb.shape[:2]
    x = np.asarray(cv2.GaussianBlur(rgb.astype(np.float32) / 255, (0, 0), 0.8), np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dots = np.empty_like(x)
    for channel, angle in enumerate((15, 75, 45)):
        a = np.deg2rad(angle)
        u, v = xx * np.cos(a) + yy * np.sin(a), yy * np.cos(a) - xx * np.sin(a)
        screen = (np.cos(2 * np.pi * u / 6) * np.cos(2 * np.pi * v / 6) + 1) / 2
        dots[..., channel] = (x[..., channel] > screen).astype(np.float32)
    out = 0.16 + 0.68 * np.asarray(cv2.GaussianBlur(dots, (0, 0), 1.0), dtype=np.float32)
    out = out * np.array([1.0, 0.97, 0.9], np.float32)
    noise = rng.normal(0, 1, (height, width)).astype(np.float32)
    blotches = np.asarray(cv2.GaussianBlur(noise, (0, 0), 25), dtype=np.float32)
    out += rng.normal(0, 0.03, (height, width, 1)).astype(np.float32)
    out += 0.04 * (blotches / (float(np.abs(blotches).max()) + 1e-6))[..., None]
    printed: ImageArray = np.clip(out * 255, 0, 255).astype(np.uint8)
    return printed


def jpeg_recompressed(rgb: ImageArray, rng: np.random.Generator) -> ImageArray:
    """Three rounds of quality-6 JPEG: blocking and colour bleeding, as after re-sharing."""
    del rng
    image = Image.fromarray(rgb)
    for _ in range(3):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=6)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(image, dtype=np.uint8)


ATTACKS: dict[str, Callable[[ImageArray, np.random.Generator], ImageArray]] = {
    "screen": screen_recapture,
    "print": printed_paper,
    "jpeg": jpeg_recompressed,
}


@pytest.fixture(scope="module")
def real_scores(model: LivenessModel, real_photos: list[Photo]) -> np.ndarray:
    return np.concatenate([model.score(p.rgb, p.faces) for p in real_photos])


def _face_area(model: LivenessModel, photo: Photo) -> tuple[ImageArray, list[Detection]]:
    """The part of the photo the crops use, with boxes shifted into it (faster attacks).

    The area is clamped to the image, so a crop reaching outside the image still
    reaches outside the area, and zero padding is unchanged.
    """
    regions = np.array([model.crop.region(d.box) for d in photo.faces])
    height, width = photo.rgb.shape[:2]
    x0, y0 = max(int(regions[:, 0].min()), 0), max(int(regions[:, 1].min()), 0)
    x1 = min(int((regions[:, 0] + regions[:, 2]).max()), width)
    y1 = min(int((regions[:, 1] + regions[:, 3]).max()), height)
    offset = np.array([x0, y0, x0, y0], dtype=np.float32)
    shifted = [
        Detection(box=d.box - offset, score=d.score, landmarks=d.landmarks - offset[:2])
        for d in photo.faces
    ]
    return photo.rgb[y0:y1, x0:x1], shifted


@pytest.fixture(scope="module")
def attack_scores(model: LivenessModel, real_photos: list[Photo]) -> dict[str, np.ndarray]:
    scores: dict[str, list[np.ndarray]] = {name: [] for name in ATTACKS}
    for photo in real_photos:
        area, faces = _face_area(model, photo)
        for name, attack in ATTACKS.items():
            scores[name].append(model.score(attack(area, _rng(name + photo.name)), faces))
    return {name: np.concatenate(parts) for name, parts in scores.items()}


def test_face_area_leaves_the_real_scores_unchanged(
    model: LivenessModel, real_photos: list[Photo], real_scores: np.ndarray
) -> None:
    areas = [_face_area(model, p) for p in real_photos]
    assert np.array_equal(np.concatenate([model.score(a, f) for a, f in areas]), real_scores)


def _centre_box(size: int) -> list[Detection]:
    return [_det(size / 4, size / 4, 3 * size / 4, 3 * size / 4)]


@pytest.fixture(scope="module")
def noise_scores(model: LivenessModel) -> dict[str, np.ndarray]:
    size = 256
    uniform, gaussian = [], []
    for seed in range(NOISE_SEEDS):
        rng = np.random.default_rng(seed)
        u = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        g = np.clip(rng.normal(128, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        uniform.append(model.score(u, _centre_box(size))[0])
        gaussian.append(model.score(g, _centre_box(size))[0])
    flat = [
        model.score(np.full((size, size, 3), level, np.uint8), _centre_box(size))[0]
        for level in range(0, 256, 32)
    ]
    return {
        "uniform noise": np.array(uniform),
        "gaussian noise": np.array(gaussian),
        "flat 0..224": np.array(flat),
        "flat grey 128": model.score(np.full((size, size, 3), 128, np.uint8), _centre_box(size)),
    }


def test_real_faces_score_live(
    model: LivenessModel, real_photos: list[Photo], real_scores: np.ndarray
) -> None:
    threshold = load_settings().vision.liveness_threshold
    portraits = [model.score(p.rgb, p.faces)[0] for p in real_photos if p.portrait]
    assert len(portraits) == 5 and min(portraits) >= threshold, portraits
    assert len(real_scores) >= 25
    # measured: 31 faces, all >= 0.5, min 0.506 (one group face), median 0.99
    assert np.mean(real_scores >= threshold) >= 0.95
    assert np.median(real_scores) >= 0.9


def test_scores_are_deterministic_and_batch_independent(
    model: LivenessModel, real_photos: list[Photo]
) -> None:
    photo = max(real_photos, key=lambda p: len(p.faces))
    together = model.score(photo.rgb, photo.faces)
    alone = np.array([model.score(photo.rgb, [d])[0] for d in photo.faces])
    assert np.allclose(together, alone, atol=1e-5)


def test_score_table(
    real_scores: np.ndarray,
    attack_scores: dict[str, np.ndarray],
    noise_scores: dict[str, np.ndarray],
) -> None:
    """Prints the measured table (``pytest -s``); asserts only that it is complete."""
    threshold = load_settings().vision.liveness_threshold
    rows = {"real faces": real_scores, **attack_scores, **noise_scores}
    print(f"\nliveness-v1 scores (threshold {threshold})")
    print(f"{'condition':16s} {'n':>3s} {'mean':>6s} {'min':>6s} {'max':>6s} {'>=thr':>6s}")
    for name, s in rows.items():
        print(
            f"{name:16s} {len(s):3d} {s.mean():6.3f} {s.min():6.3f} {s.max():6.3f} "
            f"{np.mean(s >= threshold):6.2f}"
        )
    assert all(
        len(s) and np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all() for s in rows.values()
    )


@pytest.mark.xfail(
    strict=True,
    reason="measured: liveness-v1 puts 35% of uniform-noise, 85% of gaussian-noise and 50% "
    "of flat images at or above 0.5 (flat grey 128: 0.62); it does not reject them. The "
    "detector does: none of these images yields a face.",
)
def test_noise_and_flat_images_score_below_threshold(noise_scores: dict[str, np.ndarray]) -> None:
    threshold = load_settings().vision.liveness_threshold
    for name, s in noise_scores.items():
        assert np.mean(s >= threshold) <= 0.1, name


@pytest.mark.xfail(
    strict=True,
    reason="measured: 97-100% of synthetic screen/print/JPEG attack faces still score >= 0.5; "
    "liveness-v1 was trained on one person's phone-replay video, not on attacks like these",
)
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_synthetic_attacks_score_below_threshold(
    attack: str, attack_scores: dict[str, np.ndarray]
) -> None:
    threshold = load_settings().vision.liveness_threshold
    assert np.mean(attack_scores[attack] >= threshold) <= 0.5


def test_screen_recapture_lowers_most_scores_a_little(
    real_scores: np.ndarray, attack_scores: dict[str, np.ndarray]
) -> None:
    """The one attack the model reacts to (it was trained on screen replays), weakly:
    measured 27/31 faces lower, mean drop 0.06, AUC real-vs-screen 0.66."""
    drop = real_scores - attack_scores["screen"]
    assert np.mean(drop > 0) >= 0.7
    assert 0 < drop.mean() < 0.3


# --------------------------------------------------------------------------------------
# A pluggable model: a generated ONNX of MiniFASNet's shape, loaded from settings


def _minifasnet_like(path: Path) -> str:
    """[N,3,80,80] -> 3 logits; logit 1 ("real") = (channel 2 - channel 0) / 64, i.e.
    (R - B) / 64 when fed BGR — so the test sees channel order, layout and softmax."""
    import hashlib

    from onnx import TensorProto, helper, numpy_helper

    weights = np.zeros((3, 3), np.float32)
    weights[0, 1], weights[2, 1] = -1 / 64, 1 / 64
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "minifasnet_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 80, 80])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_custom_liveness_model_from_settings(tmp_path: Path) -> None:
    path = tmp_path / "minifasnet_v2.onnx"
    sha = _minifasnet_like(path)
    vision = load_settings(
        liveness_path=path, liveness_sha256=sha, onnx_providers="CPUExecutionProvider"
    ).vision
    model = LivenessModel.from_settings(vision)
    assert model.model_id == f"minifasnet_v2@{sha[:12]}"
    assert model.size == (80, 80) and model.live_index == 1 and model.apply_softmax
    assert (model.input_spec.layout, model.input_spec.channels) == ("NCHW", "BGR")
    assert model.crop.scale == pytest.approx(2.7) and not model.crop.square
    image = np.zeros((400, 800, 3), np.uint8)
    image[:, :400, 0] = 200  # left half red
    image[:, 400:, 2] = 200  # right half blue
    scores = model.score(image, [_det(150, 150, 250, 250), _det(550, 150, 650, 250)])
    real = np.exp(200 / 64) / (np.exp(200 / 64) + 2)  # softmax of logits (0, 200/64, 0)
    fake = np.exp(-200 / 64) / (np.exp(-200 / 64) + 2)
    assert scores == pytest.approx([real, fake], rel=1e-4)


def test_custom_liveness_overrides_and_pins(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    sha = _minifasnet_like(path)
    square = LivenessModel.from_settings(
        load_settings(
            liveness_path=path,
            liveness_sha256=sha,
            liveness_input={"crop": {"square": True, "scale": 4.0}, "apply_softmax": False},
        ).vision
    )
    assert square.crop.square and square.crop.scale == 4.0 and not square.apply_softmax
    with pytest.raises(ModelError, match="LIVENESS_SHA256"):
        LivenessModel.from_settings(load_settings(liveness_path=path).vision)
    with pytest.raises(ModelError, match="sha256"):
        LivenessModel.from_settings(
            load_settings(liveness_path=path, liveness_sha256="0" * 64).vision
        )
    with pytest.raises(ModelError, match="unknown liveness_input"):
        LivenessModel.from_settings(
            load_settings(liveness_path=path, liveness_sha256=sha, liveness_input={"x": 1}).vision
        )
    with pytest.raises(ModelError, match="manifest size"):
        LivenessModel.from_settings(
            load_settings(
                liveness_path=path, liveness_sha256=sha, liveness_input={"size": [64, 64]}
            ).vision
        ).load()  # the graph is opened (and its input checked) on first use


def test_pipeline_records_the_custom_liveness_score(tmp_path: Path, photos_dir: Path) -> None:
    from facesearch.vision.pipeline import FacePipeline

    path = tmp_path / "m.onnx"
    sha = _minifasnet_like(path)
    settings = load_settings(
        liveness_path=path, liveness_sha256=sha, onnx_providers="CPUExecutionProvider"
    )
    result = FacePipeline(settings).process(
        (photos_dir / "labelled/obama/obama_1.jpg").read_bytes()
    )
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.liveness is not None and 0.0 < face.liveness < 1.0
    assert face.live == (face.liveness >= settings.vision.liveness_threshold)


@pytest.mark.parametrize(
    ("model_class", "name", "kind"),
    [(LivenessModel, MODEL, "liveness"), (FaceEmbedder, "dlib-resnet-v1", "embedder")],
)
def test_an_option_the_model_does_not_take_is_refused(
    model_class: type[LivenessModel] | type[FaceEmbedder], name: str, kind: str
) -> None:
    """The base signature takes any option, so each model refuses the ones it does not know
    (a misspelt knob must not load a model silently configured otherwise)."""
    with pytest.raises(TypeError, match=rf"unknown {kind} options \['bogus'\]"):
        model_class.from_manifest(DEFAULT_MODELS_DIR, name, bogus=1)
