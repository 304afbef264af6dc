"""MTCNN detector: geometry helpers, guards, and agreement with the real ``mtcnn`` package.

The acceptance check compares our detections with ``mtcnn.MTCNN().detect_faces``
output recorded on the same pixels by ``models/export/make_mtcnn_reference.py``
(TensorFlow runs only there, never here).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from facesearch.config import DEFAULT_MODELS_DIR, load_settings
from facesearch.errors import InvalidImage, ModelError
from facesearch.vision.decode import decode_image
from facesearch.vision.detect import MODEL_NAMES, MtcnnDetector
from facesearch.vision.mtcnn_geometry import (
    PNET_MIN_INPUT_PX,
    crop_and_resize,
    decode_landmarks,
    iou_matrix,
    nms,
    pnet_boxes,
    regress,
    scale_pyramid,
    square,
)
from facesearch.vision.ort import open_session
from facesearch.vision.registry import verified_path

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "data" / "reference"
REFERENCE = json.loads((REFERENCE_DIR / "mtcnn_reference.json").read_text())
KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
THRESHOLDS = (0.6, 0.7, 0.8)  # mtcnn's defaults, which the reference was recorded with

# Agreement with the reference. Measured (22 images, 49 faces): IoU >= 0.9996, |score| <=
# 1.1e-4, landmarks <= 0.005 px. The margins absorb float noise (TF vs onnxruntime, cv2
# vs TF area resize ~1e-5), which can flip the order of tied saturated P-Net scores.
MIN_IOU = 0.9
MAX_SCORE_DIFF = 0.01
LANDMARK_TOLERANCE_PX = 3.0
LANDMARK_TOLERANCE_OF_BOX = 0.03  # big faces: 3 % of the box side
# A face may be missing on one side only when its score sits this close to the O-Net
# threshold: float noise can move a borderline window across it.
BORDERLINE = 0.01


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_paths() -> tuple[Path, Path, Path]:
    try:
        pnet, rnet, onet = (verified_path(DEFAULT_MODELS_DIR, name) for name in MODEL_NAMES)
    except ModelError as exc:
        pytest.fail(f"MTCNN models unavailable: {exc.message} (run `make models`)")
    return pnet, rnet, onet


@pytest.fixture(scope="module")
def detector(model_paths: tuple[Path, Path, Path]) -> MtcnnDetector:
    """Reference settings, full resolution (the reference ran on full-size photos)."""
    return MtcnnDetector.from_paths(
        *model_paths, providers="CPUExecutionProvider", thresholds=THRESHOLDS
    )


def _decode(photos_dir: Path, name: str) -> np.ndarray:
    return decode_image((photos_dir / name).read_bytes()).rgb


def _load_reference_script() -> ModuleType:
    """The script that made the reference JSON; its transforms must be the ones we replay.

    It imports only numpy/cv2 at module level (TensorFlow is loaded in a subprocess),
    so the tests can use its functions directly instead of keeping a copy.
    """
    path = Path(__file__).resolve().parents[3] / "models/export/make_mtcnn_reference.py"
    spec = importlib.util.spec_from_file_location("make_mtcnn_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_REFERENCE_SCRIPT = _load_reference_script()
apply_transform = _REFERENCE_SCRIPT.apply_transform
_pixels_sha256 = _REFERENCE_SCRIPT.pixels_sha256


def _boxes(rows: npt.ArrayLike) -> np.ndarray:
    """(N, 5) array with a dummy score column, the layout the geometry helpers take."""
    array = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([array, np.zeros((len(array), 1))], axis=1)


class FakeSession:
    """Stands in for an ORT session: fixed I/O names; records or refuses runs."""

    def __init__(self, outputs: Sequence[str], result: list[np.ndarray] | None = None) -> None:
        self._outputs = [SimpleNamespace(name=n) for n in outputs]
        self._result = result
        self.calls = 0

    def get_inputs(self) -> list[Any]:
        return [SimpleNamespace(name="input")]

    def get_outputs(self) -> list[Any]:
        return self._outputs

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        if self._result is None:
            raise AssertionError("this session must not be called")
        return self._result


def _fake_detector(**kwargs: Any) -> tuple[MtcnnDetector, list[FakeSession]]:
    sessions = [
        FakeSession(["bbox_reg", "prob"]),
        FakeSession(["bbox_reg", "prob"]),
        FakeSession(["bbox_reg", "landmarks", "prob"]),
    ]
    return MtcnnDetector(*sessions, **kwargs), sessions


# --- the ONNX graphs against the Keras networks ----------------------------------------------


def test_networks_match_keras_outputs(model_paths: tuple[Path, Path, Path]) -> None:
    """Per-network check of build_mtcnn.py: noise and real-photo probes, Keras outputs recorded."""
    recorded = np.load(REFERENCE_DIR / "mtcnn_networks.npz")
    probes = {
        "pnet": ["pnet_noise", "pnet_real"],
        "rnet": ["rnet"],
        "onet": ["onet"],
    }
    worst = 0.0
    for path, (net, keys) in zip(model_paths, probes.items(), strict=True):
        session = open_session(path, providers="CPUExecutionProvider")
        for key in keys:
            x = (recorded[f"{key}_in"].astype(np.float32) - 127.5) / 128.0
            outputs = session.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
            for index, raw in enumerate(outputs):
                keras = recorded[f"{key}_out{index}"]
                ours = raw.transpose(0, 2, 3, 1) if net == "pnet" else raw  # NCHW -> NHWC
                assert ours.shape == keras.shape, (key, index)
                worst = max(worst, float(np.abs(ours - keras).max()))
    assert worst < 1e-4


# --- agreement with mtcnn.MTCNN().detect_faces -------------------------------------------------


def _reference_id(entry: dict[str, Any]) -> str:
    return f"{entry['file']}|{entry['transform']}"


@dataclass(frozen=True)
class Agreement:
    """How one reference image's detections compare with ours."""

    matched: list[tuple[float, float, float, float]]  # (iou, |score diff|, landmark px, side)
    missed: list[float]  # scores of reference faces we did not find
    extra: list[float]  # scores of our faces the reference does not have


@functools.cache
def _agreement(detector: MtcnnDetector, photos_dir: Path, index: int) -> Agreement:
    """Run our detector on reference image ``index`` (cached: two tests read it)."""
    entry = REFERENCE["images"][index]
    rgb = apply_transform(_decode(photos_dir, entry["file"]), entry["transform"])
    assert _pixels_sha256(rgb) == entry["pixels_sha256"], (
        "decoded pixels differ from the ones the reference was recorded on (decoder or "
        "photo changed): re-run models/export/make_mtcnn_reference.py"
    )
    ours = detector.detect(rgb)
    faces = entry["faces"]
    ref_boxes = np.array([face["box"] for face in faces]).reshape(-1, 4)
    our_boxes = np.array([d.box for d in ours]).reshape(-1, 4)
    overlap = iou_matrix(_boxes(ref_boxes), _boxes(our_boxes))
    matched, missed, used = [], [], set()
    for i, face in enumerate(faces):
        j = int(np.argmax(overlap[i])) if len(ours) else -1
        if j < 0 or overlap[i, j] < MIN_IOU or j in used:
            missed.append(face["confidence"])
            continue
        used.add(j)
        points = np.array([face["keypoints"][k] for k in KEYPOINTS])
        deviation = float(np.abs(ours[j].landmarks - points).max())
        side = max(ours[j].width, ours[j].height)
        score_diff = abs(ours[j].score - face["confidence"])
        matched.append((float(overlap[i, j]), score_diff, deviation, side))
    extra = [d.score for j, d in enumerate(ours) if j not in used]
    return Agreement(matched, missed, extra)


@pytest.mark.parametrize(
    "index", range(len(REFERENCE["images"])), ids=lambda i: _reference_id(REFERENCE["images"][i])
)
def test_matches_mtcnn_reference(index: int, detector: MtcnnDetector, photos_dir: Path) -> None:
    """Same faces as mtcnn: IoU >= 0.9, score within 0.01, landmarks within 3 px / 3 %."""
    result = _agreement(detector, photos_dir, index)
    for iou, score_diff, deviation, side in result.matched:
        assert iou >= MIN_IOU and score_diff <= MAX_SCORE_DIFF
        assert deviation <= max(LANDMARK_TOLERANCE_PX, LANDMARK_TOLERANCE_OF_BOX * side)
    borderline = THRESHOLDS[2] + BORDERLINE
    assert all(score < borderline for score in result.missed), f"missed {result.missed}"
    assert all(score < borderline for score in result.extra), f"extra faces {result.extra}"


def test_reference_agreement_is_tight_overall(detector: MtcnnDetector, photos_dir: Path) -> None:
    """Over all images almost every face agrees to float noise, not just to the tolerances.

    The per-image tolerances leave room for a rare tie flip; a systematic error (a
    1 px landmark offset, a wrong NMS, a resize off by a pixel) would hide inside
    them, so most faces must agree far more tightly.
    """
    results = [_agreement(detector, photos_dir, i) for i in range(len(REFERENCE["images"]))]
    matched = [m for r in results for m in r.matched]
    tight = [iou >= 0.995 and diff <= 1e-3 and dev <= 0.25 for iou, diff, dev, _ in matched]
    assert len(matched) == sum(len(e["faces"]) for e in REFERENCE["images"])
    assert sum(tight) >= 0.9 * len(matched)


def test_reference_covers_faces_and_no_faces() -> None:
    """The reference is not vacuous: many faces, some face-free images, variants."""
    counts = [len(entry["faces"]) for entry in REFERENCE["images"]]
    assert sum(counts) >= 40 and counts.count(0) >= 2
    assert {e["transform"] for e in REFERENCE["images"]} >= {"none", "rot90", "fliplr"}


# --- geometry ------------------------------------------------------------------------------


def test_iou_union_and_min() -> None:
    a = _boxes([[0, 0, 10, 10]])
    b = _boxes([[5, 0, 15, 10], [2, 2, 4, 4], [20, 20, 30, 30]])
    assert iou_matrix(a, b, "union")[0] == pytest.approx([50 / 150, 4 / 100, 0.0])
    assert iou_matrix(a, b, "min")[0] == pytest.approx([0.5, 1.0, 0.0])


def test_nms_drops_boxes_overlapping_any_earlier_box() -> None:
    """mtcnn's matrix NMS: C survives greedy NMS (its suppressor B was suppressed) but not here."""
    chain = _boxes([[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]])
    iou = iou_matrix(chain, chain)
    assert iou[0, 1] > 0.5 and iou[1, 2] > 0.5 and iou[0, 2] < 0.5
    assert nms(chain, 0.5).tolist() == [0]
    apart = _boxes([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]])
    assert nms(apart, 0.5).tolist() == [0, 1, 2]


def test_nms_min_removes_a_small_box_inside_a_big_one() -> None:
    boxes = _boxes([[0, 0, 100, 100], [40, 40, 60, 60]])
    assert nms(boxes, 0.7, "union").tolist() == [0, 1]
    assert nms(boxes, 0.7, "min").tolist() == [0]


def test_nms_blocks_agree_with_the_full_matrix() -> None:
    """More boxes than one NMS block: same answer as the unblocked O(N^2) definition."""
    rng = np.random.default_rng(7)
    corners = rng.uniform(0, 400, (1300, 2))
    boxes = _boxes(np.concatenate([corners, corners + rng.uniform(10, 60, (1300, 2))], axis=1))
    full = iou_matrix(boxes, boxes) > 0.5
    expected = np.flatnonzero(~np.triu(full, k=1).any(axis=0))
    assert np.array_equal(nms(boxes, 0.5), expected)
    assert 50 < len(expected) < 1300


def test_regress_square_and_landmarks() -> None:
    box = _boxes([[10, 20, 29, 59]])  # width + 1 = 20, height + 1 = 40
    moved = regress(box, [[0.1, -0.1, 0.2, 0.05]])
    assert moved[0, :4] == pytest.approx([12, 16, 33, 61])
    assert square(_boxes([[0, 0, 10, 20]]))[0, :4] == pytest.approx([-5, 0, 15, 20])
    raw = np.array([[0.0, 1.0, 0.5, 0.25, 0.75, 0.0, 0.0, 0.5, 1.0, 1.0]])
    points = decode_landmarks(_boxes([[10, 20, 29, 39]]), raw)[0]
    assert points[:, 0] == pytest.approx([9, 29, 19, 14, 24])
    assert points[:, 1] == pytest.approx([19, 19, 29, 39, 39])


def test_pnet_cells_become_windows_in_original_pixels() -> None:
    prob = np.zeros((8, 10), dtype=np.float32)
    prob[3, 5], prob[6, 1] = 0.9, 0.7
    reg = np.zeros((4, 8, 10), dtype=np.float32)
    reg[:, 6, 1] = [0.1, 0.0, -0.1, 0.0]
    boxes = pnet_boxes(reg, prob, scale=0.5, threshold=0.6)
    assert boxes[:, 4] == pytest.approx([0.9, 0.7])  # best first
    assert boxes[0, :4] == pytest.approx([22, 14, 44, 36])  # (2x+1, 2y+1, 2x+12, 2y+12) / 0.5
    assert boxes[1, :4] == pytest.approx([(3 + 1.1) / 0.5, 26, (14 - 1.1) / 0.5, 48])
    assert len(pnet_boxes(reg, prob, scale=0.5, threshold=0.95)) == 0


def test_crop_samples_like_tf_and_pads_outside_with_grey() -> None:
    height, width = 40, 50
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xs, ys, np.ones_like(xs)], axis=2)  # bilinear is exact on a gradient
    inside = crop_and_resize(image, _boxes([[10, 5, 30, 25]]), 6)[0]
    steps = np.arange(6, dtype=np.float32)
    expect_x = 10 / width * (width - 1) + steps * (20 / width * (width - 1) / 5)
    expect_y = 5 / height * (height - 1) + steps * (20 / height * (height - 1) / 5)
    assert inside.shape == (3, 6, 6)
    assert np.allclose(inside[0], expect_x[None, :], atol=1e-4)
    assert np.allclose(inside[1], expect_y[:, None], atol=1e-4)
    # A box crossing the left and top border: outside samples are exactly 0 (mid-grey).
    border = crop_and_resize(image, _boxes([[-20, -10, 20, 30]]), 9)[0]
    sample_x = -20 / width * (width - 1) + np.arange(9) * (40 / width * (width - 1) / 8)
    sample_y = -10 / height * (height - 1) + np.arange(9) * (40 / height * (height - 1) / 8)
    outside = (sample_y[:, None] < 0) | (sample_x[None, :] < 0)
    assert outside.any() and (~outside).any()
    assert np.all(border[:, outside] == 0)
    assert np.all(border[2][~outside] == pytest.approx(1.0))
    assert np.allclose(border[0][~outside], np.broadcast_to(sample_x, (9, 9))[~outside], atol=1e-4)


def test_crops_of_many_boxes_equal_crops_one_by_one() -> None:
    """Crops are computed in chunks of boxes; chunk edges must not change any crop."""
    rng = np.random.default_rng(11)
    image = rng.uniform(-1, 1, (60, 80, 3)).astype(np.float32)
    corners = rng.uniform(-10, 70, (600, 2))
    boxes = _boxes(np.concatenate([corners, corners + rng.uniform(5, 40, (600, 1))], axis=1))
    together = crop_and_resize(image, boxes, 24)
    assert together.shape == (600, 3, 24, 24)
    for index in (0, 255, 256, 599):
        assert np.array_equal(
            together[index], crop_and_resize(image, boxes[index : index + 1], 24)[0]
        )


def test_pyramid_matches_mtcnn_for_the_default_min_face() -> None:
    for side in range(13, 2500, 7):
        levels = scale_pyramid(side, side + 31, 20, 0.709)
        closed_form = max(0, round(-(np.log(side / 12) / np.log(0.709) + 1)))
        assert len(levels) == closed_form, side
        assert all(min(h, w) >= PNET_MIN_INPUT_PX for _, h, w in levels)
        if levels:
            assert levels[0][0] == pytest.approx(0.6)


@pytest.mark.parametrize("min_face_px", [12, 48])
def test_pyramid_runs_down_to_twelve_pixels_for_other_min_faces(min_face_px: int) -> None:
    levels = scale_pyramid(800, 600, min_face_px, 0.709)
    assert levels[0][0] == pytest.approx(12 / min_face_px)
    assert all(min(h, w) >= PNET_MIN_INPUT_PX for _, h, w in levels)
    last_scale = levels[-1][0] * 0.709
    assert int(600 * last_scale) < PNET_MIN_INPUT_PX  # one more level would be too small


# --- guards ----------------------------------------------------------------------------------


def test_tiny_image_gives_no_faces_without_running_models() -> None:
    detector, sessions = _fake_detector()
    assert detector.detect(np.zeros((11, 300, 3), dtype=np.uint8)) == []
    assert all(s.calls == 0 for s in sessions)


def test_rejects_arrays_that_are_not_rgb_uint8() -> None:
    detector, _ = _fake_detector()
    with pytest.raises(InvalidImage):
        detector.detect(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(InvalidImage):
        detector.detect(np.zeros((64, 64, 3), dtype=np.float32))


def test_sessions_with_wrong_outputs_are_refused() -> None:
    good = FakeSession(["bbox_reg", "prob"])
    with pytest.raises(ModelError, match="build_mtcnn"):
        MtcnnDetector(good, good, FakeSession(["a", "b", "c"]))


def test_blank_and_noise_images_have_no_faces(detector: MtcnnDetector) -> None:
    rng = np.random.default_rng(3)
    assert detector.detect(np.full((240, 320, 3), 128, dtype=np.uint8)) == []
    assert detector.detect(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []


# --- large images, caps, settings -------------------------------------------------------------


def test_large_image_is_detected_downscaled_and_mapped_back(
    model_paths: tuple[Path, Path, Path], photos_dir: Path, detector: MtcnnDetector
) -> None:
    """A 2x pixel-doubled photo, capped back to 1x, gives the 1x detections mapped x2.

    Area-downscaling a pixel-doubled image by exactly 2 restores the original pixels,
    so this isolates the coordinate mapping (pixel-centre aligned) from detector noise.
    """
    photo = _decode(photos_dir, "group/insightface_t1.jpg")  # 1280x886
    height, width = photo.shape[:2]
    big = np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1)  # each pixel becomes 2x2
    capped = MtcnnDetector.from_paths(
        *model_paths, providers="CPUExecutionProvider", max_side_px=width
    )
    expected = detector.detect(photo)
    found = capped.detect(big)
    assert len(expected) >= 6 and len(found) == len(expected)
    for one, two in zip(expected, found, strict=True):
        mapped = np.clip((one.box + 0.5) * 2 - 0.5, 0, [2 * width - 1, 2 * height - 1] * 2)
        assert np.allclose(two.box, mapped, atol=1e-3)
        assert np.allclose(two.landmarks, (one.landmarks + 0.5) * 2 - 0.5, atol=1e-3)
        assert two.score == pytest.approx(one.score, abs=1e-6)


def test_max_faces_keeps_the_best(model_paths: tuple[Path, Path, Path], photos_dir: Path) -> None:
    photo = _decode(photos_dir, "labelled/obama/obama_3.jpg")
    photo = cv2.resize(photo, (430, 700), interpolation=cv2.INTER_AREA)
    group = np.concatenate([photo, photo[:, ::-1]], axis=1)  # two faces
    unlimited = MtcnnDetector.from_paths(*model_paths, providers="CPUExecutionProvider")
    capped = MtcnnDetector.from_paths(*model_paths, providers="CPUExecutionProvider", max_faces=1)
    everything = unlimited.detect(group)
    assert len(everything) == 2
    assert everything[0].score >= everything[1].score
    only = capped.detect(group)
    assert len(only) == 1 and np.allclose(only[0].box, everything[0].box)


def test_from_settings_uses_verified_models(
    model_paths: tuple[Path, Path, Path], photos_dir: Path, tmp_path: Path
) -> None:
    settings = load_settings(onnx_providers="CPUExecutionProvider", min_face_px=24)
    detector = MtcnnDetector.from_settings(settings.vision)
    assert detector.min_face_px == 24 and detector.max_side_px == settings.vision.detect_max_side_px
    faces = detector.detect(_decode(photos_dir, "labelled/tom_hanks/tom_hanks_1.png"))
    assert len(faces) == 1 and faces[0].score > 0.99
    # A models dir whose generated files are missing fails loudly, pointing at `make models`.
    (tmp_path / "manifest.json").write_text((DEFAULT_MODELS_DIR / "manifest.json").read_text())
    with pytest.raises(ModelError, match="make models"):
        MtcnnDetector.from_settings(load_settings(models_dir=tmp_path).vision)
