"""Merging persons: the one way to plan a merge, and the machine's own merges.

A merge keeps every record: the sources (and their aliases) point at the target
with ``merged_into``, the target lists them as ``aliases``. So a merge is a handful
of writes whatever the persons' sizes, and undo restores exactly the previous
structure (:mod:`.undo`). Users merge through :class:`~.corrections.Corrections`;
the engine merges two persons when a face gives density evidence that they are one
(:func:`machine_merge`), unless the rule refuses — too wide together, marked
distinct, named differently, or sharing a photo (the cannot-link check, which reads
the smaller person's photos, so it runs only when every cheaper test has passed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from facesearch.logs import log_fields
from facesearch.people import rule
from facesearch.people.plan import Plan, stamp
from facesearch.people.ports import PeopleStore, faces_of
from facesearch.people.reads import Reads
from facesearch.people.representative import PersonView
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import (
    Correction,
    CorrectionKind,
    Outcome,
    Source,
    new_correction_id,
)

logger = logging.getLogger(__name__)


def merge_into(
    plan: Plan,
    target: PersonView,
    sources: Iterable[PersonView],
    *,
    now: float,
    actor: Source,
    note: str = "",
) -> Correction:
    """Plan merging ``sources`` (roots) into ``target`` (a root) and log it.

    The sources keep their records and faces; they (and their aliases) point at the
    target, so the merge is a handful of writes whatever the sizes, and undo restores
    exactly the previous structure.
    """
    target_root = plan.person(target.person_id)
    assert target_root is not None
    aliases = list(target_root.aliases)
    merged: list[str] = []
    merged_aliases: list[tuple[str, tuple[str, ...]]] = []
    for view in sources:
        source = plan.person(view.person_id)
        if source is None or source.person_id == target_root.person_id:
            continue
        merged.append(source.person_id)
        merged_aliases.append((source.person_id, source.aliases))
        for alias_id in source.aliases:
            alias = plan.person(alias_id)
            if alias is not None:
                plan.put_person(stamp(replace(alias, merged_into=target_root.person_id), now))
            aliases.append(alias_id)
        plan.put_person(stamp(replace(source, merged_into=target_root.person_id, aliases=()), now))
        aliases.append(source.person_id)
    entry = Correction(
        correction_id=new_correction_id(now),
        kind=CorrectionKind.MERGE,
        actor=actor,
        at=now,
        person_id=target_root.person_id,
        merged=tuple(merged),
        merged_aliases=tuple(merged_aliases),
        note=note,
    )
    plan.put_person(stamp(replace(target_root, aliases=tuple(dict.fromkeys(aliases))), now))
    plan.put_correction(entry)
    return entry


def machine_merge(
    store: PeopleStore,
    settings: PeopleSettings,
    a: str,
    b: str,
    *,
    clock: Callable[[], float],
) -> Outcome:
    """Merge the persons of ``a`` and ``b`` if the rule allows it: the fuller (named,
    then larger, then older) one is the target. One apply; a racing change raises
    :class:`~facesearch.errors.StaleRead` for the caller to retry."""
    reads = Reads(store)
    roots, views = reads.views([a, b])
    if a not in roots or b not in roots:
        return Outcome("", "merge-refused", a, detail="a person no longer exists")
    va, vb = views[roots[a]], views[roots[b]]
    refusal = rule.merge_refusal(va, vb, settings)
    if refusal is None:
        refusal = rule.merge_refusal(va, vb, settings, shared_image=share_an_image(store, va, vb))
    if refusal is not None:
        return Outcome("", "merge-refused", va.person_id, detail=f"{vb.person_id}: {refusal}")
    target, source = sorted(
        (va, vb),
        key=lambda v: (v.name is None, -v.faces, v.root.created_at, v.person_id),
    )
    now = clock()
    plan = Plan(reads, settings, f"merge {source.person_id} into {target.person_id}")
    entry = merge_into(plan, target, [source], now=now, actor=Source.MACHINE)
    store.apply(plan.change_set())
    logger.info(
        "persons merged",
        extra=log_fields(
            target=target.person_id, source=source.person_id, correction=entry.correction_id
        ),
    )
    return Outcome("", "merged", target.person_id, detail=f"{source.person_id} merged in")


def share_an_image(store: PeopleStore, a: PersonView, b: PersonView) -> bool:
    """Cannot-link check: does any photo show a face of ``a`` and a face of ``b``?"""
    smaller, larger = (a, b) if a.faces <= b.faces else (b, a)
    images = {f.image_id for member in smaller.ids for f in faces_of(store, member)}
    if not images:
        return False
    for face in store.faces_of_images(sorted(images)):
        if face.person_id is not None and face.person_id in larger.ids:
            return True
    return False
