"""Undo of a correction-log entry, planned from what the entry recorded.

An undo reverts one recent entry face by face: a face is restored only if it is
still as the entry left it or the machine changed it since (user intent outranks
machine guesses); a face a *later user correction* changed is left alone and
reported. A merge is undone by detaching the persons it merged in (with the
aliases they brought), which are then marked distinct from the target so the
machine does not merge them again; a rename, by restoring the old name unless the
person was renamed since. :class:`~.corrections.Corrections` checks that the entry
may be undone (not an undo, not undone already, inside ``undo_max_age_s``) and
logs the undo in the same apply.
"""

from __future__ import annotations

from dataclasses import replace

from facesearch.errors import UndoRefused
from facesearch.people.plan import Plan, stamp
from facesearch.people.reads import Reads
from facesearch.people.types import ClusterFace, Correction, CorrectionKind, Person, Source


def plan_undo(reads: Reads, plan: Plan, entry: Correction, now: float) -> list[str]:
    """Plan reverting ``entry``; returns the faces left alone (changed by a later user
    correction). :class:`UndoRefused` when nothing of it can be reverted."""
    if entry.kind is CorrectionKind.NAME:
        _undo_name(reads, plan, entry)
        return []
    if entry.kind is CorrectionKind.MERGE:
        _undo_merge(reads, plan, entry, now)
        return []
    return _undo_faces(reads, plan, entry, now)


def _undo_name(reads: Reads, plan: Plan, entry: Correction) -> None:
    assert entry.person_id is not None
    view = reads.root(entry.person_id)
    if view.root.name != entry.new_name:
        raise UndoRefused("the person was renamed since; rename it instead")
    plan.put_person(replace(view.root, name=entry.old_name))


def _undo_merge(reads: Reads, plan: Plan, entry: Correction, now: float) -> None:
    assert entry.person_id is not None
    target = reads.root(entry.person_id)
    detached: set[str] = set()
    for source_id, former_aliases in entry.merged_aliases or tuple((m, ()) for m in entry.merged):
        source = plan.person(source_id)
        if source is None or source.merged_into != target.person_id:
            continue  # deleted, or detached by a later correction
        back = [
            a
            for a in former_aliases
            if (alias := plan.person(a)) is not None and alias.merged_into == target.person_id
        ]
        for alias_id in back:
            alias = plan.person(alias_id)
            assert alias is not None
            plan.put_person(stamp(replace(alias, merged_into=source_id), now))
        plan.put_person(
            stamp(
                replace(
                    source,
                    merged_into=None,
                    aliases=tuple(back),
                    distinct_from=source.distinct_from | {target.person_id},
                ),
                now,
            )
        )
        detached.update([source_id, *back])
    if not detached:
        raise UndoRefused("nothing of that merge is left to undo")
    root = plan.person(target.person_id)
    assert root is not None
    merged_sources = {s for s, _ in entry.merged_aliases} or set(entry.merged)
    name = root.name
    if entry.new_name is not None and entry.old_name is None and root.name == entry.new_name:
        name = None  # the target had taken a source's name
    plan.put_person(
        stamp(
            replace(
                root,
                name=name,
                aliases=tuple(a for a in root.aliases if a not in detached),
                distinct_from=root.distinct_from | (merged_sources & detached),
            ),
            now,
        )
    )


def _undo_faces(reads: Reads, plan: Plan, entry: Correction, now: float) -> list[str]:
    faces = reads.faces(c.face_id for c in entry.faces)
    skipped: list[str] = []
    for change in entry.faces:
        current = faces.get(change.face_id)
        if current is None:
            continue  # the face is gone
        as_left = (current.person_id, current.source) == (
            change.after_person,
            change.after_source,
        )
        if not as_left and current.source is Source.USER:
            skipped.append(change.face_id)
            continue
        before_person = change.before_person
        if before_person is not None and plan.person(before_person) is None:
            # the person it came from was deleted when it emptied: bring it back
            plan.put_person(
                Person(
                    before_person,
                    created_by=change.before_source,
                    created_at=now,
                    updated_at=now,
                )
            )
        rejected = current.rejected
        if change.added_rejection is not None:
            rejected = rejected - {change.added_rejection}
        # undoing a machine action is the user vouching for what was there before
        source = Source.USER if entry.actor is Source.MACHINE else change.before_source
        if before_person is None:
            source = Source.MACHINE
        restored: ClusterFace = replace(
            current, person_id=before_person, source=source, rejected=rejected
        )
        plan.put_face(current, restored)
    for low, high in entry.distinct_added:
        for a, b in ((low, high), (high, low)):
            person = plan.person(a)
            if person is not None and b in person.distinct_from:
                plan.put_person(replace(person, distinct_from=person.distinct_from - {b}))
    emptied = {c.after_person for c in entry.faces if c.after_person is not None}
    if entry.created_person is not None:
        emptied.add(entry.created_person)
    for person_id in sorted(emptied):
        person = plan.person(person_id)
        if person is None or person.faces or person.aliases or not person.is_root:
            continue
        if person_id == entry.created_person or (
            person.created_by is Source.MACHINE and person.name is None
        ):
            plan.delete_person(person_id)
    return skipped
