"""The event-driven clusterer: ``face_added`` / ``face_removed`` -> persons.

Each face event touches only the face's neighbourhood in the index:

1. read the face, its k nearest neighbours (present or not yet clustered), their
   persons (roots and aliases) and the other faces of its image;
2. decide with :func:`facesearch.people.rule.decide`;
3. apply the decision as **one** conditional change set whose preconditions are
   the versions of everything read in step 1 (:class:`~.reads.Reads`). If another
   instance changed any of it meanwhile, the store refuses, and the engine goes
   back to step 1 (``apply_attempts`` times, then a retryable error so Pub/Sub
   redelivers). Two instances racing on two faces of one new identity therefore
   never found two persons: the second apply finds the first face changed,
   re-reads, and joins.

Idempotent and order-independent delivery: a face already stored is not added
twice; a removal leaves a tombstone carrying the index manifest version, and an
add whose version is not newer than the tombstone (a late or repeated
``face_added``) is ignored, so "removed before added" ends with the face absent,
as in order. Without versions, a tombstone always wins.

Deferred faces are re-examined when their neighbourhood changes: after a decision,
the linked neighbours that are waiting, that just became core, or that a better
fitting face displaced are examined in turn (each its own decision), up to
``max_reexamine_per_event``. There is no nightly sweep.

Link counts are maintained exactly where they matter: a face counts its linked
neighbours already stored when it is added, and increments each non-core one (a
pair is counted once, by whichever of the two is stored second; the precondition on
the absent neighbour makes that hold under races too). Removals recount the
neighbours that counted the removed face.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

import numpy as np

from facesearch.errors import StaleRead, TransientError
from facesearch.logs import log_fields
from facesearch.people import rule
from facesearch.people.plan import Plan, backoff, stamp
from facesearch.people.ports import FaceSource, NeighbourSearch, PeopleStore, faces_of
from facesearch.people.reads import Reads
from facesearch.people.representative import PersonView, face_weight, similarity_to
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import (
    ClusterFace,
    Correction,
    CorrectionKind,
    FaceChange,
    Person,
    Source,
    Tombstone,
)
from facesearch.storage.messages import FaceEvent

logger = logging.getLogger(__name__)
T = TypeVar("T")


def new_person_id() -> str:
    return uuid.uuid4().hex


def new_correction_id(now: float) -> str:
    """Time-ordered, unique: ``<ns since epoch, 20 digits>-<random>``."""
    return f"{int(now * 1e9):020d}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Outcome:
    """What one event (or one re-examination) did to one face or person."""

    face_id: str
    action: str  # joined, founded, deferred, kept, removed, merged, split, ignored-*
    person_id: str | None = None
    attempts: int = 1
    detail: str = ""


@dataclass(frozen=True)
class _Context:
    face: ClusterFace
    links: list[rule.Link]
    neighbours: dict[str, ClusterFace]  # stored neighbours among the k-NN hits
    candidates: dict[str, rule.Candidate]
    roots: dict[str, str]
    views: dict[str, PersonView]


class PeopleEngine:
    """Applies face events to a :class:`~.ports.PeopleStore`. Thread-safe; any number
    of engines (instances) may work on one store at once."""

    def __init__(
        self,
        store: PeopleStore,
        search: NeighbourSearch,
        faces: FaceSource,
        settings: PeopleSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = new_person_id,
    ) -> None:
        self.store = store
        self.search = search
        self.faces = faces
        self.settings = settings or PeopleSettings()
        self.clock = clock
        self.new_id = new_id

    # --- events ----------------------------------------------------------------------------

    def handle_event(self, event: FaceEvent) -> list[Outcome]:
        if event.event == "face_added":
            return self.face_added(event.face_ids, manifest_version=event.manifest_version)
        if event.event == "face_removed":
            return self.face_removed(event.face_ids, manifest_version=event.manifest_version)
        return [Outcome(f, "ignored-unknown-event", detail=event.event) for f in event.face_ids]

    def face_added(
        self, face_ids: Sequence[str], *, manifest_version: int | None = None
    ) -> list[Outcome]:
        self.search.at_least(manifest_version)
        outcomes: list[Outcome] = []
        for face_id in face_ids:
            outcome, followups = self._retry(
                partial(self._add, face_id=face_id, version=manifest_version)
            )
            outcomes.append(outcome)
            outcomes.extend(self._follow(followups))
        return outcomes

    def face_removed(
        self, face_ids: Sequence[str], *, manifest_version: int | None = None
    ) -> list[Outcome]:
        self.search.at_least(manifest_version)
        outcomes: list[Outcome] = []
        for face_id in face_ids:
            outcome, person = self._retry(
                partial(self._remove, face_id=face_id, version=manifest_version)
            )
            outcomes.append(outcome)
            if person is not None:
                split = self.enforce_width(person)
                if split is not None:
                    outcomes.append(split)
        return outcomes

    def examine(self, face_id: str) -> list[Outcome]:
        """Re-run the rule for a stored face (and what that changes in turn)."""
        outcome, followups = self._retry(partial(self._examine, face_id=face_id))
        return [outcome, *self._follow(followups)]

    # --- retry loop ----------------------------------------------------------------------

    def _retry(self, step: Callable[[int], tuple[Outcome, T]]) -> tuple[Outcome, T]:
        attempts = self.settings.apply_attempts
        for attempt in range(1, attempts + 1):
            try:
                outcome, extra = step(attempt)
                if attempt > 1:
                    outcome = replace(outcome, attempts=attempt)
                return outcome, extra
            except StaleRead:
                if attempt == attempts:
                    break
                backoff(attempt)
        raise TransientError(
            f"people: gave up after {attempts} attempts (racing writers kept changing the"
            " neighbourhood); the event will be redelivered"
        )

    # --- the neighbourhood ------------------------------------------------------------------

    def _context(self, reads: Reads, face: ClusterFace) -> _Context:
        k = self.settings.neighbours_k
        hits = [
            h for h in self.search.search(face.embedding, k + 1)[0] if h.face_id != face.face_id
        ]
        hits = hits[:k]
        stored = reads.faces(h.face_id for h in hits)  # absent ones are expected absent
        siblings = [s for s in reads.image_faces([face.image_id]) if s.face_id != face.face_id]
        person_ids = {n.person_id for n in stored.values() if n.person_id is not None}
        person_ids |= {s.person_id for s in siblings if s.person_id is not None}
        if face.person_id is not None:
            person_ids.add(face.person_id)
        person_ids |= face.rejected
        roots, views = reads.views(person_ids)
        pairs = [(stored[h.face_id], h.similarity) for h in hits if h.face_id in stored]
        links = rule.links_of(face, pairs, roots, self.settings)
        rejected_roots = {roots[p] for p in face.rejected if p in roots}
        candidates: dict[str, rule.Candidate] = {}
        for root in {link.person_id for link in links if link.person_id is not None}:
            view = views[root]
            sibs = tuple(
                rule.Sibling(s.face_id, self._fit_without(view, s), s.source)
                for s in siblings
                if s.person_id is not None and roots.get(s.person_id) == root
            )
            candidates[root] = rule.Candidate(
                view,
                rejected=root in rejected_roots or bool(view.ids & face.rejected),
                siblings=sibs,
            )
        return _Context(face, links, stored, candidates, roots, views)

    def _fit_without(self, view: PersonView, face: ClusterFace) -> float:
        """A member's similarity to its person's centroid computed without itself."""
        w = face_weight(face.quality, self.settings)
        total = view.vector_sum
        if not len(total):
            return -1.0
        rest = total - w * face.embedding.astype(np.float64)
        if view.faces <= 1 or float(np.linalg.norm(rest)) < 1e-9:
            return -1.0
        return similarity_to(rest, face.embedding)

    # --- add ------------------------------------------------------------------------------

    def _add(
        self, attempt: int, *, face_id: str, version: int | None
    ) -> tuple[Outcome, list[tuple[str, ...]]]:
        reads = Reads(self.store)
        tomb = reads.tombstone(face_id)
        if tomb is not None and (version is None or tomb.removed_version >= version):
            return Outcome(face_id, "ignored-removed", detail="tombstone"), []
        if reads.face(face_id) is not None:
            return Outcome(face_id, "ignored-duplicate"), []
        source = self.faces.get([face_id]).get(face_id)
        if source is None:
            return Outcome(face_id, "ignored-missing", detail="not in the metadata store"), []
        face = ClusterFace.from_input(source, index_version=version or 0)
        ctx = self._context(reads, face)
        decision = rule.decide(face, ctx.links, ctx.candidates, self.settings)
        plan = Plan(reads, self.settings, f"add {face_id}")
        followups, decision = self._apply_decision(plan, None, face, decision, ctx, new=True)
        self.store.apply(plan.change_set())
        return self._outcome(face_id, decision), followups

    def _examine(self, attempt: int, *, face_id: str) -> tuple[Outcome, list[tuple[str, ...]]]:
        reads = Reads(self.store)
        face = reads.face(face_id)
        if face is None:
            return Outcome(face_id, "ignored-missing"), []
        ctx = self._context(reads, face)
        own_root = ctx.roots.get(face.person_id) if face.person_id is not None else None
        if face.person_id is not None and own_root is None:
            # assigned to a person that vanished (a crash between writes cannot do this,
            # a manual repair could): treat it as waiting
            face = replace(face, person_id=None, source=Source.MACHINE)
        decision = rule.decide(face, ctx.links, ctx.candidates, self.settings, own_root=own_root)
        plan = Plan(reads, self.settings, f"examine {face_id}")
        stored = reads.face(face_id)
        followups, decision = self._apply_decision(plan, stored, face, decision, ctx, new=False)
        if not plan.empty:
            self.store.apply(plan.change_set())
        return self._outcome(face_id, decision), followups

    @staticmethod
    def _outcome(face_id: str, decision: rule.Decision) -> Outcome:
        action = {
            rule.Action.JOIN: "joined",
            rule.Action.FOUND: "founded",
            rule.Action.DEFER: "deferred",
            rule.Action.KEEP: "kept",
        }[decision.action]
        return Outcome(face_id, action, decision.person_id, detail=decision.reason)

    def _apply_decision(
        self,
        plan: Plan,
        stored: ClusterFace | None,
        face: ClusterFace,
        decision: rule.Decision,
        ctx: _Context,
        *,
        new: bool,
    ) -> tuple[list[tuple[str, ...]], rule.Decision]:
        """Fill ``plan``; return the follow-ups — ("examine", face_id) / ("merge", a, b) —
        and the decision (a founding one now names its new person)."""
        now = self.clock()
        followups: list[tuple[str, ...]] = []
        after = replace(face, core=decision.core, link_count=decision.link_count)
        if decision.action is rule.Action.JOIN:
            assert decision.person_id is not None
            after = replace(after, person_id=decision.person_id, source=Source.MACHINE)
            root = plan.person(decision.person_id)
            assert root is not None
            plan.put_person(stamp(root, now))
            for evicted_id in decision.evict:
                evicted = plan.face(evicted_id)
                if evicted is not None and evicted.source is Source.MACHINE:
                    plan.put_face(evicted, replace(evicted, person_id=None))
                    followups.append(("examine", evicted_id))
            followups.extend(("merge", decision.person_id, other) for other in decision.merges)
        elif decision.action is rule.Action.FOUND:
            person_id = self.new_id()
            plan.put_person(
                Person(
                    person_id,
                    created_by=Source.MACHINE,
                    created_at=now,
                    updated_at=now,
                )
            )
            after = replace(after, person_id=person_id, source=Source.MACHINE)
            decision = replace(decision, person_id=person_id)
        elif decision.action is rule.Action.KEEP:
            followups.extend(
                ("merge", decision.person_id, other)
                for other in decision.merges
                if decision.person_id is not None
            )
        if (
            stored is None
            or after != stored
            or decision.action in (rule.Action.JOIN, rule.Action.FOUND)
        ):
            plan.put_face(stored, after)
        if decision.action in (rule.Action.JOIN, rule.Action.FOUND):
            # Waiting neighbours now have a person near them. The only thing new to them
            # is this person, so one that is not close enough to its centroid to join it
            # need not be examined (its own density change is handled below).
            assert decision.person_id is not None
            base = ctx.views.get(decision.person_id)
            total = (
                base.vector_sum if base is not None and len(base.vector_sum) else 0.0
            ) + face_weight(face.quality, self.settings) * face.embedding.astype(np.float64)
            followups.extend(
                ("examine", link.face_id)
                for link in ctx.links
                if link.person_id is None
                and similarity_to(total, ctx.neighbours[link.face_id].embedding)
                >= self.settings.join_similarity
            )
        if new:
            for link in ctx.links:
                neighbour = ctx.neighbours[link.face_id]
                if neighbour.core:
                    continue
                count = neighbour.link_count + 1
                core = rule.is_core(count, self.settings)
                plan.put_face(neighbour, replace(neighbour, link_count=count, core=core))
                if core:
                    # newly core: a waiting face may found a person now, an assigned one
                    # is new density evidence between its person and its neighbours'
                    followups.append(("examine", link.face_id))
        return followups, decision

    # --- follow-ups ------------------------------------------------------------------------

    def _follow(self, followups: list[tuple[str, ...]]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        queue = list(followups)
        seen: set[tuple[str, ...]] = set()
        budget = self.settings.max_reexamine_per_event
        while queue and budget > 0:
            item = queue.pop(0)
            if item in seen:
                continue
            seen.add(item)
            budget -= 1
            if item[0] == "merge":
                outcomes.append(self.try_merge(item[1], item[2]))
                continue
            outcome, more = self._retry(partial(self._examine, face_id=item[1]))
            if outcome.action != "kept" or more:
                outcomes.append(outcome)
            if outcome.action in ("joined", "founded") or more:
                queue.extend(m for m in more if m not in seen)
        if queue:
            logger.info(
                "re-examination budget spent; the rest waits for the next change nearby",
                extra=log_fields(left=len(queue)),
            )
        return outcomes

    # --- machine merges ---------------------------------------------------------------------

    def try_merge(self, a: str, b: str) -> Outcome:
        outcome, _ = self._retry(partial(self._merge_step, a=a, b=b))
        return outcome

    def _merge_step(self, attempt: int, *, a: str, b: str) -> tuple[Outcome, None]:
        return self._merge(a, b), None

    def _merge(self, a: str, b: str) -> Outcome:
        reads = Reads(self.store)
        roots, views = reads.views([a, b])
        if a not in roots or b not in roots:
            return Outcome("", "merge-refused", a, detail="a person no longer exists")
        va, vb = views[roots[a]], views[roots[b]]
        refusal = rule.merge_refusal(va, vb, self.settings)
        if refusal is None:
            refusal = rule.merge_refusal(
                va, vb, self.settings, shared_image=self._share_an_image(reads, va, vb)
            )
        if refusal is not None:
            return Outcome("", "merge-refused", va.person_id, detail=f"{vb.person_id}: {refusal}")
        target, source = sorted(
            (va, vb),
            key=lambda v: (v.name is None, -v.faces, v.root.created_at, v.person_id),
        )
        now = self.clock()
        plan = Plan(reads, self.settings, f"merge {source.person_id} into {target.person_id}")
        entry = merge_into(plan, target, [source], now=now, actor=Source.MACHINE)
        self.store.apply(plan.change_set())
        logger.info(
            "persons merged",
            extra=log_fields(
                target=target.person_id, source=source.person_id, correction=entry.correction_id
            ),
        )
        return Outcome("", "merged", target.person_id, detail=f"{source.person_id} merged in")

    def _share_an_image(self, reads: Reads, a: PersonView, b: PersonView) -> bool:
        """Cannot-link check: does any photo show a face of ``a`` and a face of ``b``?"""
        smaller, larger = (a, b) if a.faces <= b.faces else (b, a)
        images = {f.image_id for member in smaller.ids for f in faces_of(self.store, member)}
        if not images:
            return False
        for face in self.store.faces_of_images(sorted(images)):
            if face.person_id is not None and face.person_id in larger.ids:
                return True
        return False

    # --- remove ----------------------------------------------------------------------------

    def _remove(
        self, attempt: int, *, face_id: str, version: int | None
    ) -> tuple[Outcome, str | None]:
        reads = Reads(self.store)
        tomb = reads.tombstone(face_id)
        if tomb is not None and version is not None and tomb.removed_version >= version:
            return Outcome(face_id, "ignored-duplicate", detail="already removed"), None
        face = reads.face(face_id)
        if tomb is not None and version is None and face is None:
            return Outcome(face_id, "ignored-duplicate", detail="already removed"), None
        if face is not None and version is not None and face.index_version > version:
            # a late removal of an earlier life of this face id (it was added again since)
            return Outcome(face_id, "ignored-stale", detail="face re-added since"), None
        now = self.clock()
        plan = Plan(reads, self.settings, f"remove {face_id}")
        removed_version = max(version or 0, tomb.removed_version if tomb else 0)
        plan.put_tombstone(Tombstone(face_id, removed_version, now))
        person_root: str | None = None
        if face is not None:
            plan.delete_face(face)
            if face.person_id is not None:
                person = plan.person(face.person_id)
                if person is not None:
                    if (
                        person.faces == 0
                        and person.name is None
                        and person.is_root
                        and not person.aliases
                    ):
                        plan.delete_person(person.person_id)
                    else:
                        plan.put_person(stamp(person, now))
                        person_root = person.merged_into or person.person_id
            self._recount_neighbours(reads, plan, face)
        self.store.apply(plan.change_set())
        return Outcome(face_id, "removed", face.person_id if face else None), person_root

    def _recount_neighbours(self, reads: Reads, plan: Plan, removed: ClusterFace) -> None:
        k = self.settings.neighbours_k
        hits = self.search.search(removed.embedding, k + 1)[0]
        stored = reads.faces(h.face_id for h in hits if h.face_id != removed.face_id)
        for hit in hits:
            neighbour = stored.get(hit.face_id)
            if neighbour is None or neighbour.image_id == removed.image_id:
                continue
            if hit.similarity < self.settings.link_similarity:
                continue
            neighbour = plan.face(neighbour.face_id) or neighbour
            if not neighbour.core:
                count = max(0, neighbour.link_count - 1)
            else:
                count = self._count_links(reads, neighbour, exclude=removed.face_id)
            core = rule.is_core(count, self.settings)
            if (count, core) != (neighbour.link_count, neighbour.core):
                plan.put_face(neighbour, replace(neighbour, link_count=count, core=core))

    def _count_links(self, reads: Reads, face: ClusterFace, *, exclude: str) -> int:
        k = self.settings.neighbours_k
        hits = [
            h
            for h in self.search.search(face.embedding, k + 2)[0]
            if h.face_id not in (face.face_id, exclude)
        ][:k]
        stored = reads.faces(h.face_id for h in hits)
        return sum(
            1
            for h in hits
            if h.face_id in stored
            and stored[h.face_id].image_id != face.image_id
            and h.similarity >= self.settings.link_similarity
        )

    # --- width guard ---------------------------------------------------------------------------

    def enforce_width(self, person_id: str) -> Outcome | None:
        """Split a too-wide person's machine-assigned faces off (None: nothing to do)."""
        from facesearch.people.split import split_if_too_wide

        return split_if_too_wide(self, person_id)


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


def face_change(
    before: ClusterFace, after: ClusterFace, rejection: str | None = None
) -> FaceChange:
    return FaceChange(
        before.face_id,
        before.person_id,
        before.source,
        after.person_id,
        after.source,
        rejection,
    )
