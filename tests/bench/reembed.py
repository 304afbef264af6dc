"""What re-embedding from stored crops costs against re-embedding from the originals.

``python -m tests.bench.reembed [--dataset DIR] [--models mobileface-v1,dlib-resnet-v1]``

Ingests a labelled folder (one folder per identity; default: faces-dev) with the default
embedder (dlib-resnet-v1, whose 150 px aligned chip is the stored crop), then embeds
every photo's largest face with each target model twice — from the stored crop
(``reembed --source crop``) and from the original image (``--source original``) — and
compares, on the same faces: ROC AUC of genuine vs impostor pairs, verification
accuracy at the best threshold, leave-one-out rank-1 identification, and the cosine
between a face's crop and original vectors. The ingest-time vectors (original, default
model) are the baseline row. JSON summary last; bench-results/reembed.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch.config import load_settings
from facesearch.jobs.reembed import Reembed, crop_is_enough
from facesearch.local import EmbeddedSystem
from facesearch.storage.metadata import FaceRecord
from tests.bench.common import dev_set, list_images, write_result


def _largest_faces(
    system: EmbeddedSystem, labels: dict[str, str]
) -> tuple[list[FaceRecord], list[str]]:
    """Each labelled photo's largest face (multi-face photos: the subject) and its identity."""
    faces: list[FaceRecord] = []
    names: list[str] = []
    for image in system.metadata.list_images(limit=1000).items:
        found = system.metadata.list_faces(image_id=image.image_id, limit=100).items
        if not found or image.source not in labels:
            continue
        best = max(found, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        faces.append(best)
        names.append(labels[image.source])
    return faces, names


def scores(vectors: npt.NDArray[np.float32], names: list[str]) -> dict[str, float]:
    """AUC, best-threshold accuracy over all pairs, leave-one-out rank-1."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = v @ v.T
    same = np.array([[a == b for b in names] for a in names])
    upper = np.triu_indices(len(names), 1)
    genuine, impostor = sims[upper][same[upper]], sims[upper][~same[upper]]
    # AUC: probability a genuine pair outscores an impostor pair (ties count half)
    greater = (genuine[:, None] > impostor[None, :]).mean()
    ties = (genuine[:, None] == impostor[None, :]).mean()
    pairs = np.concatenate([genuine, impostor])
    truth = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    accuracy = max(float(((pairs >= t) == truth).mean()) for t in np.unique(pairs))
    np.fill_diagonal(sims, -2.0)
    has_mate = same.sum(axis=1) > 1
    nearest = sims.argmax(axis=1)
    rank1 = float(np.mean([names[int(nearest[i])] == names[i] for i in np.where(has_mate)[0]]))
    return {
        "auc": round(float(greater + ties / 2), 4),
        "best_threshold_accuracy": round(accuracy, 4),
        "rank1": round(rank1, 4),
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=dev_set())
    parser.add_argument("--models", default="mobileface-v1,dlib-resnet-v1")
    args = parser.parse_args(argv)
    if args.dataset is None or not args.dataset.is_dir():
        parser.error("no labelled dataset (--dataset DIR, or shared/datasets/faces-dev)")
    photos = list_images(args.dataset)
    labels = {str(p): p.parent.name for p in photos}
    with tempfile.TemporaryDirectory() as data:
        system = EmbeddedSystem(load_settings(backend="local", data_dir=Path(data)), cluster=False)
        t0 = time.perf_counter()
        system.ingest_files(photos)
        ingest_s = time.perf_counter() - t0
        faces, names = _largest_faces(system, labels)
        default_model = faces[0].model
        rows: dict[str, Any] = {
            f"{default_model} ingest (original)": scores(
                np.stack([f.vector() for f in faces]), names
            )
        }
        details: dict[str, Any] = {"ingest_s": round(ingest_s, 1)}
        summary: dict[str, Any] = {"photos": len(photos), "faces": len(faces)}
        old = system.backend.pipeline(default_model.partition("@")[0]).embedder
        for model in args.models.split(","):
            vectors: dict[str, npt.NDArray[np.float32]] = {}
            for source in ("crop", "original"):
                job = Reembed(system.backend, f"bench-{source}", model=model, source=source)
                t0 = time.perf_counter()
                got = job.embed_faces(faces)
                seconds = time.perf_counter() - t0
                kept = [i for i, f in enumerate(faces) if f.face_id in got]
                vectors[source] = np.stack([got[faces[i].face_id] for i in kept])
                row = scores(vectors[source], [names[i] for i in kept])
                row["faces_per_s"] = round(len(kept) / seconds, 1)
                rows[f"{model} from {source}"] = row
            agreement = np.sum(vectors["crop"] * vectors["original"], axis=1)
            new = system.backend.pipeline(model).embedder
            summary[model] = {
                "auc_crop": rows[f"{model} from crop"]["auc"],
                "auc_original": rows[f"{model} from original"]["auc"],
                "rank1_crop": rows[f"{model} from crop"]["rank1"],
                "rank1_original": rows[f"{model} from original"]["rank1"],
                "crop_vs_original_cosine_median": round(float(np.median(agreement)), 4),
                "auto_uses_crop": crop_is_enough(old, new),
            }
        details["rows"] = rows
    write_result("reembed", summary, details)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
