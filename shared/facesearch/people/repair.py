"""Restore the machine's constraints inside one person after a *user* correction.

A user may merge two persons or move a face into a person; that can leave, inside
the result, a machine-placed face that the constraints no longer allow:

* a face the user had rejected from one of the persons now merged (it was rejected
  from P and sits in Q; the user just said P is Q);
* two faces of one photo (the user's face wins over the machine's; between two
  machine faces, the one closer to the person's centroid stays).

Those machine faces are taken out (unassigned, ``source=machine``) so the engine
can place them again; user-assigned faces are never touched. Cost: one read of
the person's faces; each chunk of changes is one atomic apply with the person
records' versions as preconditions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from facesearch.errors import StaleRead
from facesearch.people.plan import Plan, stamp
from facesearch.people.ports import PeopleStore, faces_of
from facesearch.people.reads import Reads
from facesearch.people.representative import face_weight, similarity_to
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace, Source

CHUNK = 200


def violations(store: PeopleStore, settings: PeopleSettings, person_id: str) -> list[str]:
    """Machine faces of the person (root + aliases) that break a constraint."""
    reads = Reads(store)
    roots, views = reads.views([person_id])
    root = roots.get(person_id)
    if root is None:
        return []
    view = views[root]
    faces = [f for member in view.ids for f in faces_of(store, member)]
    out: set[str] = set()
    for face in faces:
        if face.source is Source.MACHINE and face.rejected:
            rejected_roots, _ = reads.views(face.rejected)
            if set(rejected_roots.values()) & {root} or face.rejected & view.ids:
                out.add(face.face_id)
    by_image: dict[str, list[ClusterFace]] = {}
    for face in faces:
        by_image.setdefault(face.image_id, []).append(face)
    total = view.vector_sum
    for group in by_image.values():
        if len(group) < 2:
            continue
        machine = [f for f in group if f.source is Source.MACHINE]
        if len(machine) == len(group):

            def fit(f: ClusterFace) -> tuple[float, str]:
                rest = total - face_weight(f.quality, settings) * f.embedding.astype(float)
                return (similarity_to(rest, f.embedding), f.face_id)

            machine.sort(key=fit, reverse=True)
            out.update(f.face_id for f in machine[1:])
        else:
            out.update(f.face_id for f in machine)
    return sorted(out)


def repair_person(
    store: PeopleStore,
    settings: PeopleSettings,
    person_id: str,
    *,
    clock: Callable[[], float],
) -> list[str]:
    """Unassign the machine faces that break a constraint; returns their ids."""
    done: list[str] = []
    pending = violations(store, settings, person_id)
    for start in range(0, len(pending), CHUNK):
        chunk = pending[start : start + CHUNK]
        for _attempt in range(settings.apply_attempts):
            reads = Reads(store)
            reads.faces(chunk)  # one batch read, not one per face
            plan = Plan(reads, settings, f"repair {person_id}")
            moved = []
            for face_id in chunk:
                face = plan.face(face_id)
                if face is None or face.source is not Source.MACHINE or face.person_id is None:
                    continue
                plan.put_face(face, replace(face, person_id=None))
                moved.append(face_id)
            if not moved:
                break
            for pid, person in plan.planned_persons().items():
                if person is not None and pid:
                    plan.put_person(stamp(person, clock()))
            try:
                store.apply(plan.change_set())
                done.extend(moved)
                break
            except StaleRead:
                continue
    return done
