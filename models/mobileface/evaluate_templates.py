"""Which 5-point template suits mobileface-v1: genuine/impostor cosines per template.

Why this exists: the human library never aligned faces for mobileface; it cut its
own BlazeFace crop (see PROVENANCE.md). We express that crop as a template and
compare it with the insightface/ArcFace 112x112 template on the only labelled real
photos we have, through the product's detector and embedder (MTCNN landmarks,
similarity warp, raw 0..255 RGB). Also times the model per face.

Pairs: genuine = two photos of the same person from different captures (obama_1,
obama_2, obama_3, and the two partial-face crops, which are cut from obama_1 and so
never paired with it or each other); impostor = different labelled identities,
labelled vs group faces, and faces within one group photo. Faces in different group
photos are unlabelled and left out.

    .venv/bin/python models/mobileface/evaluate_templates.py
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesearch.config import load_settings
from facesearch.vision.align import ARCFACE_112_TEMPLATE
from facesearch.vision.decode import decode_image
from facesearch.vision.detect import MtcnnDetector
from facesearch.vision.embed import FaceEmbedder, with_template
from facesearch.vision.ort import open_session
from facesearch.vision.registry import verified_path
from facesearch.vision.types import FloatArray, ImageArray

PHOTOS = Path(__file__).resolve().parents[2] / "tests" / "data" / "photos"
MODEL = "mobileface-v1"
GROUP_MIN_FACE_PX = 80
# human 1.1.x crop (BlazeFace box x1.5, squared, then [top .05, left .15, bottom .85,
# right .85], resized to 112x112) expressed on MTCNN landmarks: mean over 33 faces,
# mirrored to be left/right symmetric (derivation in PROVENANCE.md).
HUMAN_CROP_TEMPLATE: FloatArray = np.array(
    [[34.6, 41.4], [77.4, 41.4], [56.0, 65.4], [36.3, 82.0], [75.7, 82.0]], dtype=np.float32
)
TEMPLATES = {"arcface_112": ARCFACE_112_TEMPLATE, "human_crop": HUMAN_CROP_TEMPLATE}
SAME_CAPTURE = {"obama_1", "obama_partial_1", "obama_partial_2"}


@dataclass(frozen=True)
class Face:
    photo: str
    identity: str  # person name, or photo#index for unlabelled group faces
    group: bool
    rgb: ImageArray
    landmarks: FloatArray


def load_faces(detector: MtcnnDetector) -> list[Face]:
    faces: list[Face] = []
    for folder in ("labelled", "partial"):
        for path in sorted((PHOTOS / folder).rglob("*.*")):
            rgb = decode_image(path.read_bytes()).rgb
            found = detector.detect(rgb)
            if not found:
                continue
            best = max(found, key=lambda d: d.width)
            identity = path.parent.name if folder == "labelled" else "obama"
            faces.append(Face(path.stem, identity, False, rgb, best.landmarks))
    for path in sorted((PHOTOS / "group").glob("*.jpg")):
        rgb = decode_image(path.read_bytes()).rgb
        for i, det in enumerate(detector.detect(rgb)):
            if det.width >= GROUP_MIN_FACE_PX:
                faces.append(Face(path.stem, f"{path.stem}#{i}", True, rgb, det.landmarks))
    return faces


def pair_scores(faces: list[Face], vectors: FloatArray) -> tuple[FloatArray, FloatArray]:
    genuine: list[float] = []
    impostor: list[float] = []
    for a, b in itertools.combinations(range(len(faces)), 2):
        fa, fb = faces[a], faces[b]
        cosine = float(vectors[a] @ vectors[b])
        if fa.identity == fb.identity:
            if not {fa.photo, fb.photo} <= SAME_CAPTURE:
                genuine.append(cosine)
        elif not (fa.group and fb.group and fa.photo != fb.photo):
            impostor.append(cosine)
    return np.array(genuine, np.float32), np.array(impostor, np.float32)


def auc(genuine: FloatArray, impostor: FloatArray) -> float:
    greater = (genuine[:, None] > impostor[None, :]).mean()
    ties = (genuine[:, None] == impostor[None, :]).mean()
    return float(greater + 0.5 * ties)


def main() -> int:
    settings = load_settings()
    detector = MtcnnDetector.from_settings(settings.vision)
    session = open_session(verified_path(settings.vision.models_dir, MODEL), providers="auto")
    models_dir = settings.vision.models_dir
    base = FaceEmbedder.from_manifest(models_dir, MODEL, session=session, batch_size=64)
    faces = load_faces(detector)
    print(f"{len(faces)} faces")
    for name, template in TEMPLATES.items():
        spec = with_template(base.spec, template)
        embedder = FaceEmbedder(session, spec, model_id=base.model_id, batch_size=64)
        crops = np.stack([embedder.align(f.rgb, f.landmarks) for f in faces])
        genuine, impostor = pair_scores(faces, embedder.embed(crops))
        spread = np.sqrt((genuine.var() + impostor.var()) / 2)
        print(f"{name}: genuine n={len(genuine)} {[f'{g:.3f}' for g in np.sort(genuine)]}")
        print(
            f"  impostor n={len(impostor)} mean {impostor.mean():.3f} "
            f"p95 {np.percentile(impostor, 95):.3f} max {impostor.max():.3f}; "
            f"AUC {auc(genuine, impostor):.3f}; "
            f"d' {(genuine.mean() - impostor.mean()) / spread:.2f}"
        )
        for threshold in (0.25, 0.30, 0.35, 0.40):
            print(
                f"  at {threshold:.2f}: genuine accepted {np.mean(genuine >= threshold):.2f}, "
                f"impostors accepted {np.mean(impostor >= threshold):.3f}"
            )
    for size in (1, 32):
        batch = np.repeat(crops[:1], size, axis=0)
        base.embed(batch)
        runs = 20
        start = time.perf_counter()
        for _ in range(runs):
            base.embed(batch)
        per_face = (time.perf_counter() - start) / runs / size * 1000
        print(f"embed (preprocess + onnxruntime CPU + L2), batch {size}: {per_face:.2f} ms/face")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
