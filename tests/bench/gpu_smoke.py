"""GPU smoke test of the `gpu` extra (onnxruntime-gpu) and the CUDA image: ``make gpu-smoke``.

    python -m tests.bench.gpu_smoke [--batches 1,32,128] [--seconds S]

Checks, each a line of the report and a key of bench-results/gpu_smoke.json:

1. the CUDA execution provider is in this onnxruntime build, and every detector graph
   (P/R/O-Net) and the embedder open on it with ``session.disable_cpu_ep_fallback``:
   no node may silently run on the CPU (ORT then refuses to create the session);
2. the first provider of each session is CUDA;
3. embeddings of real face crops equal the CPU provider's within 1e-3 (max |difference|
   per component of the unit vectors), detections equal the CPU's;
4. faces/s of the embedder at batch 1, 32, 128, images/s of the detector;
5. peak GPU memory while it runs (``nvidia-smi``, sampled every 50 ms).

Without CUDA it fails at once, saying what is missing (exit 2). ``--provider
CPUExecutionProvider`` runs the same code on the CPU (what the unit test does, so the
script itself is exercised without a GPU). Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.bench.common import PHOTOS_DIR, list_images, write_result

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
MAX_ABS_DIFF = 1e-3
DETECTOR = ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet")


class GpuMemory:
    """Peak ``memory.used`` of GPU 0 (MiB) while the block runs; None without nvidia-smi."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def read() -> float | None:
        if shutil.which("nvidia-smi") is None:
            return None
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            return float(out.stdout.strip().splitlines()[0])
        except (IndexError, ValueError):
            return None

    def __enter__(self) -> GpuMemory:
        first = self.read()
        if first is not None:
            self.samples.append(first)
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            value = self.read()
            if value is not None:
                self.samples.append(value)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_mib(self) -> float | None:
        return max(self.samples) if self.samples else None

    @property
    def baseline_mib(self) -> float | None:
        return self.samples[0] if self.samples else None


def open_strict(path: Path, provider: str) -> Any:
    """A session on ``provider`` alone; with a GPU provider, CPU fallback is refused."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if provider != CPU:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort.InferenceSession(str(path), sess_options=options, providers=[provider])


def face_crops(count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Real aligned faces from the shipped photos (CPU pipeline), repeated to ``count``;
    and the decoded photos themselves."""
    from facesearch.config import load_settings
    from facesearch.vision.decode import decode_image
    from facesearch.vision.pipeline import FacePipeline

    pipeline = FacePipeline(load_settings(onnx_providers=CPU))
    photos = [
        decode_image(p.read_bytes()).rgb
        for folder in ("labelled", "group")
        for p in list_images(PHOTOS_DIR / folder)
    ]
    crops: list[np.ndarray] = []
    for image in photos:
        crops.extend(pipeline.embedder.crops(image, pipeline.detect(image)))
    if not crops:
        raise SystemExit("gpu-smoke: no faces in the shipped photos; run `make photos`")
    return [crops[i % len(crops)] for i in range(count)], photos


def run(provider: str, batches: list[int], seconds: float) -> dict[str, Any]:
    import onnxruntime as ort

    from facesearch.config import load_settings
    from facesearch.vision.detect import MtcnnDetector
    from facesearch.vision.embed import FaceEmbedder
    from facesearch.vision.registry import verified_path

    vision = load_settings().vision
    report: dict[str, Any] = {
        "provider": provider,
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "checks": {},
    }
    checks: dict[str, bool] = report["checks"]
    with GpuMemory() as memory:
        sessions = {}
        for name in (*DETECTOR, vision.embedder):
            try:
                sessions[name] = open_strict(verified_path(vision.models_dir, name), provider)
                checks[f"{name}: whole graph on {provider}"] = (
                    sessions[name].get_providers()[0] == provider
                )
            except Exception as exc:  # ORT refuses a graph with CPU-only nodes here
                checks[f"{name}: whole graph on {provider}"] = False
                report[f"{name}_error"] = str(exc).splitlines()[0][:300]
        if not all(checks.values()):
            return report
        cpu_embedder = FaceEmbedder.from_section(vision, vision.embedder, batch_size=max(batches))
        embedder = FaceEmbedder.from_section(
            vision, vision.embedder, session=sessions[vision.embedder], batch_size=max(batches)
        )
        crops, photos = face_crops(max(batches))
        ours, reference = embedder.embed(crops), cpu_embedder.embed(crops)
        report["embedding_max_abs_diff"] = float(np.abs(ours - reference).max())
        report["embedding_min_cosine"] = float((ours * reference).sum(axis=1).min())
        checks[f"embeddings equal the CPU's within {MAX_ABS_DIFF}"] = (
            report["embedding_max_abs_diff"] <= MAX_ABS_DIFF
        )
        report["faces_per_s"] = {}
        for batch in batches:
            chunk = np.stack(crops[:batch])
            embedder.embed(chunk)  # warm-up: cuDNN algorithm search, allocations
            calls, start = 0, time.perf_counter()
            while calls < 3 or time.perf_counter() - start < seconds:
                embedder.embed(chunk)
                calls += 1
            report["faces_per_s"][batch] = round(calls * batch / (time.perf_counter() - start), 1)
        detector = MtcnnDetector(*(sessions[n] for n in DETECTOR), max_side_px=1600)
        cpu_detector = MtcnnDetector.from_settings(
            vision.model_copy(update={"onnx_providers": CPU})
        )
        same = all(
            len(a) == len(b)
            and all(np.abs(x.box - y.box).max() <= 1.0 for x, y in zip(a, b, strict=True))
            for a, b in ((detector.detect(p), cpu_detector.detect(p)) for p in photos)
        )
        checks["detections equal the CPU's (boxes within 1 px)"] = same
        start = time.perf_counter()
        for image in photos:
            detector.detect(image)
        report["detector_images_per_s"] = round(len(photos) / (time.perf_counter() - start), 2)
    report["gpu_memory_peak_mib"] = memory.peak_mib
    report["gpu_memory_before_mib"] = memory.baseline_mib
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.gpu_smoke")
    parser.add_argument("--provider", default=CUDA)
    parser.add_argument("--batches", default="1,32,128")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per batch size")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    available = ort.get_available_providers()
    if args.provider not in available:
        print(
            f"gpu-smoke: FAILED: {args.provider} is not in this onnxruntime build "
            f"({ort.__version__}, providers {available}). Run it where an NVIDIA GPU, its "
            "driver and CUDA 12 are present, with the gpu extra installed instead of the CPU "
            "wheel (pip uninstall -y onnxruntime && pip install -e '.[gpu]'), or in the "
            "function image (make image).",
            file=sys.stderr,
        )
        return 2
    report = run(args.provider, [int(b) for b in args.batches.split(",")], args.seconds)
    for check, ok in report["checks"].items():
        print(f"{'ok  ' if ok else 'FAIL'} {check}", file=sys.stderr)
    passed = bool(report["checks"]) and all(report["checks"].values())
    report["passed"] = passed
    write_result("gpu_smoke", report)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
