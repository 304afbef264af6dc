"""Full re-cluster: for a parameter or model change, or to reconcile after an outage.

1. **Snapshot** every face and person from the store (and, if given, the faces the
   metadata store holds now: faces it lost are removed, new ones added, embeddings
   of a new model replace the old ones).
2. **Cluster** all faces with the batch rule (:mod:`.batch`), user-assigned faces
   pinned to their persons, named / user-confirmed persons never put together, and
   "distinct" pairs kept apart.
3. **Keep ids and names stable**: new clusters are matched to old persons by how
   many faces they share — a maximum-overlap one-to-one assignment (Hungarian
   algorithm per connected block of the overlap graph; a greedy pass for blocks too
   large for it). A matched cluster keeps the old person's id, name, aliases and
   constraints; an unmatched one gets a new id (:mod:`.stable_ids`); an old person
   matched by no cluster is deleted unless it has a name. A face already in the
   matched person (directly or through an alias) is not rewritten, so merges stay
   undoable. A face whose user rejected its new person is left unassigned instead.
4. **Apply** in chunks, each one atomic with the snapshot versions as
   preconditions: a face that changed meanwhile (the event-driven clusterer or a
   user got there first) is left as it is now. Person statistics are then
   recomputed from the stored faces, person by person, with their versions as
   preconditions (:mod:`.rewrite`). Safe to run next to live traffic; cheapest with
   the clusterer paused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from facesearch.logs import log_fields
from facesearch.people.batch import BatchFaces, BatchResult, KnnFunction, cluster, knn_exact
from facesearch.people.ports import PeopleStore, every_correction, every_face, every_person
from facesearch.people.representative import face_weight
from facesearch.people.rewrite import create_persons, refresh_statistics, remove_faces, write_faces
from facesearch.people.settings import PeopleSettings
from facesearch.people.stable_ids import person_ids_of_clusters
from facesearch.people.types import (
    ClusterFace,
    CorrectionKind,
    FaceInput,
    Person,
    Source,
    new_person_id,
)

logger = logging.getLogger(__name__)


@dataclass
class ReclusterReport:
    faces: int = 0
    persons_before: int = 0
    persons_after: int = 0
    kept_ids: int = 0
    new_ids: int = 0
    retired_ids: int = 0
    faces_rewritten: int = 0
    unassigned: int = 0
    skipped_changed: int = 0
    added: int = 0
    removed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _user_merged(store: PeopleStore) -> set[str]:
    """Persons a user merged into another (not undone): the user said they are one, so a
    re-cluster keeps their faces with that person as it keeps user-assigned faces."""
    return {
        merged
        for entry in every_correction(store)
        if entry.kind is CorrectionKind.MERGE
        and entry.actor is Source.USER
        and entry.undone_by is None
        for merged in entry.merged
    }


@dataclass
class _Snapshot:
    """What the re-cluster read, and the faces it clusters."""

    stored: dict[str, ClusterFace]  # the people store's faces as read
    persons: dict[str, Person]
    work: dict[str, ClusterFace]  # the faces to cluster (stored, updated from the metadata store)
    removed: list[str]  # stored faces the metadata store no longer has
    merged_by_user: set[str] = field(default_factory=set)
    merge_roots: set[str | None] = field(default_factory=set)

    def root_of(self, person_id: str | None) -> str | None:
        if person_id is None or person_id not in self.persons:
            return None
        record = self.persons[person_id]
        root = record.merged_into or person_id
        return root if root in self.persons else None

    def pinned(self, face: ClusterFace) -> bool:
        """A face the batch rule may not move: user-assigned, or one of a person a user
        merged, on either side of the merge (that merge is a user's statement too)."""
        if face.source is Source.USER:
            return True
        own = self.persons.get(face.person_id or "")
        if own is None:
            return False
        return own.person_id in self.merged_by_user or (
            own.merged_into is None and own.person_id in self.merge_roots
        )


def _snapshot(
    store: PeopleStore, faces: Iterable[FaceInput] | None, report: ReclusterReport
) -> _Snapshot:
    stored = {f.face_id: f for f in every_face(store)}
    persons = {p.person_id: p for p in every_person(store)}
    report.persons_before = sum(1 for p in persons.values() if p.is_root)
    work: dict[str, ClusterFace] = dict(stored)
    removed: list[str] = []
    if faces is not None:
        inputs = {f.face_id: f for f in faces}
        removed = sorted(set(stored) - set(inputs))
        for face_id in removed:
            del work[face_id]
        for face_id, fresh in inputs.items():
            known = work.get(face_id)
            if known is None:
                work[face_id] = ClusterFace.from_input(fresh)
                report.added += 1
            else:
                work[face_id] = replace(
                    known,
                    embedding=fresh.embedding,
                    quality=fresh.quality,
                    seen_at=fresh.seen_at,
                    image_id=fresh.image_id,
                )
        report.removed = len(removed)
    snap = _Snapshot(stored, persons, work, removed)
    snap.merged_by_user = {p for p in _user_merged(store) if p in persons}
    snap.merge_roots = {persons[p].merged_into for p in snap.merged_by_user} - {None}
    return snap


def _batch_faces(
    snap: _Snapshot,
    ids: Sequence[str],
    current_root: Sequence[str | None],
    settings: PeopleSettings,
) -> BatchFaces:
    """The batch rule's input: user-assigned and user-merged faces pinned to their
    persons, named / user-confirmed persons exclusive, "distinct" pairs kept apart."""
    persons, work = snap.persons, snap.work
    roots = sorted({p.merged_into or p.person_id for p in persons.values()})
    user_roots = {r for r, f in zip(current_root, ids, strict=True) if r and snap.pinned(work[f])}
    distinct_pairs: set[tuple[str, str]] = set()
    for record in persons.values():
        a = snap.root_of(record.person_id)
        for other in record.distinct_from:
            b = snap.root_of(other)
            if a and b and a != b:
                distinct_pairs.add((min(a, b), max(a, b)))
    protected = {r for r in roots if r in persons and persons[r].name is not None} | user_roots
    protected |= {x for pair in distinct_pairs for x in pair}
    code = {r: i for i, r in enumerate(sorted(protected))}
    exclusive = frozenset(
        code[r] for r in protected if r in user_roots or persons[r].name is not None
    )
    distinct = frozenset((min(code[a], code[b]), max(code[a], code[b])) for a, b in distinct_pairs)
    embeddings = (
        np.stack([work[f].embedding for f in ids]).astype(np.float32)
        if ids
        else np.zeros((0, 1), np.float32)
    )
    image_code: dict[str, int] = {}
    images = np.array(
        [image_code.setdefault(work[f].image_id, len(image_code)) for f in ids], dtype=np.int64
    )
    weights = np.array([face_weight(work[f].quality, settings) for f in ids], dtype=np.float64)
    fixed = np.array(
        [
            code[r] if r is not None and snap.pinned(work[f]) else -1
            for f, r in zip(ids, current_root, strict=True)
        ],
        dtype=np.int64,
    )
    codes = np.array(
        [code.get(r, -1) if r is not None else -1 for r in current_root], dtype=np.int64
    )
    return BatchFaces(
        embeddings,
        images,
        weights,
        fixed=fixed,
        codes=codes,
        exclusive=exclusive,
        distinct=distinct,
    )


def _targets(
    snap: _Snapshot,
    ids: Sequence[str],
    current_root: Sequence[str | None],
    *,
    result: BatchResult,
    mapping: dict[int, str],
    report: ReclusterReport,
) -> dict[str, ClusterFace]:
    """The new record of every face whose record changes. A face already in its
    cluster's person (directly or through an alias) keeps its ``person_id``, so merges
    stay undoable; a face whose user rejected its new person is left unassigned."""
    labels = result.labels.tolist()
    targets: dict[str, ClusterFace] = {}
    for position, face_id in enumerate(ids):
        face = snap.work[face_id]
        label = labels[position]
        target = mapping.get(label) if label >= 0 else None
        if snap.pinned(face) and current_root[position] is not None:
            target = current_root[position]
        elif target is not None:
            rejected_roots = {snap.root_of(p) for p in face.rejected} | set(face.rejected)
            if target in rejected_roots:
                target = None
        if target is None:
            person_id: str | None = None
        elif current_root[position] == target:
            person_id = face.person_id
        else:
            person_id = target
        source = face.source if person_id is not None else Source.MACHINE
        after = replace(
            face,
            person_id=person_id,
            source=source,
            core=bool(result.core[position]),
            link_count=int(result.link_count[position]),
        )
        if person_id is None:
            report.unassigned += 1
        old = snap.stored.get(face_id)
        if old is None or after != old or old.embedding is not after.embedding:
            targets[face_id] = after
    return targets


def recluster(
    store: PeopleStore,
    settings: PeopleSettings | None = None,
    *,
    faces: Iterable[FaceInput] | None = None,
    knn: KnnFunction | None = None,
    clock: Callable[[], float] = time.time,
    new_id: Callable[[], str] = new_person_id,
) -> ReclusterReport:
    settings = settings or PeopleSettings()
    report = ReclusterReport()
    t0 = time.perf_counter()

    # --- 1. snapshot ------------------------------------------------------------------
    snap = _snapshot(store, faces, report)
    ids = sorted(snap.work)
    n = len(ids)
    report.faces = n
    report.seconds["snapshot"] = time.perf_counter() - t0
    current_root = [snap.root_of(snap.work[f].person_id) for f in ids]

    # --- 2. cluster ---------------------------------------------------------------------
    batch = _batch_faces(snap, ids, current_root, settings)
    knn_fn = knn or knn_exact
    tk = time.perf_counter()
    neighbours, sims = (
        knn_fn(batch.embeddings, settings.neighbours_k)
        if n
        else (np.zeros((0, 1), np.int64), np.zeros((0, 1), np.float32))
    )
    report.seconds["knn"] = time.perf_counter() - tk
    tc = time.perf_counter()
    result = cluster(batch, neighbours, sims, settings)
    report.seconds["cluster"] = time.perf_counter() - tc

    # --- 3. stable ids ----------------------------------------------------------------------
    tm = time.perf_counter()
    fixed = batch.fixed
    assert fixed is not None
    mapping = person_ids_of_clusters(result.labels.tolist(), current_root, fixed, new_id)
    created = {pid for pid in mapping.values() if pid not in snap.persons}
    report.new_ids = len(created)
    report.kept_ids = len(set(mapping.values()) - created)
    report.seconds["match"] = time.perf_counter() - tm
    targets = _targets(snap, ids, current_root, result=result, mapping=mapping, report=report)

    # --- 4. apply ---------------------------------------------------------------------------
    ta = time.perf_counter()
    now = clock()
    create_persons(store, sorted(created), now=now)
    report.skipped_changed += remove_faces(store, snap.removed, snap.stored, now=now)
    written, skipped = write_faces(store, targets, snap.stored)
    report.faces_rewritten += written
    report.skipped_changed += skipped
    roots = {p.merged_into or p.person_id for p in snap.persons.values()}
    final_persons = {p.person_id: p for p in every_person(store)}
    kept = set(mapping.values())
    retire = {r for r in roots if r in final_persons and r not in kept}
    refresh_statistics(store, settings, final_persons, retire)
    after = {p.person_id: p for p in every_person(store)}
    report.retired_ids = sum(1 for r in retire if r not in after)
    report.persons_after = sum(1 for p in after.values() if p.is_root)
    report.seconds["apply"] = time.perf_counter() - ta
    report.seconds["total"] = time.perf_counter() - t0
    logger.info(
        "re-cluster done",
        extra=log_fields(**{k: v for k, v in report.__dict__.items() if k != "seconds"}),
    )
    return report
