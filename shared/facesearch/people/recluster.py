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
   constraints; an unmatched one gets a new id; an old person matched by no cluster
   is deleted unless it has a name. A face already in the matched person (directly
   or through an alias) is not rewritten, so merges stay undoable. A face whose user
   rejected its new person is left unassigned instead.
4. **Apply** in chunks, each one atomic with the snapshot versions as
   preconditions: a face that changed meanwhile (the event-driven clusterer or a
   user got there first) is left as it is now. Person statistics are then
   recomputed from the stored faces, person by person, with their versions as
   preconditions. Safe to run next to live traffic; cheapest with the clusterer
   paused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facesearch.errors import StaleRead
from facesearch.logs import log_fields
from facesearch.people.batch import BatchFaces, KnnFunction, cluster, knn_exact
from facesearch.people.engine import new_person_id
from facesearch.people.ports import ChangeSet, PeopleStore, face_key, person_key, tombstone_key
from facesearch.people.representative import face_weight, recompute
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import (
    ClusterFace,
    CorrectionKind,
    FaceInput,
    Person,
    Source,
    Tombstone,
)

logger = logging.getLogger(__name__)

#: faces written per apply
FACE_CHUNK = 450
#: largest overlap block solved exactly (rows x columns)
HUNGARIAN_MAX_CELLS = 4_000_000


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


def _all_faces(store: PeopleStore) -> dict[str, ClusterFace]:
    out: dict[str, ClusterFace] = {}
    cursor: str | None = None
    while True:
        page = store.list_faces(cursor=cursor, limit=5000)
        out.update((f.face_id, f) for f in page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def _all_persons(store: PeopleStore) -> dict[str, Person]:
    out: dict[str, Person] = {}
    cursor: str | None = None
    while True:
        page = store.list_persons(roots_only=False, cursor=cursor, limit=5000)
        out.update((p.person_id, p) for p in page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def _user_merged(store: PeopleStore) -> set[str]:
    """Persons a user merged into another (not undone): the user said they are one, so a
    re-cluster keeps their faces with that person as it keeps user-assigned faces."""
    out: set[str] = set()
    before: str | None = None
    while True:
        entries = store.list_corrections(before=before, limit=1000)
        for entry in entries:
            if (
                entry.kind is CorrectionKind.MERGE
                and entry.actor is Source.USER
                and entry.undone_by is None
            ):
                out.update(entry.merged)
        if len(entries) < 1000:
            return out
        before = entries[-1].correction_id


def match_by_overlap(
    overlaps: dict[tuple[int, str], int],
) -> dict[int, str]:
    """One-to-one cluster -> old person assignment maximising the shared faces."""
    if not overlaps:
        return {}
    labels = sorted({lab for lab, _ in overlaps})
    olds = sorted({old for _, old in overlaps})
    li = {lab: i for i, lab in enumerate(labels)}
    oi = {old: i for i, old in enumerate(olds)}
    rows = np.array([li[lab] for lab, _ in overlaps])
    cols = np.array([oi[old] for _, old in overlaps])
    vals = np.array(list(overlaps.values()), dtype=np.float64)
    nl, no = len(labels), len(olds)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + nl)), shape=(nl + no, nl + no)).tocsr()
    _, block = connected_components(graph, directed=False)
    by_block: dict[int, list[int]] = {}
    for e, r in enumerate(rows.tolist()):
        by_block.setdefault(int(block[r]), []).append(e)
    out: dict[int, str] = {}
    for edges in by_block.values():
        r_ids = sorted({int(rows[e]) for e in edges})
        c_ids = sorted({int(cols[e]) for e in edges})
        if len(r_ids) == 1 or len(c_ids) == 1 or len(r_ids) * len(c_ids) <= HUNGARIAN_MAX_CELLS:
            rpos = {r: i for i, r in enumerate(r_ids)}
            cpos = {c: i for i, c in enumerate(c_ids)}
            dense = np.zeros((len(r_ids), len(c_ids)))
            for e in edges:
                dense[rpos[int(rows[e])], cpos[int(cols[e])]] = vals[e]
            chosen_r, chosen_c = linear_sum_assignment(dense, maximize=True)
            for a, b in zip(chosen_r.tolist(), chosen_c.tolist(), strict=True):
                if dense[a, b] > 0:
                    out[labels[r_ids[a]]] = olds[c_ids[b]]
        else:  # greedy, biggest overlap first
            taken_r: set[int] = set()
            taken_c: set[int] = set()
            for e in sorted(edges, key=lambda e: (-vals[e], int(rows[e]), int(cols[e]))):
                r, c = int(rows[e]), int(cols[e])
                if r not in taken_r and c not in taken_c:
                    taken_r.add(r)
                    taken_c.add(c)
                    out[labels[r]] = olds[c]
    return out


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
    stored = _all_faces(store)
    persons = _all_persons(store)
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
    ids = sorted(work)
    n = len(ids)
    report.faces = n
    report.seconds["snapshot"] = time.perf_counter() - t0

    def root_of(person_id: str | None) -> str | None:
        if person_id is None or person_id not in persons:
            return None
        record = persons[person_id]
        root = record.merged_into or person_id
        return root if root in persons else None

    current_root = [root_of(work[f].person_id) for f in ids]
    merged_by_user = {p for p in _user_merged(store) if p in persons}
    merge_roots = {persons[p].merged_into for p in merged_by_user} - {None}

    def pinned(face: ClusterFace) -> bool:
        """A face the batch rule may not move: user-assigned, or one of a person a user
        merged, on either side of the merge (that merge is a user's statement too)."""
        if face.source is Source.USER:
            return True
        own = persons.get(face.person_id or "")
        if own is None:
            return False
        return own.person_id in merged_by_user or (
            own.merged_into is None and own.person_id in merge_roots
        )

    # --- 2. cluster ---------------------------------------------------------------------
    roots = sorted({p.merged_into or p.person_id for p in persons.values()})
    user_roots = {r for r, f in zip(current_root, ids, strict=True) if r and pinned(work[f])}
    distinct_pairs: set[tuple[str, str]] = set()
    for record in persons.values():
        a = root_of(record.person_id)
        for other in record.distinct_from:
            b = root_of(other)
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
        if n
        else np.zeros((0, 1), np.float32)
    )
    image_code: dict[str, int] = {}
    images = np.array(
        [image_code.setdefault(work[f].image_id, len(image_code)) for f in ids], dtype=np.int64
    )
    weights = np.array([face_weight(work[f].quality, settings) for f in ids], dtype=np.float64)
    fixed = np.array(
        [
            code[r] if r is not None and pinned(work[f]) else -1
            for f, r in zip(ids, current_root, strict=True)
        ],
        dtype=np.int64,
    )
    codes = np.array(
        [code.get(r, -1) if r is not None else -1 for r in current_root], dtype=np.int64
    )
    knn_fn = knn or knn_exact
    tk = time.perf_counter()
    neighbours, sims = (
        knn_fn(embeddings, settings.neighbours_k)
        if n
        else (np.zeros((0, 1), np.int64), np.zeros((0, 1), np.float32))
    )
    report.seconds["knn"] = time.perf_counter() - tk
    tc = time.perf_counter()
    result = cluster(
        BatchFaces(
            embeddings,
            images,
            weights,
            fixed=fixed,
            codes=codes,
            exclusive=exclusive,
            distinct=distinct,
        ),
        neighbours,
        sims,
        settings,
    )
    report.seconds["cluster"] = time.perf_counter() - tc

    # --- 3. stable ids ----------------------------------------------------------------------
    tm = time.perf_counter()
    labels = result.labels.tolist()
    forced: dict[int, str] = {}
    for position in np.flatnonzero(fixed >= 0).tolist():
        root = current_root[position]
        assert root is not None
        forced.setdefault(labels[position], root)
    overlaps: dict[tuple[int, str], int] = {}
    taken = set(forced.values())
    for label, root in zip(labels, current_root, strict=True):
        if label < 0 or root is None or label in forced or root in taken:
            continue
        overlaps[(label, root)] = overlaps.get((label, root), 0) + 1
    mapping = {**match_by_overlap(overlaps), **forced}
    for label in sorted({lab for lab in labels if lab >= 0} - set(mapping)):
        mapping[label] = new_id()
    created = {pid for pid in mapping.values() if pid not in persons}
    report.new_ids = len(created)
    report.kept_ids = len(set(mapping.values()) - created)
    report.seconds["match"] = time.perf_counter() - tm

    # target records
    targets: dict[str, ClusterFace] = {}
    for position, face_id in enumerate(ids):
        face = work[face_id]
        label = labels[position]
        target = mapping.get(label) if label >= 0 else None
        if pinned(face) and current_root[position] is not None:
            target = current_root[position]
        elif target is not None:
            rejected_roots = {root_of(p) for p in face.rejected} | set(face.rejected)
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
        old = stored.get(face_id)
        if old is None or after != old or old.embedding is not after.embedding:
            targets[face_id] = after

    # --- 4. apply ---------------------------------------------------------------------------
    ta = time.perf_counter()
    now = clock()
    fresh_ids = sorted(created)
    for start in range(0, len(fresh_ids), FACE_CHUNK):
        batch_ids = fresh_ids[start : start + FACE_CHUNK]
        store.apply(
            ChangeSet(
                expect={person_key(pid): 0 for pid in batch_ids},
                put_persons=tuple(
                    Person(pid, created_by=Source.MACHINE, created_at=now, updated_at=now)
                    for pid in batch_ids
                ),
                reason="recluster: new persons",
            )
        )
    for start in range(0, len(removed), FACE_CHUNK):
        gone = removed[start : start + FACE_CHUNK]
        expect = {face_key(f): stored[f].version for f in gone}
        tombs = store.get_tombstones(gone)
        expect.update({tombstone_key(f): tombs[f].version if f in tombs else 0 for f in gone})
        try:
            store.apply(
                ChangeSet(
                    expect=expect,
                    delete_faces=tuple(gone),
                    put_tombstones=tuple(
                        Tombstone(f, tombs[f].removed_version if f in tombs else 0, now)
                        for f in gone
                    ),
                    reason="recluster: faces gone from the metadata store",
                )
            )
        except StaleRead:
            report.skipped_changed += len(gone)
    order = sorted(targets)
    for start in range(0, len(order), FACE_CHUNK):
        chunk = [targets[f] for f in order[start : start + FACE_CHUNK]]
        while chunk:
            expect = {
                face_key(f.face_id): stored[f.face_id].version if f.face_id in stored else 0
                for f in chunk
            }
            try:
                store.apply(
                    ChangeSet(expect=expect, put_faces=tuple(chunk), reason="recluster: faces")
                )
                report.faces_rewritten += len(chunk)
                break
            except StaleRead:
                now_faces = store.get_faces(f.face_id for f in chunk)
                keep = []
                for f in chunk:
                    current = now_faces.get(f.face_id)
                    expected = stored[f.face_id].version if f.face_id in stored else 0
                    if (current.version if current else 0) == expected:
                        keep.append(f)
                    else:
                        report.skipped_changed += 1
                chunk = keep

    # statistics, from the stored faces
    final_persons = _all_persons(store)
    retire = {r for r in roots if r in final_persons and r not in set(mapping.values())}
    for person_id in sorted(final_persons):
        _refresh_person(
            store,
            person_id,
            settings,
            retire_if_empty=person_id in retire or _alias_of(final_persons, person_id, retire),
        )
    report.retired_ids = sum(1 for r in retire if r not in _all_persons(store))
    report.persons_after = sum(1 for p in _all_persons(store).values() if p.is_root)
    report.seconds["apply"] = time.perf_counter() - ta
    report.seconds["total"] = time.perf_counter() - t0
    logger.info(
        "re-cluster done",
        extra=log_fields(**{k: v for k, v in report.__dict__.items() if k != "seconds"}),
    )
    return report


def _alias_of(persons: dict[str, Person], person_id: str, retire: set[str]) -> bool:
    record = persons.get(person_id)
    return record is not None and record.merged_into in retire


def _refresh_person(
    store: PeopleStore, person_id: str, settings: PeopleSettings, *, retire_if_empty: bool
) -> None:
    for _ in range(settings.apply_attempts):
        person = store.get_persons([person_id]).get(person_id)
        if person is None:
            return
        faces: list[ClusterFace] = []
        cursor: str | None = None
        while True:
            page = store.faces_of_person(person_id, cursor=cursor, limit=5000)
            faces.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        expect = {person_key(person_id): person.version}
        if not faces and retire_if_empty and person.name is None:
            changes = ChangeSet(
                expect=expect, delete_persons=(person_id,), reason="recluster: retire"
            )
        else:
            updated = recompute(person, faces, settings)
            marks = frozenset().union(*(f.rejected for f in faces)) - {person_id}
            if marks - updated.distinct_from:
                updated = replace(updated, distinct_from=updated.distinct_from | marks)
            if _same_stats(updated, person):
                return
            changes = ChangeSet(
                expect=expect, put_persons=(updated,), reason="recluster: statistics"
            )
        try:
            store.apply(changes)
            return
        except StaleRead:
            continue


def _same_stats(a: Person, b: Person) -> bool:
    return (
        a.faces == b.faces
        and a.user_faces == b.user_faces
        and abs(a.weight - b.weight) < 1e-9
        and a.exemplars == b.exemplars
        and a.first_seen == b.first_seen
        and a.last_seen == b.last_seen
        and len(a.vector_sum) == len(b.vector_sum)
        and (not len(a.vector_sum) or bool(np.allclose(a.vector_sum, b.vector_sum, atol=1e-9)))
    )
