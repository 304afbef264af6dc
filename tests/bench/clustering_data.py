"""Faces for the clustering benchmark: a labelled LFW-layout folder, embedded with
our pipeline, and synthetic identities calibrated on it.

**Real faces.** Every face of every photo is embedded with
:class:`facesearch.vision.pipeline.FacePipeline` (the production embedder); the
face the photo is "of" (large and central, as LFW's protocol assumes) carries the
folder's identity, the others take part unlabelled. Embeddings are cached in
``bench-results/`` keyed by the folder's file list, sizes and mtimes and the model.

**Synthetic faces.** A two-level Gaussian model on the unit sphere::

    x = normalise(m + a * B_id g_identity + b * B_face g_face)

``m`` a fixed mean direction (real embeddings live in a narrow cone: impostor
cosines average 0.8, not 0), ``B_id`` / ``B_face`` random orthonormal bases of
``D_id`` / ``D_face`` dimensions, ``g`` standard normal scaled by 1/sqrt(D). The
two means (genuine, impostor) fix ``a`` and ``b`` (to first order impostor cosine
= 1/(1+a²+b²), genuine = (1+a²)/(1+a²+b²)); the two spreads fix the dimensions
(fewer dimensions, wider spread). We fit all four to the dev set's measured
pair-similarity distributions by simulation (grid over the dimensions, then a
fixed-point correction of a, b) and report fitted against measured moments and
tails. Identity sizes follow a power law P(s) ~ s^-2 (many one-off strangers, a
few people with thousands of photos), and 30 % of photos show 2-5 people.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facesearch.people.types import FaceInput, unit
from tests.bench.common import RESULTS_DIR, list_images


@dataclass
class Dataset:
    faces: list[FaceInput]
    labels: dict[str, str]  # labelled face id -> identity
    model: str
    photos: int
    undetected: list[str]


def _central(boxes: list[list[float]], width: int, height: int) -> int:
    from tests.bench.accuracy import central_face_index

    return central_face_index(boxes, width, height)


def load_dataset(folder: Path) -> Dataset:
    """Embed (or load from cache) every face of an LFW-layout folder."""
    if not folder.is_dir():
        raise SystemExit(f"clustering: dataset folder {folder} does not exist")
    photos = [p for d in sorted(folder.iterdir()) if d.is_dir() for p in list_images(d)]
    if not photos:
        raise SystemExit(f"clustering: no photos in identity folders under {folder}")
    from facesearch.config import load_settings
    from facesearch.errors import FaceSearchError
    from facesearch.vision.pipeline import FacePipeline

    pipeline = FacePipeline(load_settings())
    model = pipeline.embedder.model_id
    key = hashlib.sha256(
        json.dumps(
            [
                model,
                [
                    (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                    for p in photos
                ],
            ]
        ).encode()
    ).hexdigest()[:16]
    cache = RESULTS_DIR / f"clustering-embeddings-{key}.json"
    if cache.is_file():
        rows = json.loads(cache.read_text())
    else:
        rows = []
        bar = tqdm(
            photos, desc="embedding", file=sys.stderr, leave=False, disable=not sys.stderr.isatty()
        )
        for photo in bar:
            relative = str(photo.relative_to(folder))
            try:
                result = pipeline.process(photo.read_bytes())
            except FaceSearchError:
                rows.append({"image": relative, "faces": []})
                continue
            boxes = [f.detection.box.tolist() for f in result.faces]
            central = _central(boxes, result.width, result.height) if boxes else -1
            faces = []
            for position, face in enumerate(result.faces):
                assert face.embedding is not None
                faces.append(
                    {
                        "index": face.index,
                        "central": position == central,
                        "embedding": face.embedding.astype(float).tolist(),
                        "quality": face.quality.score if face.quality else 1.0,
                    }
                )
            rows.append({"image": relative, "faces": faces})
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(rows))
    faces: list[FaceInput] = []
    labels: dict[str, str] = {}
    undetected = []
    for n, row in enumerate(rows):
        if not row["faces"]:
            undetected.append(row["image"])
        for face in row["faces"]:
            face_id = f"{row['image']}:{face['index']}"
            faces.append(
                FaceInput(
                    face_id, row["image"], unit(face["embedding"]), float(face["quality"]), float(n)
                )
            )
            if face["central"]:
                labels[face_id] = row["image"].split("/")[0]
    return Dataset(faces, labels, model, len(photos), undetected)


# --- similarity distributions --------------------------------------------------------------


def pair_similarities(
    embeddings: np.ndarray, labels: list[object]
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor cosine similarities of all labelled pairs."""
    sims = embeddings @ embeddings.T
    iu = np.triu_indices(len(labels), 1)
    codes = np.unique(np.array([str(x) for x in labels]), return_inverse=True)[1]
    same = codes[iu[0]] == codes[iu[1]]
    values = sims[iu]
    return values[same], values[~same]


def describe(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    q = np.quantile(values, [0.001, 0.01, 0.5, 0.99, 0.999])
    return {
        "n": len(values),
        "mean": round(float(values.mean()), 4),
        "std": round(float(values.std()), 4),
        "min": round(float(values.min()), 4),
        "q001": round(float(q[0]), 4),
        "q01": round(float(q[1]), 4),
        "median": round(float(q[2]), 4),
        "q99": round(float(q[3]), 4),
        "q999": round(float(q[4]), 4),
        "max": round(float(values.max()), 4),
    }


# --- the synthetic model ---------------------------------------------------------------------


@dataclass(frozen=True)
class SynthModel:
    dims: int
    a: float
    b: float
    d_id: int
    d_face: int
    seed: int = 0

    def bases(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        q, _ = np.linalg.qr(rng.normal(size=(self.dims, self.dims)))
        mean = q[:, 0]
        rest = q[:, 1:]
        perm = rng.permutation(rest.shape[1])
        b_id = rest[:, perm[: self.d_id]]
        b_face = (
            rest[:, perm[self.d_id : self.d_id + self.d_face]]
            if self.d_id + self.d_face <= rest.shape[1]
            else rest[:, rng.permutation(rest.shape[1])[: self.d_face]]
        )
        return mean, b_id, b_face

    def sample(self, sizes: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Unit embeddings (float32) and identity index per row."""
        mean, b_id, b_face = self.bases()
        n = int(sum(sizes))
        ident = np.repeat(np.arange(len(sizes)), sizes)
        centres = (rng.standard_normal((len(sizes), self.d_id)) / np.sqrt(self.d_id)) @ b_id.T
        out = np.empty((n, self.dims), dtype=np.float32)
        step = 200_000
        for start in range(0, n, step):
            stop = min(n, start + step)
            noise = (
                rng.standard_normal((stop - start, self.d_face)) / np.sqrt(self.d_face)
            ) @ b_face.T
            x = mean[None, :] + self.a * centres[ident[start:stop]] + self.b * noise
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[start:stop] = x
        return out, ident


def _moments(
    model: SynthModel, rng: np.random.Generator, identities: int = 400, per: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    x, ident = model.sample([per] * identities, rng)
    return pair_similarities(x.astype(np.float64), ident.tolist())


def calibrate_cached(
    genuine: np.ndarray, impostor: np.ndarray, *, dims: int, seed: int = 0
) -> tuple[SynthModel, dict[str, object]]:
    """:func:`calibrate`, remembered in bench-results/ for the same inputs."""
    key = hashlib.sha256(
        np.concatenate([np.sort(genuine), [-1.0], np.sort(impostor), [dims, seed]]).tobytes()
    ).hexdigest()[:16]
    cache = RESULTS_DIR / f"clustering-calibration-{key}.json"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        return SynthModel(**saved["synth"]), saved["report"]
    model, report = calibrate(genuine, impostor, dims=dims, seed=seed)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"synth": model.__dict__, "report": report}))
    return model, report


def calibrate(
    genuine: np.ndarray, impostor: np.ndarray, *, dims: int, seed: int = 0
) -> tuple[SynthModel, dict[str, object]]:
    """Fit the two-level model to measured genuine/impostor similarity distributions."""
    g_mean, i_mean = float(genuine.mean()), float(impostor.mean())
    g_std, i_std = float(genuine.std()), float(impostor.std())
    rng = np.random.default_rng(seed)

    def fitted(d_id: int, d_face: int) -> SynthModel:
        a2 = max(g_mean / i_mean - 1.0, 1e-4)
        b2 = max((1.0 - g_mean) / i_mean, 1e-5)
        model = SynthModel(dims, float(np.sqrt(a2)), float(np.sqrt(b2)), d_id, d_face, seed)
        for _ in range(3):  # correct the means for the normalisation
            gen, imp = _moments(model, rng, 150, 4)
            a2 *= (g_mean / i_mean - 1.0) / max(gen.mean() / imp.mean() - 1.0, 1e-6)
            b2 *= (1.0 - g_mean) / max(1.0 - gen.mean(), 1e-6)
            model = SynthModel(dims, float(np.sqrt(a2)), float(np.sqrt(b2)), d_id, d_face, seed)
        return model

    best: tuple[float, SynthModel] | None = None
    grid = [8, 12, 16, 24, 32, 48]
    for d_id, d_face in itertools.product(grid, grid):
        if d_id + d_face > dims - 1:
            continue
        model = fitted(d_id, d_face)
        gen, imp = _moments(model, rng, 150, 4)
        error = ((gen.std() - g_std) / g_std) ** 2 + ((imp.std() - i_std) / i_std) ** 2
        error += ((gen.mean() - g_mean) / (1 - g_mean)) ** 2 + (
            (imp.mean() - i_mean) / (1 - i_mean)
        ) ** 2
        if best is None or error < best[0]:
            best = (float(error), model)
    assert best is not None
    model = best[1]
    gen, imp = _moments(model, np.random.default_rng(seed + 1), 600, 4)
    report = {
        "model": {
            "a": round(model.a, 4),
            "b": round(model.b, 4),
            "d_id": model.d_id,
            "d_face": model.d_face,
        },
        "measured": {"genuine": describe(genuine), "impostor": describe(impostor)},
        "synthetic": {"genuine": describe(gen), "impostor": describe(imp)},
    }
    return model, report


def library_sizes(faces: int, rng: np.random.Generator, *, exponent: float = 2.0) -> list[int]:
    """Identity sizes drawn from P(s) ~ s^-exponent until they add up to ``faces``."""
    cap = max(2, faces // 50)
    s = np.arange(1, cap + 1, dtype=np.float64)
    p = s**-exponent
    p /= p.sum()
    sizes: list[int] = []
    total = 0
    while total < faces:
        draw = rng.choice(np.arange(1, cap + 1), size=max(16, (faces - total) // 3), p=p).tolist()
        for drawn in draw:
            size = min(int(drawn), faces - total)
            sizes.append(size)
            total += size
            if total >= faces:
                break
    return sizes


def group_into_photos(
    ident: np.ndarray, rng: np.random.Generator, *, shared: float = 0.3
) -> np.ndarray:
    """An image code per face: 70 % alone in their photo, 30 % in photos of 2-5 people
    (never twice the same identity in one photo)."""
    n = len(ident)
    image = np.empty(n, dtype=np.int64)
    order = rng.permutation(n)
    grouped = order[: int(n * shared)]
    alone = order[int(n * shared) :]
    image[alone] = np.arange(len(alone))
    next_image = len(alone)
    position = 0
    while position < len(grouped):
        size = int(rng.integers(2, 6))
        members = []
        seen = set()
        while position < len(grouped) and len(members) < size:
            face = int(grouped[position])
            if int(ident[face]) in seen:
                break
            seen.add(int(ident[face]))
            members.append(face)
            position += 1
        image[members] = next_image
        next_image += 1
    return image
