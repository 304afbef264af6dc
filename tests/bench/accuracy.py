"""Face verification accuracy on labelled photos (LFW layout), ours vs face_recognition.

    python -m tests.bench.accuracy [--dataset DIR] [--pairs FILE] [--embedder NAME ...]

DIR holds one folder per identity with that person's photos inside (LFW's
layout). ``--pairs`` takes an LFW-style pairs file (``name i j`` genuine,
``name1 i name2 j`` impostor, first line a header); without it all genuine pairs
and a seeded sample of impostor pairs are used. Thresholds are chosen by
10-fold cross-validation when there are enough pairs (as LFW's protocol asks),
otherwise by the best threshold on all pairs, and the run says so. A photo whose
face is not detected is an error for each of its pairs, never skipped.

Without ``--dataset`` it runs on the handful of labelled photos that ship in
registry packages: a smoke check whose figure is NOT statistically meaningful.
The summary JSON line is printed last and written to bench-results/accuracy.json.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tests.bench.common import PHOTOS_DIR, FaceRecognitionBaseline, list_images, write_result

DEFAULT_DATASET = PHOTOS_DIR / "labelled"
MIN_PAIRS_FOR_CV = 100
FOLDS = 10


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    genuine: bool


@dataclass
class Scores:
    """Similarity per pair; None where a face was not detected (counts as an error)."""

    system: str
    values: list[float | None]
    undetected_images: list[str] = field(default_factory=list)
    higher_is_same: bool = True


def load_dataset(folder: Path) -> dict[str, list[Path]]:
    if not folder.is_dir():
        raise SystemExit(f"accuracy: dataset folder {folder} does not exist")
    identities = {d.name: list_images(d) for d in sorted(folder.iterdir()) if d.is_dir()}
    identities = {name: photos for name, photos in identities.items() if photos}
    if len(identities) < 2:
        raise SystemExit(f"accuracy: {folder} needs at least two identity folders with photos")
    return identities


def all_pairs(identities: dict[str, list[Path]], impostors: int, seed: int) -> list[Pair]:
    pairs = [
        Pair(a, b, True)
        for photos in identities.values()
        for a, b in itertools.combinations(photos, 2)
    ]
    candidates = [
        (a, b)
        for (_, photos_a), (_, photos_b) in itertools.combinations(identities.items(), 2)
        for a in photos_a
        for b in photos_b
    ]
    rng = random.Random(seed)
    chosen = candidates if len(candidates) <= impostors else rng.sample(candidates, impostors)
    pairs.extend(Pair(a, b, False) for a, b in chosen)
    return pairs


def parse_pairs_file(path: Path, folder: Path) -> list[Pair]:
    """LFW pairs.txt: header line, then `name i j` or `name1 i name2 j` (1-based indices)."""

    def photo(name: str, number: str) -> Path:
        stem = f"{name}_{int(number):04d}"
        for suffix in (".jpg", ".png", ".jpeg"):
            candidate = folder / name / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
        raise SystemExit(f"accuracy: {path}: no photo {folder / name / stem}.*")

    pairs: list[Pair] = []
    lines = path.read_text().split("\n")
    for line_number, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 3:
            pairs.append(Pair(photo(parts[0], parts[1]), photo(parts[0], parts[2]), True))
        elif len(parts) == 4:
            pairs.append(Pair(photo(parts[0], parts[1]), photo(parts[2], parts[3]), False))
        else:
            raise SystemExit(f"accuracy: {path}:{line_number}: expected 3 or 4 fields: {line!r}")
    return pairs


def central_face_index(boxes: Sequence[Sequence[float]], width: int, height: int) -> int:
    """The face the photo is 'of': large and near the centre (LFW photos are centred)."""
    best, best_score = 0, -np.inf
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        area = max(1.0, (x2 - x1) * (y2 - y1))
        centre_offset = np.hypot((x1 + x2) / 2 - width / 2, (y1 + y2) / 2 - height / 2)
        score = np.sqrt(area) - 0.5 * centre_offset
        if score > best_score:
            best, best_score = index, score
    return best


def embed_ours(
    paths: list[Path], embedder: str
) -> tuple[dict[Path, np.ndarray | None], str, float]:
    from facesearch.config import load_settings
    from facesearch.errors import FaceSearchError
    from facesearch.vision.pipeline import FacePipeline

    pipeline = FacePipeline(load_settings(embedder=embedder))
    vectors: dict[Path, np.ndarray | None] = {}
    for path in tqdm(paths, desc=f"ours ({embedder})", file=sys.stderr, leave=False):
        try:
            result = pipeline.process(path.read_bytes())
        except FaceSearchError:
            vectors[path] = None
            continue
        if not result.faces:
            vectors[path] = None
            continue
        boxes = [face.detection.box.tolist() for face in result.faces]
        chosen = result.faces[central_face_index(boxes, result.width, result.height)]
        vectors[path] = chosen.embedding
    threshold = pipeline.embedder.match_threshold
    return vectors, pipeline.embedder.model_id, float(threshold) if threshold is not None else 0.5


def embed_baseline(paths: list[Path]) -> dict[Path, np.ndarray | None]:
    baseline = FaceRecognitionBaseline()
    vectors: dict[Path, np.ndarray | None] = {}
    for path in tqdm(paths, desc="baseline", file=sys.stderr, leave=False):
        image = baseline.load(path)
        locations = baseline.locate(image)
        if not locations:
            vectors[path] = None
            continue
        boxes = [(left, top, right, bottom) for top, right, bottom, left in locations]
        chosen = central_face_index(boxes, image.shape[1], image.shape[0])
        vectors[path] = baseline.encode(image, [locations[chosen]])[0]
    return vectors


def score_pairs(
    pairs: list[Pair],
    vectors: dict[Path, np.ndarray | None],
    system: str,
    metric: Callable[[np.ndarray, np.ndarray], float],
    higher_is_same: bool,
) -> Scores:
    values: list[float | None] = []
    for pair in pairs:
        va, vb = vectors[pair.a], vectors[pair.b]
        values.append(None if va is None or vb is None else metric(va, vb))
    undetected = sorted(str(p) for p, v in vectors.items() if v is None)
    return Scores(system, values, undetected, higher_is_same)


def _oriented(scores: Scores) -> np.ndarray:
    """Scores as 'higher = same person', with undetected pairs as NaN."""
    raw = np.array([np.nan if v is None else v for v in scores.values], dtype=np.float64)
    return raw if scores.higher_is_same else -raw


def _accuracy_at(values: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    # NaN (undetected) compares False: "same" is never predicted, so a genuine pair is
    # an error and an impostor pair is a (lucky) correct rejection — counted, not skipped.
    predicted = values >= threshold
    return float(np.mean(predicted == labels))


def best_threshold(values: np.ndarray, labels: np.ndarray) -> float:
    finite = np.unique(values[np.isfinite(values)])
    if finite.size == 0:
        return 0.0
    candidates = np.concatenate(
        [[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]]
    )
    accuracies = [_accuracy_at(values, labels, t) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def roc_metrics(values: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    genuine = values[labels]
    impostor = values[~labels]
    genuine_filled = np.where(np.isfinite(genuine), genuine, -np.inf)
    impostor_filled = np.where(np.isfinite(impostor), impostor, -np.inf)
    thresholds = np.unique(np.concatenate([genuine_filled, impostor_filled]))
    thresholds = thresholds[np.isfinite(thresholds)]
    if thresholds.size == 0 or genuine.size == 0 or impostor.size == 0:
        return {"eer": None, "tar_at_far_1e3": None, "roc": []}
    far = np.array([(impostor_filled >= t).mean() for t in thresholds])
    tar = np.array([(genuine_filled >= t).mean() for t in thresholds])
    frr = 1.0 - tar
    eer_index = int(np.argmin(np.abs(far - frr)))
    eer = float((far[eer_index] + frr[eer_index]) / 2)
    allowed = far <= 1e-3
    tar_at_far = float(tar[allowed].max()) if allowed.any() else 0.0
    step = max(1, thresholds.size // 50)
    roc = [
        {"threshold": float(t), "far": float(f), "tar": float(r)}
        for t, f, r in zip(thresholds[::step], far[::step], tar[::step], strict=True)
    ]
    return {"eer": eer, "tar_at_far_1e3": tar_at_far, "roc": roc}


def evaluate(scores: Scores, labels: np.ndarray, default_threshold: float | None) -> dict[str, Any]:
    values = _oriented(scores)
    n = len(values)
    if n >= MIN_PAIRS_FOR_CV:
        fold_of = np.arange(n) % FOLDS
        fold_accuracies, fold_thresholds = [], []
        for fold in range(FOLDS):
            train, test = fold_of != fold, fold_of == fold
            threshold = best_threshold(values[train], labels[train])
            fold_thresholds.append(threshold)
            fold_accuracies.append(_accuracy_at(values[test], labels[test], threshold))
        accuracy = float(np.mean(fold_accuracies))
        threshold = float(np.median(fold_thresholds))
        protocol = f"{FOLDS}-fold cross-validation"
    else:
        threshold = best_threshold(values, labels)
        accuracy = _accuracy_at(values, labels, threshold)
        protocol = "threshold fitted on all pairs (too few pairs for cross-validation)"
    result: dict[str, Any] = {
        "system": scores.system,
        "accuracy": accuracy,
        "threshold": threshold if scores.higher_is_same else -threshold,
        "protocol": protocol,
        "undetected_images": scores.undetected_images,
        "undetected_pairs": int(np.isnan(values).sum()),
        **roc_metrics(values, labels),
    }
    if default_threshold is not None:
        oriented_default = default_threshold if scores.higher_is_same else -default_threshold
        result["accuracy_at_default_threshold"] = _accuracy_at(values, labels, oriented_default)
        result["default_threshold"] = default_threshold
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.accuracy", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", type=Path, help="LFW-layout folder (default: shipped photos)")
    parser.add_argument("--pairs", type=Path, help="LFW-style pairs file")
    parser.add_argument("--impostors", type=int, default=3000, help="impostor pairs to sample")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--embedder", action="append", help="manifest embedder(s) to evaluate (default: all)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip face_recognition")
    args = parser.parse_args(argv)

    folder = args.dataset or DEFAULT_DATASET
    smoke = args.dataset is None
    identities = load_dataset(folder)
    pairs = (
        parse_pairs_file(args.pairs, folder)
        if args.pairs
        else all_pairs(identities, args.impostors, args.seed)
    )
    labels = np.array([p.genuine for p in pairs])
    paths = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    print(
        f"{len(pairs)} pairs ({labels.sum()} genuine, {(~labels).sum()} impostor) over "
        f"{len(paths)} photos of {len(identities)} identities from {folder}",
        file=sys.stderr,
    )

    embedders = args.embedder or _manifest_embedders()
    systems: list[dict[str, Any]] = []
    for name in embedders:
        vectors, model_id, manifest_threshold = embed_ours(paths, name)
        scores = score_pairs(pairs, vectors, model_id, lambda a, b: float(np.dot(a, b)), True)
        systems.append(evaluate(scores, labels, manifest_threshold))

    baseline: dict[str, Any] | None = None
    available, reason = FaceRecognitionBaseline.available()
    if not args.no_baseline and available:
        vectors = embed_baseline(paths)
        scores = score_pairs(
            pairs,
            vectors,
            FaceRecognitionBaseline.name,
            lambda a, b: float(np.linalg.norm(a - b)),
            higher_is_same=False,
        )
        baseline = evaluate(scores, labels, FaceRecognitionBaseline.default_tolerance)
    elif not args.no_baseline:
        print(f"baseline skipped: {reason}", file=sys.stderr)

    _print_report(systems, baseline)
    ours = systems[0]
    note = (
        "SMOKE CHECK ONLY: a handful of labelled photos that ship in registry packages; "
        "not statistically meaningful. Pass --dataset DIR (LFW layout) for a real figure."
        if smoke
        else f"dataset {folder}"
    )
    summary = {
        "pairs": len(pairs),
        "genuine_pairs": int(labels.sum()),
        "impostor_pairs": int((~labels).sum()),
        "identities": len(identities),
        "model": ours["system"],
        "accuracy": round(ours["accuracy"], 4),
        "eer": ours["eer"],
        "tar_at_far_1e3": ours["tar_at_far_1e3"],
        "threshold": round(ours["threshold"], 4),
        "undetected": len(ours["undetected_images"]),
        "baseline_accuracy": None if baseline is None else round(baseline["accuracy"], 4),
        "baseline_tar_at_far_1e3": None if baseline is None else baseline["tar_at_far_1e3"],
        "baseline_eer": None if baseline is None else baseline["eer"],
        "baseline_undetected": None if baseline is None else len(baseline["undetected_images"]),
        "protocol": ours["protocol"],
        "smoke_only": smoke,
        "note": note,
    }
    write_result("accuracy", summary, {"systems": systems, "baseline": baseline})
    return 0


def _manifest_embedders() -> list[str]:
    from facesearch.config import get_settings
    from facesearch.vision.registry import load_manifest

    settings = get_settings()
    names = [
        s.name for s in load_manifest(settings.vision.models_dir).values() if s.role == "embedder"
    ]
    # the configured default first: it is the one the summary line reports
    return sorted(names, key=lambda name: name != settings.vision.embedder)


def _print_report(systems: list[dict[str, Any]], baseline: dict[str, Any] | None) -> None:
    rows = [*systems, *([baseline] if baseline else [])]
    print(
        f"\n{'system':45} {'accuracy':>8} {'EER':>6} {'TAR@1e-3':>8} {'thresh':>7} {'undet':>5}",
        file=sys.stderr,
    )
    for row in rows:
        eer = "-" if row["eer"] is None else f"{row['eer']:.3f}"
        tar = "-" if row["tar_at_far_1e3"] is None else f"{row['tar_at_far_1e3']:.3f}"
        print(
            f"{row['system'][:45]:45} {row['accuracy']:8.4f} {eer:>6} {tar:>8} "
            f"{row['threshold']:7.3f} {len(row['undetected_images']):5d}",
            file=sys.stderr,
        )
    print(file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
