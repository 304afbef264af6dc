"""Vision pipeline speed on real photos, ours vs face_recognition, in one run.

    python -m tests.bench.vision [--repeat N] [--threads T] [--batches 1,8,32]

Each system runs in its own freshly spawned process (so peak RSS is its own),
pinned to the same number of threads, over the same real photos (decode
included). Reports per-stage ms, end-to-end faces/s and images/s at several
embedder batch sizes, and peak RSS. The summary JSON line is printed last and
written to bench-results/vision.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.common import PHOTOS_DIR, FaceRecognitionBaseline, list_images, write_result

PHOTO_FOLDERS = ("labelled", "group")


def _pin_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def run_ours(paths: list[Path], repeat: int, threads: int, batches: list[int]) -> dict[str, Any]:
    _pin_threads(threads)
    import cv2

    cv2.setNumThreads(threads)
    from facesearch.config import load_settings
    from facesearch.errors import FaceSearchError
    from facesearch.vision.pipeline import STAGES, FacePipeline
    from tests.bench.common import peak_rss_mb

    blobs = [p.read_bytes() for p in paths] * repeat
    results: dict[str, Any] = {"batches": {}}
    for batch in batches:
        pipeline = FacePipeline(load_settings(onnx_threads=threads, embed_batch_size=batch))
        pipeline.process(blobs[0])  # warm-up: model load and first-run allocations
        stage_ms = dict.fromkeys(STAGES, 0.0)
        faces = images = 0
        start = time.perf_counter()
        for offset in range(0, len(blobs), batch):
            for result in pipeline.process_batch(blobs[offset : offset + batch]):
                if isinstance(result, FaceSearchError):
                    continue
                images += 1
                faces += len(result.faces)
                for stage in STAGES:
                    stage_ms[stage] += result.timings_ms.get(stage, 0.0)
        elapsed = time.perf_counter() - start
        results["batches"][batch] = {
            "faces": faces,
            "images": images,
            "seconds": elapsed,
            "faces_per_s": faces / elapsed,
            "images_per_s": images / elapsed,
            "stage_ms_per_image": {k: v / max(1, images) for k, v in stage_ms.items()},
            "embed_ms_per_face": stage_ms["embed"] / max(1, faces),
        }
        results["model"] = pipeline.embedder.model_id
    results["peak_rss_mb"] = peak_rss_mb()
    return results


def run_baseline(paths: list[Path], repeat: int, threads: int) -> dict[str, Any]:
    _pin_threads(threads)
    from tests.bench.common import peak_rss_mb

    baseline = FaceRecognitionBaseline()
    warm = baseline.load(paths[0])
    baseline.encode(warm, baseline.locate(warm))
    stage_ms = {"decode": 0.0, "detect": 0.0, "embed": 0.0}
    faces = images = 0
    start = time.perf_counter()
    for path in paths * repeat:
        t0 = time.perf_counter()
        image = baseline.load(path)
        t1 = time.perf_counter()
        locations = baseline.locate(image)
        t2 = time.perf_counter()
        baseline.encode(image, locations)
        t3 = time.perf_counter()
        stage_ms["decode"] += (t1 - t0) * 1000
        stage_ms["detect"] += (t2 - t1) * 1000
        stage_ms["embed"] += (t3 - t2) * 1000
        images += 1
        faces += len(locations)
    elapsed = time.perf_counter() - start
    return {
        "name": FaceRecognitionBaseline.name,
        "faces": faces,
        "images": images,
        "seconds": elapsed,
        "faces_per_s": faces / elapsed,
        "images_per_s": images / elapsed,
        "stage_ms_per_image": {k: v / images for k, v in stage_ms.items()},
        "embed_ms_per_face": stage_ms["embed"] / max(1, faces),
        "peak_rss_mb": peak_rss_mb(),
    }


def _in_child(target: Any, *args: Any) -> Any:
    """Run ``target`` in a fresh spawned interpreter and return its result."""
    context = mp.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(target, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.vision", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--photos", type=Path, default=PHOTOS_DIR, help="folder of photos")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the photos")
    parser.add_argument("--threads", type=int, default=1, help="threads for both systems")
    parser.add_argument("--batches", default="1,8,32", help="embedder batch sizes")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)

    folders = [args.photos / f for f in PHOTO_FOLDERS if (args.photos / f).is_dir()]
    paths = [p for folder in folders for p in list_images(folder)] or list_images(args.photos)
    if not paths:
        raise SystemExit(f"vision: no photos under {args.photos}; run `make setup`")
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{len(paths)} photos × {args.repeat}, {args.threads} thread(s)", file=sys.stderr)

    ours = _in_child(run_ours, paths, args.repeat, args.threads, batches)
    baseline = None
    available, reason = FaceRecognitionBaseline.available()
    if not args.no_baseline and available:
        baseline = _in_child(run_baseline, paths, args.repeat, args.threads)
    elif not args.no_baseline:
        print(f"baseline skipped: {reason}", file=sys.stderr)

    best_batch = max(ours["batches"], key=lambda b: ours["batches"][b]["faces_per_s"])
    best = ours["batches"][best_batch]
    first = ours["batches"][batches[0]]
    print(
        f"\n{'system':38} {'batch':>5} {'faces':>5} {'faces/s':>8} {'img/s':>6} "
        f"{'detect ms/img':>13} {'embed ms/face':>13}",
        file=sys.stderr,
    )
    for batch, row in ours["batches"].items():
        print(
            f"{'ours ' + ours['model']:38} {batch:5d} {row['faces']:5d} "
            f"{row['faces_per_s']:8.2f} {row['images_per_s']:6.2f} "
            f"{row['stage_ms_per_image']['detect']:13.1f} {row['embed_ms_per_face']:13.2f}",
            file=sys.stderr,
        )
    if baseline:
        print(
            f"{baseline['name'][:38]:38} {1:5d} {baseline['faces']:5d} "
            f"{baseline['faces_per_s']:8.2f} {baseline['images_per_s']:6.2f} "
            f"{baseline['stage_ms_per_image']['detect']:13.1f} "
            f"{baseline['embed_ms_per_face']:13.2f}",
            file=sys.stderr,
        )
    stages = "  ".join(f"{k} {v:.1f}" for k, v in first["stage_ms_per_image"].items())
    print(f"\nours, per-stage ms per image (batch {batches[0]}): {stages}", file=sys.stderr)

    summary = {
        "photos": len(paths),
        "repeat": args.repeat,
        "threads": args.threads,
        "model": ours["model"],
        "faces_per_s": round(best["faces_per_s"], 2),
        "images_per_s": round(best["images_per_s"], 3),
        "best_batch": best_batch,
        "faces_per_s_by_batch": {b: round(r["faces_per_s"], 2) for b, r in ours["batches"].items()},
        "faces_found": best["faces"],
        "embed_ms_per_face": round(best["embed_ms_per_face"], 3),
        "detect_ms_per_image": round(first["stage_ms_per_image"]["detect"], 2),
        "stage_ms_per_image": {k: round(v, 2) for k, v in first["stage_ms_per_image"].items()},
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "baseline": None if baseline is None else baseline["name"],
        "baseline_faces_per_s": None if baseline is None else round(baseline["faces_per_s"], 2),
        "baseline_images_per_s": None if baseline is None else round(baseline["images_per_s"], 3),
        "baseline_faces_found": None if baseline is None else baseline["faces"],
        "baseline_embed_ms_per_face": None
        if baseline is None
        else round(baseline["embed_ms_per_face"], 3),
        "baseline_peak_rss_mb": None if baseline is None else round(baseline["peak_rss_mb"], 1),
        "speedup": None
        if baseline is None
        else round(best["faces_per_s"] / baseline["faces_per_s"], 2),
        "speedup_images": None
        if baseline is None
        else round(best["images_per_s"] / baseline["images_per_s"], 2),
    }
    write_result("vision", summary, {"ours": ours, "baseline": baseline, "photos": paths})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
