"""The width guard's repair: split a person found too wide, touching only that person.

Joins and machine merges are refused before they would make a person too wide
(:mod:`.rule`), so a too-wide person comes from elsewhere: removals, persons made
before a setting was tightened, legacy labels. The split re-runs the batch rule
(:mod:`.batch`) on that one person's faces, with its user-assigned faces pinned
together: the part holding them (or, without any, the heaviest part) keeps the
person; the machine-assigned faces of every other part move to a new person (a
part with a core face) or wait unassigned. User-assigned faces never move. A
person with merged-in aliases is left alone: its merges were either checked for
width before they happened (machine) or are the user's call. Each chunk of moves
is one atomic apply and one ``split`` entry in the log (undoable like a move).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from facesearch.logs import log_fields
from facesearch.people.batch import BatchFaces, cluster, knn_exact
from facesearch.people.plan import Plan, stamp
from facesearch.people.ports import faces_of
from facesearch.people.reads import Reads
from facesearch.people.representative import face_weight
from facesearch.people.types import (
    Correction,
    CorrectionKind,
    FaceChange,
    Outcome,
    Person,
    Source,
    new_correction_id,
)

if TYPE_CHECKING:
    from facesearch.people.engine import PeopleEngine

logger = logging.getLogger(__name__)

#: faces moved per apply (and per log entry), well under the store's write limit
SPLIT_CHUNK = 200


def split_if_too_wide(engine: PeopleEngine, person_id: str) -> Outcome | None:
    settings = engine.settings
    reads = Reads(engine.store)
    roots, views = reads.views([person_id])
    root = roots.get(person_id)
    if root is None:
        return None
    view = views[root]
    if view.width >= settings.width_min_similarity or view.faces < 2:
        return None
    if view.root.aliases:
        return Outcome("", "width-guard-skipped", root, detail="merged person")
    if view.faces > settings.width_guard_max_faces:
        logger.warning(
            "person too wide but too large to split incrementally; left to a re-cluster",
            extra=log_fields(person_id=root, faces=view.faces, width=round(view.width, 4)),
        )
        return Outcome("", "width-guard-skipped", root, detail="too large")

    faces = list(faces_of(engine.store, root))
    if not any(f.source is Source.MACHINE for f in faces):
        return None
    embeddings = np.stack([f.embedding for f in faces]).astype(np.float32)
    image_codes: dict[str, int] = {}
    images = np.array([image_codes.setdefault(f.image_id, len(image_codes)) for f in faces])
    weights = np.array([face_weight(f.quality, settings) for f in faces], dtype=np.float64)
    fixed = np.array([0 if f.source is Source.USER else -1 for f in faces], dtype=np.int64)
    idx, sims = knn_exact(embeddings, settings.neighbours_k)
    result = cluster(
        BatchFaces(embeddings, images.astype(np.int64), weights, fixed=fixed),
        idx,
        sims,
        settings,
    )
    labels = result.labels.tolist()
    if fixed.max() >= 0:
        keep = labels[int(np.flatnonzero(fixed >= 0)[0])]
    else:
        totals: dict[int, float] = {}
        for label, w in zip(labels, weights.tolist(), strict=True):
            if label >= 0:
                totals[label] = totals.get(label, 0.0) + w
        keep = max(totals, key=lambda lab: (totals[lab], -lab)) if totals else -1
    new_ids: dict[int, str] = {}
    moves: list[tuple[str, int]] = []  # (face_id, label) of machine faces leaving
    for face, label in zip(faces, labels, strict=True):
        if face.source is Source.USER or (label == keep and label >= 0):
            continue
        moves.append((face.face_id, label))
    if not moves:
        return None
    has_core: dict[int, bool] = {}
    for label, is_core in zip(labels, result.core.tolist(), strict=True):
        has_core[label] = has_core.get(label, False) or bool(is_core)

    moved = unassigned = 0
    for start in range(0, len(moves), SPLIT_CHUNK):
        chunk = moves[start : start + SPLIT_CHUNK]

        def step(
            attempt: int, chunk: list[tuple[str, int]] = chunk
        ) -> tuple[Outcome, tuple[int, int]]:
            now = engine.clock()
            reads = Reads(engine.store)
            reads.faces(face_id for face_id, _ in chunk)  # one batch read, not one per face
            plan = Plan(reads, settings, f"split {root}")
            changes = []
            n_moved = n_unassigned = 0
            for face_id, label in chunk:
                current = plan.face(face_id)
                if current is None or current.person_id != root or current.source is Source.USER:
                    continue  # changed since we looked: leave it
                target: str | None = None
                if label >= 0 and has_core.get(label, False):
                    if label not in new_ids:
                        new_ids[label] = engine.new_id()
                    target = new_ids[label]
                    if plan.person(target) is None:
                        plan.put_person(
                            Person(
                                target, created_by=Source.MACHINE, created_at=now, updated_at=now
                            )
                        )
                after = replace(current, person_id=target, source=Source.MACHINE)
                plan.put_face(current, after)
                changes.append(FaceChange.between(current, after))
                if target is None:
                    n_unassigned += 1
                else:
                    n_moved += 1
            if not changes:
                return Outcome("", "split", root), (0, 0)
            person = plan.person(root)
            if person is not None:
                plan.put_person(stamp(person, now))
            plan.put_correction(
                Correction(
                    correction_id=new_correction_id(now),
                    kind=CorrectionKind.SPLIT,
                    actor=Source.MACHINE,
                    at=now,
                    person_id=root,
                    faces=tuple(changes),
                    note="width guard",
                )
            )
            engine.store.apply(plan.change_set())
            return Outcome("", "split", root), (n_moved, n_unassigned)

        _, (m, u) = engine._retry(step)
        moved += m
        unassigned += u
    logger.info(
        "too-wide person split",
        extra=log_fields(person_id=root, moved=moved, unassigned=unassigned, parts=len(new_ids)),
    )
    return Outcome(
        "",
        "split",
        root,
        detail=f"{moved} faces to {len(new_ids)} new persons, {unassigned} unassigned",
    )
