"""Property tests: any arrival order, any corrections, the constraints hold.

Hypothesis draws an arrival order for a small world (look-alike identities, photos
with several people, one mirror photo with the same person twice) and interleaves
user corrections, undos and removals. After every step:

* cannot-link — no two machine-placed faces of one photo in one person;
* a user-assigned face keeps its person and source through every machine step;
* a face never sits (by the machine) in a person it was rejected from;
* person statistics equal the sums over their faces; aliases never chain.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facesearch.errors import FaceSearchError, NotFound
from facesearch.people.corrections import Corrections
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import FaceInput, Source, unit
from tests.unit.people.support import DIMS, Harness, blend, check_invariants


def world() -> list[FaceInput]:
    rng = np.random.default_rng(42)
    a = unit(rng.normal(size=DIMS))
    b = blend(a, unit(rng.normal(size=DIMS)), 0.22)  # a look-alike of a
    c = unit(rng.normal(size=DIMS))
    centres = [a, b, c]
    faces = []
    n = 0
    for ident, centre in enumerate(centres):
        for _ in range(4):
            faces.append(
                FaceInput(
                    f"i{n}:0",
                    f"i{n}",
                    unit(centre + rng.normal(size=DIMS) * 0.03),
                    0.5 + 0.1 * ident,
                )
            )
            n += 1
    # group photos: a with b, b with c; and a mirror photo of c
    faces.append(FaceInput("g1:0", "g1", unit(a + rng.normal(size=DIMS) * 0.03), 0.9))
    faces.append(FaceInput("g1:1", "g1", unit(b + rng.normal(size=DIMS) * 0.03), 0.9))
    faces.append(FaceInput("g2:0", "g2", unit(b + rng.normal(size=DIMS) * 0.03), 0.9))
    faces.append(FaceInput("g2:1", "g2", unit(c + rng.normal(size=DIMS) * 0.03), 0.9))
    faces.append(FaceInput("m:0", "m", unit(c + rng.normal(size=DIMS) * 0.01), 0.9))
    faces.append(FaceInput("m:1", "m", unit(c + rng.normal(size=DIMS) * 0.01), 0.9))
    return faces


FACES = world()
SETTINGS = PeopleSettings(
    link_similarity=0.95, join_similarity=0.95, merge_similarity=0.96, width_min_similarity=0.95
)


@dataclass(frozen=True)
class Op:
    kind: str
    face: int = 0
    other: int = 0
    many: tuple[int, ...] = ()


ops = st.one_of(
    st.builds(
        Op,
        st.just("move_new"),
        many=st.lists(st.integers(0, len(FACES) - 1), min_size=1, max_size=3).map(tuple),
    ),
    st.builds(
        Op,
        st.just("move_to"),
        face=st.integers(0, len(FACES) - 1),
        other=st.integers(0, len(FACES) - 1),
    ),
    st.builds(Op, st.just("reject"), face=st.integers(0, len(FACES) - 1)),
    st.builds(
        Op,
        st.just("merge"),
        face=st.integers(0, len(FACES) - 1),
        other=st.integers(0, len(FACES) - 1),
    ),
    st.builds(Op, st.just("undo"), face=st.integers(0, 5)),
    st.builds(Op, st.just("remove"), face=st.integers(0, len(FACES) - 1)),
)


def user_state(h: Harness) -> dict[str, str | None]:
    return {f: x.person_id for f, x in h.faces().items() if x.source is Source.USER}


def check(h: Harness) -> None:
    check_invariants(h)
    persons = {p.person_id: p for p in h.store.list_persons(roots_only=False, limit=1000).items}

    def root(pid: str) -> str | None:
        p = persons.get(pid)
        return None if p is None else (p.merged_into or p.person_id)

    for face in h.faces().values():
        if face.person_id is None or face.source is Source.USER:
            continue
        mine = root(face.person_id)
        assert mine not in {root(r) for r in face.rejected}, (
            f"{face.face_id} back in a rejected person"
        )


@settings(
    max_examples=int(os.environ.get("PEOPLE_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    order=st.permutations(range(len(FACES))),
    program=st.lists(st.tuples(st.integers(0, len(FACES)), ops), max_size=8),
)
def test_constraints_hold_for_any_order_and_corrections(
    order: list[int], program: list[tuple[int, Op]]
) -> None:
    try:
        _run(order, program)
    except AssertionError:
        # hypothesis' own report of this example can come out blank; say it plainly
        print("FAILING EXAMPLE", list(order), program)
        raise


def _run(order: list[int], program: list[tuple[int, Op]]) -> None:
    h = Harness(SETTINGS)
    user_ids = itertools.count()
    corrections = Corrections(
        h.store, SETTINGS, engine=h.engine, new_id=lambda: f"u{next(user_ids):05d}"
    )
    at: dict[int, list[Op]] = {}
    for position, op in program:
        at.setdefault(position, []).append(op)
    removed: set[str] = set()

    def machine(step: object) -> None:
        before = user_state(h)
        step()  # type: ignore[operator]
        after = user_state(h)
        for face_id, person in before.items():
            if face_id in removed:
                continue
            assert after.get(face_id) == person, f"the machine moved user face {face_id}"
        check(h)

    for position, index in enumerate([*order, None]):
        for op in at.get(position, []):
            present = h.faces()
            target = FACES[op.face].face_id
            try:
                if op.kind == "move_new":
                    corrections.move([FACES[i].face_id for i in op.many])
                elif op.kind == "move_to":
                    other = present.get(FACES[op.other].face_id)
                    if other is not None and other.person_id is not None:
                        corrections.move([target], to_person=other.person_id)
                elif op.kind == "reject":
                    if present.get(target) and present[target].person_id:
                        corrections.reject(target)
                elif op.kind == "merge":
                    a, b = present.get(target), present.get(FACES[op.other].face_id)
                    if a and b and a.person_id and b.person_id:
                        corrections.merge(a.person_id, [b.person_id])
                elif op.kind == "undo":
                    log = [
                        e
                        for e in h.store.list_corrections(limit=50)
                        if e.kind != "undo" and e.undone_by is None
                    ]
                    if len(log) > op.face:
                        corrections.undo(log[op.face].correction_id)
                elif op.kind == "remove" and target in present:
                    removed.add(target)
                    machine(lambda t=target: h.remove([t]))
            except (NotFound, FaceSearchError):
                pass  # refused corrections are fine; what matters is that nothing breaks
            check(h)
        if index is not None:
            face = FACES[index]
            if face.face_id not in removed:
                machine(lambda f=face: h.add([f]))
    # in the end, everything waiting gets one more look: still no violation
    for face_id in list(h.faces()):
        machine(lambda f=face_id: h.engine.examine(f))
