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

What a decision reads lives in :mod:`.neighbourhood`, how persons merge in
:mod:`.merge`; this module turns events into decisions and decisions into plans.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TypeVar

from facesearch.errors import StaleRead, TransientError
from facesearch.logs import log_fields
from facesearch.people import rule
from facesearch.people.merge import machine_merge
from facesearch.people.neighbourhood import (
    Neighbourhood,
    read_neighbourhood,
    recount_after_removal,
)
from facesearch.people.plan import Plan, backoff, stamp
from facesearch.people.ports import FaceSource, NeighbourSearch, PeopleStore
from facesearch.people.reads import Reads
from facesearch.people.representative import similarity_to, sum_after_adding
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import (
    ClusterFace,
    Outcome,
    Person,
    Source,
    Tombstone,
    new_person_id,
)
from facesearch.storage.messages import FaceEvent

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
        ctx = read_neighbourhood(self.search, self.settings, reads, face)
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
        ctx = read_neighbourhood(self.search, self.settings, reads, face)
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
        ctx: Neighbourhood,
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
            total = sum_after_adding(ctx.views.get(decision.person_id), face, self.settings)
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
        return machine_merge(self.store, self.settings, a, b, clock=self.clock), None

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
            recount_after_removal(self.search, self.settings, reads, plan, face)
        self.store.apply(plan.change_set())
        return Outcome(face_id, "removed", face.person_id if face else None), person_root

    # --- width guard ---------------------------------------------------------------------------

    def enforce_width(self, person_id: str) -> Outcome | None:
        """Split a too-wide person's machine-assigned faces off (None: nothing to do)."""
        from facesearch.people.split import split_if_too_wide

        return split_if_too_wide(self, person_id)
