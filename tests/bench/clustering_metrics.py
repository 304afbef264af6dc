"""Clustering quality against ground-truth identities (pairwise and BCubed).

Only labelled faces count (in an LFW-layout folder, the central face of each photo;
other faces in a photo take part in clustering but have no label). A labelled face
left without a person counts as a singleton cluster of its own: it never makes a
pair, so it costs recall, not precision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Quality:
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    persons: int  # clusters holding at least one labelled face
    identities: int
    unassigned: int  # labelled faces in no person
    faces: int  # labelled faces evaluated

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _pairs(counts: Counter[Any]) -> int:
    return sum(c * (c - 1) // 2 for c in counts.values())


def evaluate(assignment: Mapping[str, Any], labels: Mapping[str, Any]) -> Quality:
    """``assignment``: face -> cluster (None = unassigned); ``labels``: face -> identity."""
    faces = [f for f in labels if f in assignment]
    cluster_of = {}
    for f in faces:
        c = assignment[f]
        cluster_of[f] = ("person", c) if c is not None else ("alone", f)
    by_cluster = Counter(cluster_of[f] for f in faces)
    by_label = Counter(labels[f] for f in faces)
    by_both = Counter((cluster_of[f], labels[f]) for f in faces)
    tp = _pairs(by_both)
    predicted = _pairs(by_cluster)
    actual = _pairs(by_label)
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(faces)
    bp = (
        sum(by_both[(cluster_of[f], labels[f])] / by_cluster[cluster_of[f]] for f in faces) / n
        if n
        else 1.0
    )
    br = (
        sum(by_both[(cluster_of[f], labels[f])] / by_label[labels[f]] for f in faces) / n
        if n
        else 1.0
    )
    bf = 2 * bp * br / (bp + br) if bp + br else 0.0
    persons = len({c for c in cluster_of.values() if c[0] == "person"})
    unassigned = sum(1 for c in cluster_of.values() if c[0] == "alone")
    return Quality(precision, recall, f1, bp, br, bf, persons, len(by_label), unassigned, n)
