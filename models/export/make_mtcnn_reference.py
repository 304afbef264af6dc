"""Record the ``mtcnn`` package's own detections on the test photos, as a committed reference.

Why: our detector (``facesearch.vision.detect``) re-implements mtcnn 1.0.0's
pipeline on onnxruntime; the only honest acceptance check is the real package's
output on real photos. mtcnn needs TensorFlow, which the product must not, so
this script runs in two halves:

1. the driver, under the project venv: decodes every photo in
   ``tests/data/photos`` with the product decoder (``facesearch.vision.decode``),
   adds a few transformed variants (rotation, mirror, downscale), makes the
   per-network probe inputs, and saves the exact uint8 pixels to a temp ``.npz``;
2. the worker, under a throw-away TensorFlow venv (``--tf-python``, default
   ``/opt/tfenv/bin/python``): runs ``mtcnn.MTCNN().detect_faces`` (default
   settings) on those pixels and the raw Keras P/R/O-Nets on the probes.

Outputs (committed; reproducible by re-running this script):
``tests/data/reference/mtcnn_reference.json`` — per image: file, transform,
shape, sha256 of the pixels fed to mtcnn, and mtcnn's boxes (x1, y1, x2, y2,
floats), confidences and keypoints; plus tool versions and the command.
``tests/data/reference/mtcnn_networks.npz`` — probe inputs (uint8) and the
Keras networks' outputs, for a per-network check of the ONNX conversion.

    .venv/bin/python models/export/make_mtcnn_reference.py [--tf-python /opt/tfenv/bin/python]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTOS = REPO_ROOT / "tests" / "data" / "photos"
OUT_DIR = REPO_ROOT / "tests" / "data" / "reference"
REFERENCE_JSON = OUT_DIR / "mtcnn_reference.json"
NETWORKS_NPZ = OUT_DIR / "mtcnn_networks.npz"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# (photo relative to tests/data/photos, transform). Transforms are re-applied by the
# test; the recorded pixel sha256 proves both sides fed identical pixels.
VARIANTS = (
    ("labelled/obama/obama_1.jpg", "rot90"),
    ("group/insightface_t1.jpg", "fliplr"),
    ("group/faceapi_sample3.jpg", "none"),  # one full-size 1920 px photo
    ("labelled/obama/obama_3.jpg", "area:0.3"),
    ("labelled/tom_hanks/tom_hanks_1.png", "area:2.0"),
)
# Photos whose longer side exceeds this are recorded area-downscaled to it ("max:N"):
# the unit tests re-run every entry, and full-size 1920-2333 px photos cost ~0.5 s each.
FULL_SIZE_LIMIT_PX = 1300
CAPPED_SIDE_PX = 960


def apply_transform(rgb: np.ndarray, transform: str) -> np.ndarray:
    """The variant transforms; ``tests/unit/vision/test_detect.py`` has an identical copy."""
    import cv2

    if transform == "none":
        return rgb
    if transform == "rot90":
        return np.ascontiguousarray(np.rot90(rgb))
    if transform == "fliplr":
        return np.ascontiguousarray(rgb[:, ::-1])
    if transform.startswith("max:"):  # area-downscale so the longer side is at most N px
        factor = min(1.0, int(transform.split(":", 1)[1]) / max(rgb.shape[:2]))
        transform = f"area:{factor!r}"
    if transform.startswith("area:"):
        factor = float(transform.split(":", 1)[1])
        size = (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor))
        method = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        return np.asarray(cv2.resize(rgb, size, interpolation=method), dtype=np.uint8)
    raise ValueError(f"unknown transform {transform!r}")


def pixels_sha256(rgb: np.ndarray) -> str:
    digest = hashlib.sha256(f"{rgb.shape}|{rgb.dtype}|".encode())
    digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()


# --- driver (project venv) -------------------------------------------------------------


def _decode(path: Path) -> np.ndarray:
    from facesearch.vision.decode import decode_image

    return decode_image(path.read_bytes()).rgb


def _probe_inputs(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """uint8 NHWC probes: random noise and real photo regions, per network."""
    import cv2

    rng = np.random.default_rng(20261123)
    t1 = images["group/insightface_t1.jpg|none"]
    obama = images["labelled/obama/obama_1.jpg|none"]
    face_regions = [  # (y0, y1, x0, x1): faces and non-faces of the group photo / portrait
        (t1, (180, 300, 60, 180)),
        (t1, (200, 320, 540, 660)),
        (t1, (0, 100, 0, 100)),
        (obama, (150, 650, 200, 700)),
    ]

    def real(size: int) -> np.ndarray:
        crops = [
            cv2.resize(img[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
            for img, (y0, y1, x0, x1) in face_regions
        ]
        return np.stack(crops).astype(np.uint8)

    noise24 = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    noise48 = rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    pnet_real = cv2.resize(t1, (96, 64), interpolation=cv2.INTER_AREA)[None]
    return {
        "pnet_noise_in": rng.integers(0, 256, (2, 31, 45, 3), dtype=np.uint8),
        "pnet_real_in": pnet_real.astype(np.uint8),
        "rnet_in": np.concatenate([noise24, real(24)]),
        "onet_in": np.concatenate([noise48, real(48)]),
    }


def run_driver(tf_python: str) -> int:
    photos = sorted(
        p.relative_to(PHOTOS).as_posix()
        for p in PHOTOS.rglob("*")
        if p.suffix.lower() in PHOTO_SUFFIXES
    )
    if not photos:
        raise SystemExit(f"no photos under {PHOTOS}; run `make photos` first")
    decoded = {name: _decode(PHOTOS / name) for name in photos}
    jobs = [
        (name, "none" if max(rgb.shape[:2]) <= FULL_SIZE_LIMIT_PX else f"max:{CAPPED_SIDE_PX}")
        for name, rgb in decoded.items()
    ] + [v for v in VARIANTS if v[0] in photos]
    arrays: dict[str, np.ndarray] = {}
    meta: list[dict[str, Any]] = []
    for index, (name, transform) in enumerate(jobs):
        rgb = apply_transform(decoded[name], transform)
        arrays[f"img{index}"] = rgb
        meta.append(
            {
                "file": name,
                "transform": transform,
                "shape": list(rgb.shape),
                "pixels_sha256": pixels_sha256(rgb),
            }
        )
    probes = _probe_inputs({f"{n}|none": decoded[n] for n in photos})
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.npz"
        results = Path(tmp) / "results.json"
        networks = Path(tmp) / "networks.npz"
        payload: dict[str, Any] = {**arrays, **probes}
        np.savez(inputs, **payload)
        cmd = [tf_python, str(Path(__file__).resolve()), "--worker", str(inputs), str(results)]
        cmd.append(str(networks))
        completed = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if completed.returncode != 0:
            raise SystemExit(f"worker failed ({' '.join(cmd)}):\n{completed.stderr[-4000:]}")
        worker = json.loads(results.read_text())
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        with np.load(networks) as net_out:
            recorded: dict[str, Any] = {**probes, **{k: net_out[k] for k in net_out.files}}
            np.savez_compressed(NETWORKS_NPZ, **recorded)
    for entry, found in zip(meta, worker["images"], strict=True):
        entry.update(found)
    reference = {
        "generated_by": "models/export/make_mtcnn_reference.py",
        "command": ".venv/bin/python models/export/make_mtcnn_reference.py "
        f"--tf-python {tf_python}",
        "detector_call": "mtcnn.MTCNN().detect_faces(rgb_uint8, box_format='xyxy', "
        "output_type='numpy') with default settings (min_face_size=20, scale_factor=0.709, "
        "thresholds 0.6/0.7/0.8, fit_to_image=True)",
        "decoder": "facesearch.vision.decode.decode_image(bytes).rgb, then `transform`",
        "box_format": "x1, y1, x2, y2 floats, mtcnn's pixel coordinates",
        "versions": {"driver_numpy": np.__version__, **worker["versions"]},
        "images": meta,
    }
    REFERENCE_JSON.write_text(json.dumps(reference, indent=1) + "\n")
    faces = sum(len(m["faces"]) for m in meta)
    print(f"wrote {REFERENCE_JSON} ({len(meta)} images, {faces} faces) and {NETWORKS_NPZ}")
    return 0


# --- worker (TensorFlow venv) ----------------------------------------------------------


def _round(values: Any) -> list[float]:
    return [round(float(v), 4) for v in values]


def run_worker(inputs: Path, results: Path, networks: Path) -> int:
    import mtcnn
    import tensorflow as tf
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet
    from mtcnn.utils.tensorflow import load_weights

    detector = mtcnn.MTCNN()
    data = np.load(inputs)
    images = []
    index = 0
    while f"img{index}" in data.files:
        rgb = data[f"img{index}"]
        start = time.perf_counter()
        rows = detector.detect_faces(rgb, box_format="xyxy", output_type="numpy")
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, 16) if np.size(rows) else []
        faces = [
            {
                "box": _round(row[1:5]),
                "confidence": round(float(row[5]), 6),
                "keypoints": {
                    name: _round((row[6 + i], row[11 + i])) for i, name in enumerate(KEYPOINTS)
                },
            }
            for row in rows
        ]
        images.append({"faces": faces, "reference_ms": round(elapsed_ms, 1)})
        index += 1

    outputs: dict[str, Any] = {}
    for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
        model = cls()
        model.build()
        model.set_weights(load_weights(f"{name}.lz4"))
        keys = ["pnet_noise_in", "pnet_real_in"] if name == "pnet" else [f"{name}_in"]
        for key in keys:
            x = (data[key].astype(np.float32) - 127.5) / 128.0
            for i, y in enumerate(model(x)):
                outputs[f"{key[:-3]}_out{i}"] = y.numpy()
    np.savez(networks, **outputs)

    versions = {
        "mtcnn": getattr(mtcnn, "__version__", "1.0.0"),
        "tensorflow": tf.__version__,
        "worker_numpy": np.__version__,
        "worker_python": platform.python_version(),
    }
    results.write_text(json.dumps({"images": images, "versions": versions}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tf-python", default="/opt/tfenv/bin/python")
    parser.add_argument("--worker", nargs=3, type=Path, metavar=("INPUTS", "RESULTS", "NETS"))
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(*args.worker)
    return run_driver(args.tf_python)


if __name__ == "__main__":
    sys.exit(main())
