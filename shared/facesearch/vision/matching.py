"""1:1 verification: choose the face to compare and decide same person or not.

Similarity is the cosine of L2-normalised embeddings (their dot product); the
default threshold is the one calibrated for the embedder by the accuracy
benchmark and recorded in the model manifest, so it changes with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facesearch.errors import AmbiguousFace, ConfigError, NoFace
from facesearch.vision.types import Face, ImageResult


class _Embedder(Protocol):
    @property
    def model_id(self) -> str: ...

    @property
    def match_threshold(self) -> float | None: ...


@dataclass(frozen=True)
class MatchVerdict:
    same_person: bool
    similarity: float
    threshold: float
    model: str

    @property
    def distance(self) -> float:
        """Euclidean distance of the unit vectors, for users of distance-based APIs."""
        return float(np.sqrt(max(0.0, 2.0 - 2.0 * self.similarity)))

    def to_dict(self) -> dict[str, object]:
        return {
            "same_person": self.same_person,
            "similarity": round(self.similarity, 6),
            "distance": round(self.distance, 6),
            "threshold": self.threshold,
            "model": self.model,
        }


def pick_face(result: ImageResult, index: int | None, *, label: str, largest: bool = False) -> Face:
    """The face the caller means: the only one, the chosen index, or (opt-in) the largest."""
    if not result.faces:
        raise NoFace(f"no face found in {label}")
    if index is not None:
        if not 0 <= index < len(result.faces):
            raise NoFace(f"{label} has no face #{index}; it has {len(result.faces)} (0-based)")
        return result.faces[index]
    if len(result.faces) == 1:
        return result.faces[0]
    if largest:
        return max(result.faces, key=lambda face: face.detection.width * face.detection.height)
    raise AmbiguousFace(
        f"{label} has {len(result.faces)} faces; choose one with a face index or use the largest"
    )


def similarity(a: Face, b: Face) -> float:
    if a.embedding is None or b.embedding is None:
        raise ValueError("both faces need embeddings")
    return float(np.dot(a.embedding, b.embedding))


def compare_faces(a: Face, b: Face, embedder: _Embedder, threshold: float | None) -> MatchVerdict:
    chosen = threshold if threshold is not None else embedder.match_threshold
    if chosen is None:
        raise ConfigError(
            f"no match threshold for {embedder.model_id}: set FACESEARCH_MATCH_THRESHOLD"
        )
    score = similarity(a, b)
    return MatchVerdict(
        same_person=score >= chosen,
        similarity=score,
        threshold=float(chosen),
        model=embedder.model_id,
    )
