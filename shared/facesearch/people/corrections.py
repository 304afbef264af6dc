"""User corrections — name, merge, move (split / assign), reject — and undo.

Each correction is one atomic apply that changes the records *and* appends its log
entry, with the versions it read as preconditions (a racing clusterer or a second
user cannot slip a change in between; the loser re-reads and retries, so nothing is
lost). What the machine may never do afterwards follows from the records:

* faces a user moved are ``source=user``: no machine path moves them;
* a rejection is kept on the face (``rejected``): the machine never puts the face
  back into that person (or anything it is merged with);
* a move into another or a new person marks the persons it took faces from as
  ``distinct`` from the target: the machine never merges them back;
* undoing a merge marks the two persons distinct for the same reason.

Undo reverts one recent entry from what the entry recorded (:mod:`.undo` plans
it). Undo is itself logged; an entry is undone at most once; entries older than
``undo_max_age_s`` are final.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from facesearch.errors import CorrectionRefused, NotFound, StaleRead, UndoRefused
from facesearch.logs import log_fields
from facesearch.people.engine import PeopleEngine
from facesearch.people.merge import merge_into
from facesearch.people.plan import Plan, stamp
from facesearch.people.ports import ChangeSet, PeopleStore
from facesearch.people.reads import Reads
from facesearch.people.repair import repair_person
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import (
    Correction,
    CorrectionKind,
    FaceChange,
    Person,
    Source,
    new_correction_id,
    new_person_id,
)
from facesearch.people.undo import plan_undo

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 200
MAX_MERGE_SOURCES = 50


class Corrections:
    """A user's corrections of one collection's persons, each one logged apply; with an
    engine, the machine faces a correction freed or left breaking a constraint are
    placed again by the same rule the clusterer uses."""

    def __init__(
        self,
        store: PeopleStore,
        settings: PeopleSettings | None = None,
        *,
        engine: PeopleEngine | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = new_person_id,
    ) -> None:
        self.store = store
        self.settings = settings or PeopleSettings()
        self.engine = engine
        self.clock = clock
        self.new_id = new_id

    # --- plumbing ---------------------------------------------------------------------------

    def _run(self, what: str, step: Callable[[Reads], Plan]) -> Correction:
        for _attempt in range(self.settings.apply_attempts):
            reads = Reads(self.store)
            plan = step(reads)
            changes = plan.change_set()
            try:
                self.store.apply(changes)
            except StaleRead:
                continue
            entries = [c for c in changes.put_corrections if c.undone_by is None]
            entry = max(entries, key=lambda c: c.correction_id)
            logger.info(
                "correction applied",
                extra=log_fields(kind=str(entry.kind), correction=entry.correction_id),
            )
            self._repair(changes, entry)
            return entry
        from facesearch.errors import TransientError

        raise TransientError(f"{what}: the records kept changing; try again")

    def _repair(self, changes: ChangeSet, entry: Correction) -> None:
        """Take out machine faces the correction left breaking a constraint, and let the
        engine place them (and the faces the correction freed) again."""
        if entry.kind is CorrectionKind.NAME:
            return
        touched = {p.person_id for p in changes.put_persons}
        touched |= {f.person_id for f in changes.put_faces if f.person_id is not None}
        records = self.store.get_persons(touched)
        persons = {r.merged_into or r.person_id for r in records.values()}
        freed: list[str] = []
        for person_id in sorted(persons):
            freed += repair_person(self.store, self.settings, person_id, clock=self.clock)
        freed += [f.face_id for f in changes.put_faces if f.person_id is None]
        if self.engine is not None:
            for face_id in dict.fromkeys(freed):
                self.engine.examine(face_id)

    # --- name -------------------------------------------------------------------------------

    def name(self, person_id: str, name: str | None) -> Correction:
        """Name (or, with None, unname) a person; names the root of a merged person."""
        if name is not None:
            name = name.strip()
            if not name or len(name) > MAX_NAME_CHARS:
                raise CorrectionRefused(f"a name has 1 to {MAX_NAME_CHARS} characters")

        def step(reads: Reads) -> Plan:
            view = reads.root(person_id)
            now = self.clock()
            plan = Plan(reads, self.settings, f"name {view.person_id}")
            plan.put_person(stamp(replace(view.root, name=name), now))
            plan.put_correction(
                Correction(
                    new_correction_id(now),
                    CorrectionKind.NAME,
                    Source.USER,
                    now,
                    person_id=view.person_id,
                    old_name=view.root.name,
                    new_name=name,
                )
            )
            return plan

        return self._run("name", step)

    # --- merge ------------------------------------------------------------------------------

    def merge(self, target_id: str, source_ids: Sequence[str]) -> Correction:
        """Merge persons into ``target_id``. The target keeps its id; it takes a source's
        name only if it has none. Constraints between them are lifted (the user says so)."""
        if not source_ids:
            raise CorrectionRefused("name at least one person to merge")
        if len(source_ids) > MAX_MERGE_SOURCES:
            raise CorrectionRefused(f"at most {MAX_MERGE_SOURCES} persons per merge")

        def step(reads: Reads) -> Plan:
            target = reads.root(target_id)
            sources = {}
            for source_id in source_ids:
                view = reads.root(source_id)
                if view.person_id != target.person_id:
                    sources[view.person_id] = view
            if not sources:
                raise CorrectionRefused("those persons are already one")
            now = self.clock()
            plan = Plan(reads, self.settings, f"merge into {target.person_id}")
            # the user overrules "distinct" marks between the persons merged
            members = set(target.ids).union(*(v.ids for v in sources.values()))
            lifted: list[tuple[str, str]] = []
            for member_id in sorted(members):
                member = plan.person(member_id)
                if member is None:
                    continue
                keep = member.distinct_from - members
                if keep != member.distinct_from:
                    lifted.extend(
                        (member_id, other) for other in sorted(member.distinct_from & members)
                    )
                    plan.put_person(replace(member, distinct_from=keep))
            name = target.name
            if name is None:
                name = next((v.name for v in sources.values() if v.name is not None), None)
                if name is not None:
                    root = plan.person(target.person_id)
                    assert root is not None
                    plan.put_person(replace(root, name=name))
            entry = merge_into(plan, target, sources.values(), now=now, actor=Source.USER)
            entry = replace(
                entry,
                old_name=target.name,
                new_name=name,
                note=f"lifted distinct {lifted}" if lifted else "",
            )
            plan.put_correction(entry)
            return plan

        return self._run("merge", step)

    # --- move (split / assign) -----------------------------------------------------------------

    def move(
        self,
        face_ids: Sequence[str],
        *,
        to_person: str | None = None,
        name: str | None = None,
    ) -> Correction:
        """Move chosen faces to ``to_person`` (assign) or, without it, to a new person
        (split, optionally named). The faces become user-assigned; the persons they
        left are marked distinct from the target."""
        ids = list(dict.fromkeys(face_ids))
        if not ids:
            raise CorrectionRefused("name at least one face to move")
        if len(ids) > self.settings.max_faces_per_correction:
            raise CorrectionRefused(
                f"at most {self.settings.max_faces_per_correction} faces per correction"
            )
        if name is not None and (not name.strip() or len(name) > MAX_NAME_CHARS):
            raise CorrectionRefused(f"a name has 1 to {MAX_NAME_CHARS} characters")
        new_id = self.new_id()

        def step(reads: Reads) -> Plan:
            now = self.clock()
            faces = reads.faces(ids)
            missing = [f for f in ids if f not in faces]
            if missing:
                raise NotFound(f"faces {missing[:5]} do not exist")
            created: str | None = None
            if to_person is not None:
                target = reads.root(to_person)
                target_id = target.person_id
                target_ids = set(target.ids)
            else:
                target_id = created = new_id
                target_ids = {target_id}
            plan = Plan(reads, self.settings, f"move to {target_id}")
            if created is not None:
                plan.put_person(
                    Person(
                        created,
                        name=name.strip() if name else None,
                        created_by=Source.USER,
                        created_at=now,
                        updated_at=now,
                    )
                )
            roots, _ = reads.views({f.person_id for f in faces.values() if f.person_id})
            changes: list[FaceChange] = []
            left: set[str] = set()
            for face_id in ids:
                before = faces[face_id]
                after = replace(before, person_id=target_id, source=Source.USER)
                if before.person_id is not None:
                    root = roots.get(before.person_id)
                    if root is not None and root not in target_ids:
                        left.add(root)
                if (before.person_id, before.source) == (after.person_id, after.source):
                    continue
                plan.put_face(before, after)
                changes.append(FaceChange.between(before, after))
            if not changes and created is None:
                raise CorrectionRefused("those faces are already there")
            distinct: list[tuple[str, str]] = []
            target_record = plan.person(target_id)
            assert target_record is not None
            for root in sorted(left):
                source = plan.person(root)
                if source is None:
                    continue
                if target_id not in source.distinct_from:
                    plan.put_person(
                        replace(source, distinct_from=source.distinct_from | {target_id})
                    )
                    distinct.append((root, target_id))
                target_record = plan.person(target_id)
                assert target_record is not None
                if root not in target_record.distinct_from:
                    plan.put_person(
                        replace(target_record, distinct_from=target_record.distinct_from | {root})
                    )
            target_record = plan.person(target_id)
            assert target_record is not None
            plan.put_person(stamp(target_record, now))
            plan.put_correction(
                Correction(
                    new_correction_id(now),
                    CorrectionKind.MOVE,
                    Source.USER,
                    now,
                    person_id=target_id,
                    faces=tuple(changes),
                    created_person=created,
                    new_name=name.strip() if (created and name) else None,
                    distinct_added=tuple(distinct),
                )
            )
            return plan

        return self._run("move", step)

    # --- reject ---------------------------------------------------------------------------------

    def reject(self, face_id: str, person_id: str | None = None) -> Correction:
        """ "This face is not that person" (default: the person it is in). The face leaves
        the person if it is in it, and the machine will never put it back."""

        def step(reads: Reads) -> Plan:
            now = self.clock()
            face = reads.face(face_id)
            if face is None:
                raise NotFound(f"face {face_id} does not exist")
            wanted = person_id if person_id is not None else face.person_id
            if wanted is None:
                raise CorrectionRefused(f"face {face_id} is in no person; name the person")
            view = reads.root(wanted)
            own_root = None
            if face.person_id is not None:
                roots, _ = reads.views([face.person_id])
                own_root = roots.get(face.person_id)
            plan = Plan(reads, self.settings, f"reject {face_id} from {view.person_id}")
            after = replace(face, rejected=face.rejected | {view.person_id})
            if own_root == view.person_id:
                after = replace(after, person_id=None, source=Source.MACHINE)
            elif own_root is not None:
                own = plan.person(own_root)
                if own is not None and view.person_id not in own.distinct_from:
                    plan.put_person(
                        replace(own, distinct_from=own.distinct_from | {view.person_id})
                    )
            plan.put_face(face, after)
            plan.put_correction(
                Correction(
                    new_correction_id(now),
                    CorrectionKind.REJECT,
                    Source.USER,
                    now,
                    person_id=view.person_id,
                    faces=(FaceChange.between(face, after, view.person_id),),
                )
            )
            return plan

        return self._run("reject", step)

    # --- undo -----------------------------------------------------------------------------------

    def undo(self, correction_id: str) -> Correction:
        """Revert a recent entry (:mod:`.undo`) and log that, marking the entry undone."""

        def step(reads: Reads) -> Plan:
            now = self.clock()
            entry = reads.correction(correction_id)
            if entry is None:
                raise NotFound(f"correction {correction_id} not found")
            if entry.kind is CorrectionKind.UNDO:
                raise UndoRefused("an undo cannot be undone; apply the correction again")
            if entry.undone_by is not None:
                raise UndoRefused(f"{correction_id} was already undone by {entry.undone_by}")
            if now - entry.at > self.settings.undo_max_age_s:
                raise UndoRefused(f"{correction_id} is older than the undo window")
            plan = Plan(reads, self.settings, f"undo {correction_id}")
            skipped = plan_undo(reads, plan, entry, now)
            undo = Correction(
                new_correction_id(now),
                CorrectionKind.UNDO,
                Source.USER,
                now,
                person_id=entry.person_id,
                undoes=entry.correction_id,
                note=f"left alone (changed by a later correction): {skipped}" if skipped else "",
            )
            plan.put_correction(replace(entry, undone_by=undo.correction_id))
            plan.put_correction(undo)
            return plan

        return self._run("undo", step)
