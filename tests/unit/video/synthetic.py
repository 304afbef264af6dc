"""Synthetic faces for tracker and stitcher tests (no models: boxes + made-up embeddings)."""

from __future__ import annotations

import numpy as np

from facesearch.vision.types import Detection, Face, FloatArray, Quality

DIM = 128


def identity_vector(seed: int) -> FloatArray:
    vector = np.random.default_rng(10_000 + seed).normal(size=DIM).astype(np.float32)
    out: FloatArray = vector / np.linalg.norm(vector)
    return out


def jittered(vector: FloatArray, seed: int, amount: float = 0.015) -> FloatArray:
    """The same person in another frame (cosine with ``vector``: 1 / sqrt(1 + amount**2 * DIM))."""
    noise = np.random.default_rng(seed).normal(size=DIM).astype(np.float32) * amount
    out = vector + noise
    result: FloatArray = out / np.linalg.norm(out)
    return result


def face(
    box: tuple[float, float, float, float],
    embedding: FloatArray,
    *,
    quality: float = 0.5,
    acceptable: bool = True,
    score: float = 0.99,
) -> Face:
    x1, y1, x2, y2 = box
    landmarks = np.array([[x1 + 0.3 * (x2 - x1), y1 + 0.4 * (y2 - y1)]] * 5, dtype=np.float32)
    return Face(
        index=0,
        detection=Detection(box=np.array(box, dtype=np.float32), score=score, landmarks=landmarks),
        liveness=0.9,
        live=True,
        quality=Quality(
            sharpness=100.0,
            brightness=120.0,
            contrast=40.0,
            face_px=x2 - x1,
            yaw_deg=0.0,
            pitch_deg=0.0,
            roll_deg=0.0,
            score=quality,
            reasons=() if acceptable else ("too small",),
        ),
        embedding=embedding,
        crop=np.zeros((8, 8, 3), dtype=np.uint8),
    )


def box_at(x: float, y: float = 100.0, size: float = 80.0) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)
