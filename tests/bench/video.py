"""Video pipeline: speed (ours vs a naive baseline) and accuracy against exact ground truth.

    python -m tests.bench.video [--threads 1] [--fps F] [--baseline-clips N] [--chunk-s S]

Clips come from ``make videos`` (tests/data/make_clips.py: real portraits, 720p,
H.264 and VP9, with per-frame ground truth). Each system runs in a freshly
spawned process pinned to the same number of threads:

- ours: ``facesearch.video.process_video`` with default settings (probe, plan,
  every chunk, stitch), then again with short chunks (``--chunk-s``, default 8 s)
  to check that stitching across chunk boundaries finds the same people;
- integrated: every clip through the embedded system as ``facesearch ingest`` runs it
  (``facesearch.local.EmbeddedSystem``): the ingest service plans it into chunk tasks on
  the in-process bus, each chunk is processed and its result serialised to the crops
  store, the finisher stitches, stores track faces and tracks (SQLite) and the indexer
  commits them: the cloud's code path on one machine. Its tracks must equal the core
  pass's (same spans), and its speed shows what the integration costs;
- baseline: the same decoder and sampling grid (no scene-cut frames), then
  ``face_recognition`` (dlib HOG + ResNet) on every sampled frame, no tracking.

Measures: decode fps (decode only), processed video seconds per wall second (and
per CPU second, which other work on a shared machine does not change),
moment recall (every ground-truth span of every identity overlapped by a track
of that identity), span boundary error, track purity (share of a track's
detections that belong to its majority identity) and track count vs identities.
Clips tagged "stress" (known hard cases beyond the issue's scenarios, e.g. two
look-alike people) are processed too but scored apart, under "stress". The JSON
summary is printed last and written to bench-results/video.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.bench.common import ROOT, FaceRecognitionBaseline, write_result

VIDEOS_DIR = ROOT / "tests" / "data" / "videos"
ASSIGN_EXPAND = (
    1.5  # a detection belongs to the identity whose (expanded) face box holds its centre
)


def _pin_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def load_clips(folder: Path) -> list[dict[str, Any]]:
    index = folder / "index.json"
    if not index.is_file():
        raise SystemExit(f"video: no clips in {folder}; run `make videos`")
    clips = json.loads(index.read_text())["clips"]
    return [json.loads((folder / f"{c['name']}.json").read_text()) for c in clips]


# --- ours ----------------------------------------------------------------------------------


def _settings(threads: int, overrides: dict[str, Any]) -> Any:
    from facesearch.video.settings import VideoSettings

    return VideoSettings(decode_threads=threads, **overrides)


def _track_dict(track: Any) -> dict[str, Any]:
    return {
        "track_id": track.track_id,
        "spans": [[s.start_ms, s.end_ms] for s in track.spans],
        "observations": [[o.t_ms, *o.box] for o in track.observations],
        "best_t_ms": track.best.t_ms,
        "best_quality": track.best.quality.score,
        "best_acceptable": track.best.quality.acceptable,
    }


def run_ours(
    clips: list[dict[str, Any]], threads: int, passes: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every clip through process_video under each settings override in ``passes``."""
    _pin_threads(threads)
    import cv2

    cv2.setNumThreads(threads)
    from facesearch.config import load_settings
    from facesearch.video.frames import DecodeStats, iter_samples
    from facesearch.video.probe import open_input, video_stream
    from facesearch.video.process import process_video, video_pipeline
    from facesearch.vision.pipeline import FacePipeline
    from tests.bench.common import peak_rss_mb

    base = FacePipeline(load_settings(onnx_threads=threads))
    out: dict[str, Any] = {"passes": [], "decode": {}, "sampling": {}}
    for overrides in passes:
        settings = _settings(threads, overrides)
        pipeline = video_pipeline(base, settings)
        pipeline.warm_up()
        per_clip = {}
        for clip in clips:
            path = VIDEOS_DIR / clip["file"]
            start, cpu = time.perf_counter(), time.process_time()
            result = process_video(path, clip["name"], pipeline=pipeline, settings=settings)
            seconds = time.perf_counter() - start
            per_clip[clip["name"]] = {
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu,
                "samples": result.samples,
                "frames_decoded": result.frames_decoded,
                "scene_cuts": result.scene_cuts,
                "timings_ms": result.timings_ms,
                "tracks": [_track_dict(t) for t in result.tracks],
            }
        out["passes"].append({"overrides": overrides, "clips": per_clip})
    settings = _settings(threads, {})
    for clip in clips:  # decode only, then decode + sampling (thumbnails, RGB, rotation)
        path = VIDEOS_DIR / clip["file"]
        with open_input(path) as container:
            stream = video_stream(container)
            stream.thread_type = "AUTO"
            if threads:
                stream.codec_context.thread_count = threads
            start = time.perf_counter()
            frames = sum(1 for _ in container.decode(stream))
            out["decode"][clip["name"]] = {"frames": frames, "seconds": time.perf_counter() - start}
        stats = DecodeStats()
        start = time.perf_counter()
        for _ in iter_samples(path, settings, stats=stats):
            pass
        out["sampling"][clip["name"]] = {
            "seconds": time.perf_counter() - start,
            "samples": stats.samples,
            "cut_scores_top": sorted(stats.cut_scores, reverse=True)[:6],
        }
    out["integrated"] = _run_integrated(clips, threads, base)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _run_integrated(clips: list[dict[str, Any]], threads: int, base: Any) -> dict[str, Any]:
    """Each clip through EmbeddedSystem.ingest_file (plan, chunk tasks, finisher, indexer)."""
    import tempfile

    from facesearch.config import load_settings
    from facesearch.local import EmbeddedSystem

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        settings = load_settings(
            data_dir=Path(tmp), onnx_threads=threads, video_decode_threads=threads
        )
        system = EmbeddedSystem(settings, pipeline=base)
        for clip in clips:
            path = VIDEOS_DIR / clip["file"]
            start, cpu = time.perf_counter(), time.process_time()
            outcome = system.ingest_file(path)
            seconds = time.perf_counter() - start
            tracks = system.metadata.list_tracks(outcome.image_id, limit=1000).items
            out[clip["name"]] = {
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu,
                "outcome": str(outcome.outcome),
                "spans": [[list(s) for s in t.spans] for t in tracks],
            }
    return out


# --- baseline ------------------------------------------------------------------------------


def run_baseline(clips: list[dict[str, Any]], threads: int, fps: float) -> dict[str, Any]:
    """face_recognition on every grid-sampled frame (same decoder and grid), no tracking."""
    _pin_threads(threads)
    from facesearch.video.frames import iter_samples

    settings = _settings(threads, {"fps": fps, "scene_cut_threshold": 1.0})
    baseline = FaceRecognitionBaseline()
    per_clip = {}
    warm = next(iter_samples(VIDEOS_DIR / clips[0]["file"], settings)).rgb
    baseline.encode(warm, baseline.locate(warm))
    for clip in clips:
        start, cpu = time.perf_counter(), time.process_time()
        detections = []
        for sample in iter_samples(VIDEOS_DIR / clip["file"], settings):
            locations = baseline.locate(sample.rgb)
            baseline.encode(sample.rgb, locations)
            # face_recognition boxes are (top, right, bottom, left)
            detections.extend([sample.t_ms, lt, tp, rt, bm] for tp, rt, bm, lt in locations)
        per_clip[clip["name"]] = {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu,
            "detections": detections,
        }
    return {"name": FaceRecognitionBaseline.name, "clips": per_clip}


def _in_child(target: Any, *args: Any) -> Any:
    context = mp.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(target, args)


# --- scoring -------------------------------------------------------------------------------


def identity_at(clip: dict[str, Any], t_ms: int, box: list[float]) -> str:
    """The ground-truth identity whose face box (expanded) holds the detection's centre."""
    frame = clip["_frames"].get(t_ms)
    if frame is None:
        return "?"  # not a frame time of the clip (cannot happen for decoded frames)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for face in frame:
        x1, y1, x2, y2 = face["box"]
        mx, my = (x2 - x1) * (ASSIGN_EXPAND - 1) / 2, (y2 - y1) * (ASSIGN_EXPAND - 1) / 2
        if x1 - mx <= cx <= x2 + mx and y1 - my <= cy <= y2 + my:
            return str(face["identity"])
    return "none"


def _merge(spans: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def score_clip(clip: dict[str, Any], tracks: list[dict[str, Any]]) -> dict[str, Any]:
    labelled = []
    majority_total = observations_total = 0
    for track in tracks:
        labels = Counter(identity_at(clip, o[0], o[1:]) for o in track["observations"])
        label, count = labels.most_common(1)[0]
        labelled.append((label, track))
        majority_total += count
        observations_total += sum(labels.values())
    found = total = 0
    errors: list[float] = []
    misses = []
    for identity, entry in clip["identities"].items():
        predicted = _merge([s for label, t in labelled if label == identity for s in t["spans"]])
        for gt_start, gt_end in entry["spans"]:
            total += 1
            overlaps = [
                (min(gt_end, e) - max(gt_start, s), s, e)
                for s, e in predicted
                if min(gt_end, e) >= max(gt_start, s)
            ]
            if not overlaps:
                misses.append([identity, gt_start, gt_end])
                continue
            found += 1
            _, start, end = max(overlaps)
            errors.append(max(abs(start - gt_start), abs(end - gt_end)) / 1000.0)
    return {
        "spans_found": found,
        "spans_total": total,
        "missed": misses,
        "span_errors_s": errors,
        "purity_majority": majority_total,
        "purity_total": observations_total,
        "track_labels": [label for label, _ in labelled],
        "tracks": len(tracks),
        "expected_tracks": len(clip["identities"]),
        "false_tracks": sum(1 for label, _ in labelled if label == "none"),
    }


def score_pass(clips: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any]:
    scores = {c["name"]: score_clip(c, result["clips"][c["name"]]["tracks"]) for c in clips}
    errors = [e for s in scores.values() for e in s["span_errors_s"]]
    found = sum(s["spans_found"] for s in scores.values())
    total = sum(s["spans_total"] for s in scores.values())
    majority = sum(s["purity_majority"] for s in scores.values())
    observed = sum(s["purity_total"] for s in scores.values())
    return {
        "moment_recall": found / total if total else 1.0,
        "span_error_s": max(errors) if errors else None,
        "span_error_mean_s": sum(errors) / len(errors) if errors else None,
        "track_purity": majority / observed if observed else 1.0,
        "tracks": sum(s["tracks"] for s in scores.values()),
        "expected_tracks": sum(s["expected_tracks"] for s in scores.values()),
        "false_tracks": sum(s["false_tracks"] for s in scores.values()),
        "per_clip": scores,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.video", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--videos", type=Path, default=VIDEOS_DIR)
    parser.add_argument("--threads", type=int, default=1, help="threads for both systems")
    parser.add_argument("--fps", type=float, default=None, help="sampling rate (default: ours)")
    parser.add_argument("--chunk-s", type=float, default=8.0, help="chunk length, stitch pass")
    parser.add_argument(
        "--baseline-clips", type=int, default=3, help="clips the (slow) baseline runs on"
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--set", action="append", default=[], help="extra VideoSettings override KEY=JSON"
    )
    args = parser.parse_args(argv)

    from facesearch.video.settings import VideoSettings

    every_clip = load_clips(args.videos)
    # "stress" clips (known hard cases beyond the scenarios) are scored apart
    clips = [c for c in every_clip if "stress" not in c["tags"]]
    stress = [c for c in every_clip if "stress" in c["tags"]]
    extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.fps is not None:
        extra["fps"] = args.fps
    fps = float(extra.get("fps", VideoSettings().fps))
    passes = [dict(extra), {**extra, "chunk_s": args.chunk_s}]
    video_s = sum(c["duration_ms"] for c in clips) / 1000.0
    print(
        f"{len(clips)} clips, {video_s:.0f} s of video, {args.threads} thread(s)", file=sys.stderr
    )

    load_before = os.getloadavg()[0]
    ours = _in_child(run_ours, every_clip, args.threads, passes)
    for clip in every_clip:
        clip["_frames"] = {f["t_ms"]: f["faces"] for f in clip["frames"]}

    baseline = None
    available, reason = FaceRecognitionBaseline.available()
    baseline_clips = clips[: args.baseline_clips]
    if not args.no_baseline and available:
        baseline = _in_child(run_baseline, baseline_clips, args.threads, fps)
    elif not args.no_baseline:
        print(f"baseline skipped: {reason}", file=sys.stderr)

    main_pass, chunked_pass = ours["passes"]
    main_score = score_pass(clips, main_pass)
    chunked_score = score_pass(clips, chunked_pass)
    stress_score = score_pass(stress, main_pass) if stress else None
    ours_seconds = sum(main_pass["clips"][c["name"]]["seconds"] for c in clips)
    ours_speed = video_s / ours_seconds
    # the same clips as the baseline, for a like-for-like speed ratio
    subset_s = sum(c["duration_ms"] for c in baseline_clips) / 1000.0
    ours_subset = subset_s / sum(main_pass["clips"][c["name"]]["seconds"] for c in baseline_clips)
    ours_subset_cpu = subset_s / sum(
        main_pass["clips"][c["name"]]["cpu_seconds"] for c in baseline_clips
    )
    ours_cpu = video_s / sum(main_pass["clips"][c["name"]]["cpu_seconds"] for c in clips)
    baseline_speed = baseline_cpu = None
    if baseline is not None:
        baseline_speed = subset_s / sum(c["seconds"] for c in baseline["clips"].values())
        baseline_cpu = subset_s / sum(c["cpu_seconds"] for c in baseline["clips"].values())
    stage_ms: dict[str, float] = {}
    for clip in clips:
        for stage, ms in main_pass["clips"][clip["name"]]["timings_ms"].items():
            stage_ms[stage] = stage_ms.get(stage, 0.0) + ms
    integrated = ours["integrated"]
    integrated_speed = video_s / sum(integrated[c["name"]]["seconds"] for c in clips)
    integrated_cpu = video_s / sum(integrated[c["name"]]["cpu_seconds"] for c in clips)
    same_tracks = [
        c["name"]
        for c in every_clip
        if integrated[c["name"]]["spans"]
        == [t["spans"] for t in main_pass["clips"][c["name"]]["tracks"]]
    ]
    decoded = sum(ours["decode"][c["name"]]["frames"] for c in clips)
    decode_fps = decoded / sum(ours["decode"][c["name"]]["seconds"] for c in clips)

    print(
        f"\n{'clip':16} {'video s':>7} {'wall s':>7} {'x rt':>6} {'samples':>7} "
        f"{'tracks':>6} {'expect':>6} {'spans':>7} {'err s':>6}",
        file=sys.stderr,
    )
    for clip in every_clip:
        row = main_pass["clips"][clip["name"]]
        scores = main_score if clip in clips else stress_score
        assert scores is not None
        score = scores["per_clip"][clip["name"]]
        err = max(score["span_errors_s"]) if score["span_errors_s"] else float("nan")
        print(
            f"{clip['name']:16} {clip['duration_ms'] / 1000:7.1f} {row['seconds']:7.2f} "
            f"{clip['duration_ms'] / 1000 / row['seconds']:6.2f} {row['samples']:7d} "
            f"{score['tracks']:6d} {score['expected_tracks']:6d} "
            f"{score['spans_found']:3d}/{score['spans_total']:<3d} {err:6.2f}",
            file=sys.stderr,
        )
        if score["missed"]:
            print(f"{'':16} missed: {score['missed']}", file=sys.stderr)

    summary = {
        "clips": len(clips),
        "video_s": round(video_s, 1),
        "threads": args.threads,
        "fps": fps,
        "decode_fps": round(decode_fps, 1),
        "video_s_per_s": round(ours_speed, 3),
        "video_s_per_s_baseline_clips": round(ours_subset, 3),
        "baseline": None if baseline is None else baseline["name"],
        "baseline_clips": [c["name"] for c in baseline_clips] if baseline else [],
        "baseline_video_s_per_s": None if baseline_speed is None else round(baseline_speed, 3),
        "speedup": None if baseline_speed is None else round(ours_subset / baseline_speed, 2),
        # CPU time: what the work costs, whatever else the (shared) machine is running
        "video_s_per_cpu_s": round(ours_cpu, 3),
        "baseline_video_s_per_cpu_s": None if baseline_cpu is None else round(baseline_cpu, 3),
        "speedup_cpu": None if baseline_cpu is None else round(ours_subset_cpu / baseline_cpu, 2),
        "moment_recall": round(main_score["moment_recall"], 4),
        "span_error_s": main_score["span_error_s"],
        "span_error_mean_s": None
        if main_score["span_error_mean_s"] is None
        else round(main_score["span_error_mean_s"], 3),
        "track_purity": round(main_score["track_purity"], 4),
        "tracks": main_score["tracks"],
        "expected_tracks": main_score["expected_tracks"],
        "false_tracks": main_score["false_tracks"],
        "chunked": {
            "chunk_s": args.chunk_s,
            "moment_recall": round(chunked_score["moment_recall"], 4),
            "span_error_s": chunked_score["span_error_s"],
            "track_purity": round(chunked_score["track_purity"], 4),
            "tracks": chunked_score["tracks"],
        },
        "integrated": {
            "video_s_per_s": round(integrated_speed, 3),
            "video_s_per_cpu_s": round(integrated_cpu, 3),
            "overhead_cpu": round(ours_cpu / integrated_cpu, 3),
            "same_tracks_as_core": f"{len(same_tracks)}/{len(every_clip)}",
            "outcomes": sorted({integrated[c["name"]]["outcome"] for c in every_clip}),
        },
        "samples": sum(main_pass["clips"][c["name"]]["samples"] for c in clips),
        "stage_ms_per_video_s": {k: round(v / video_s, 1) for k, v in stage_ms.items()},
        "scene_cuts": sum(main_pass["clips"][c["name"]]["scene_cuts"] for c in clips),
        "stress": None
        if stress_score is None
        else {
            name: {
                "tracks": row["tracks"],
                "expected_tracks": row["expected_tracks"],
                "track_labels": row["track_labels"],
                "spans_found": f"{row['spans_found']}/{row['spans_total']}",
                "purity": round(row["purity_majority"] / max(1, row["purity_total"]), 4),
            }
            for name, row in stress_score["per_clip"].items()
        },
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        # other work on the machine slows both systems; the 1-minute load average says how much
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    details = {
        "ours": ours,
        "score": main_score,
        "chunked_score": chunked_score,
        "stress_score": stress_score,
        "baseline": baseline,
        "settings": _settings(args.threads, extra).model_dump(),
    }
    write_result("video", summary, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
