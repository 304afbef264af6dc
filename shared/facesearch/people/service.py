"""One collection's persons as the product uses them: events in, corrections, reads.

The clusterer function, the query API and the ``facesearch persons`` command all work
through a :class:`PeopleService`, so they share one engine (the density rule, its
constraints and the width guard), one :class:`~.corrections.Corrections` (whose
repairs re-examine faces with that engine) and one set of reads that resolve merged
persons to the root users see.

Faces a user acts on that the clusterer has not seen yet (its event is still on the
way, or the collection predates clustering) are added first, as the event would add
them (:meth:`PeopleService.ensure`): a correction never waits for the pipeline, and the
late event is then a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from facesearch.errors import NotFound
from facesearch.people.corrections import Corrections
from facesearch.people.engine import PeopleEngine
from facesearch.people.plan import Plan, apply_step, stamp
from facesearch.people.ports import every_correction
from facesearch.people.reads import Reads
from facesearch.people.representative import PersonMatch, PersonView, rank_persons
from facesearch.people.types import ClusterFace, Correction, Outcome, Person, Source
from facesearch.storage.messages import FaceEvent
from facesearch.storage.paging import Page, decode_cursor, encode_cursor


@dataclass(frozen=True)
class Assignment:
    """Who a face belongs to, as users see it (the root of a merged person)."""

    person_id: str
    name: str | None
    source: Source


@dataclass(frozen=True)
class PersonImages:
    """One page of a person's images: each image with the person's faces in it."""

    images: list[tuple[str, list[ClusterFace]]] = field(default_factory=list)
    next_cursor: str | None = None


class PeopleService:
    """Persons of one collection over its people store, index and metadata store."""

    def __init__(self, engine: PeopleEngine) -> None:
        """Over ``engine`` (which holds the store, the index search, the face source, the
        settings and the clock): the corrections share all of it, so their repairs
        re-examine faces with the same rule."""
        self.engine = engine
        self.store = engine.store
        self.settings = engine.settings
        self.clock = engine.clock
        self.new_id = engine.new_id
        self.corrections = Corrections(
            engine.store, engine.settings, engine=engine, clock=engine.clock, new_id=engine.new_id
        )

    # --- events ------------------------------------------------------------------------------

    def handle(self, event: FaceEvent) -> list[Outcome]:
        return self.engine.handle_event(event)

    def remove(self, face_ids: Sequence[str]) -> list[Outcome]:
        """Faces forgotten: out of their persons now (the indexer's later face_removed
        event then finds them gone)."""
        return self.engine.face_removed(face_ids) if face_ids else []

    def ensure(self, face_ids: Iterable[str]) -> None:
        """Add faces the clusterer has not seen yet, as their face_added would; NotFound
        for a face the metadata store does not have (or that was removed)."""
        ids = list(dict.fromkeys(face_ids))
        known = self.store.get_faces(ids)
        missing = [f for f in ids if f not in known]
        if not missing:
            return
        self.engine.face_added(missing)
        added = self.store.get_faces(missing)
        gone = [f for f in missing if f not in added]
        if gone:
            raise NotFound(f"faces {gone[:5]} do not exist")

    # --- reads -------------------------------------------------------------------------------

    def view(self, person_id: str) -> PersonView:
        """The person users see under ``person_id`` (a merged-away id gives its root)."""
        roots, views = Reads(self.store).views([person_id])
        if person_id not in roots:
            raise NotFound(f"person {person_id} not found")
        return views[roots[person_id]]

    def views(self, roots: Sequence[Person]) -> list[PersonView]:
        """Views of root records (their aliases read in one batch)."""
        aliases = {a for root in roots for a in root.aliases}
        records: dict[str, Person] = self.store.get_persons(aliases) if aliases else {}
        return [PersonView.of(root, records) for root in roots]

    def list_persons(
        self, *, cursor: str | None, limit: int
    ) -> tuple[list[PersonView], str | None]:
        page = self.store.list_persons(roots_only=True, cursor=cursor, limit=limit)
        return self.views(page.items), page.next_cursor

    def faces(self, person_id: str, *, cursor: str | None, limit: int) -> Page[ClusterFace]:
        """Every face of the person, its merged-in persons' included, a page at a time:
        the root's faces by face id, then each alias's (the cursor says where)."""
        view = self.view(person_id)
        members = [p.person_id for p in view.members]
        kind = f"person:{view.person_id}"
        member, inner = 0, None
        if cursor is not None:
            position, inner_text = decode_cursor(kind, cursor, 2)
            member, inner = int(position), (str(inner_text) or None)
        items: list[ClusterFace] = []
        while member < len(members) and len(items) < limit:
            page = self.store.faces_of_person(
                members[member], cursor=inner, limit=limit - len(items)
            )
            items += page.items
            if page.next_cursor is None:
                member, inner = member + 1, None
            else:
                inner = page.next_cursor
        more = member < len(members)
        return Page(items, encode_cursor(kind, [member, inner or ""]) if more else None)

    def images(self, person_id: str, *, cursor: str | None, limit: int) -> PersonImages:
        """The person's images with the person's faces in each, a page of faces at a time.
        Face ids start with their image id, so an image's faces are neighbours in face-id
        order; only an image with several faces of the person (a user put them together)
        can straddle a page boundary and then shows on both pages."""
        page = self.faces(person_id, cursor=cursor, limit=limit)
        grouped: dict[str, list[ClusterFace]] = {}
        for face in page.items:
            grouped.setdefault(face.image_id, []).append(face)
        return PersonImages(list(grouped.items()), page.next_cursor)

    def assignments(self, face_ids: Iterable[str]) -> dict[str, Assignment]:
        """face id -> its person (root) for the faces that are in one."""
        faces = self.store.get_faces(list(dict.fromkeys(face_ids)))
        roots, views = Reads(self.store).views(
            {f.person_id for f in faces.values() if f.person_id is not None}
        )
        out: dict[str, Assignment] = {}
        for face in faces.values():
            root = roots.get(face.person_id or "")
            if root is not None:
                out[face.face_id] = Assignment(root, views[root].name, face.source)
        return out

    def rank(
        self, embedding: Any, near_faces: Iterable[str], *, k: int, min_similarity: float | None
    ) -> list[PersonMatch]:
        """Persons ranked by centroid similarity to a query face. Candidates are the
        persons of the query's nearest faces (the index found them), so the cost does
        not grow with the number of persons in the collection."""
        faces = self.store.get_faces(list(dict.fromkeys(near_faces)))
        _, views = Reads(self.store).views(
            {f.person_id for f in faces.values() if f.person_id is not None}
        )
        return rank_persons(
            embedding,
            list(views.values()),
            k=k,
            min_similarity=min_similarity,
            settings=self.settings,
        )

    def log(self, *, before: str | None, limit: int) -> list[Correction]:
        return self.store.list_corrections(before=before, limit=limit)

    # --- changes -------------------------------------------------------------------------------

    def create(self, name: str, metadata: Mapping[str, Any] | None = None) -> PersonView:
        """A new, empty, user-created person (faces are then assigned to it)."""
        person_id = self.new_id()

        def step(reads: Reads) -> Plan:
            plan = Plan(reads, self.settings, f"create {person_id}")
            now = self.clock()
            person = Person(
                person_id, name=name.strip(), metadata=dict(metadata or {}), created_by=Source.USER
            )
            plan.put_person(stamp(person, now))
            return plan

        apply_step(self.store, self.settings, f"create person {person_id}", step)
        return self.view(person_id)

    def describe(
        self,
        person_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> PersonView:
        """Rename (a logged, undoable correction) and/or replace the metadata."""
        view = self.view(person_id)
        if name is not None and name.strip() != view.name:
            self.corrections.name(view.person_id, name)
        if metadata is not None:
            root_id = view.person_id

            def step(reads: Reads) -> Plan:
                root = reads.persons([root_id]).get(root_id)
                if root is None:
                    raise NotFound(f"person {root_id} not found")
                plan = Plan(reads, self.settings, f"metadata of {root_id}")
                plan.put_person(stamp(replace(root, metadata=dict(metadata)), self.clock()))
                return plan

            apply_step(self.store, self.settings, f"metadata of {root_id}", step)
        return self.view(view.person_id)

    def assign(
        self, face_ids: Sequence[str], person_id: str | None = None, *, name: str | None = None
    ) -> Correction:
        """Move faces to a person, or (without one) split them off into a new person."""
        self.ensure(face_ids)
        return self.corrections.move(face_ids, to_person=person_id, name=name)

    def reject(self, face_id: str, person_id: str | None = None) -> Correction:
        self.ensure([face_id])
        return self.corrections.reject(face_id, person_id)

    def merge(self, target_id: str, source_ids: Sequence[str]) -> Correction:
        return self.corrections.merge(target_id, source_ids)

    def name(self, person_id: str, name: str | None) -> Correction:
        return self.corrections.name(person_id, name)

    def undo(self, correction_id: str) -> Correction:
        return self.corrections.undo(correction_id)

    def drop(self, view: PersonView) -> None:
        """Forget a person: delete its records (and those merged into it) and blank its
        names in the correction log. Its faces are removed first (:meth:`remove`); a face
        the machine adds to it meanwhile simply finds the person gone and waits."""
        ids = sorted(view.ids)

        def step(reads: Reads) -> Plan:
            plan = Plan(reads, self.settings, f"forget {view.person_id}")
            for person_id in reads.persons(ids):
                plan.delete_person(person_id)
            return plan

        apply_step(self.store, self.settings, f"forget {view.person_id}", step)
        for entry in every_correction(self.store, page_size=500):
            if entry.person_id in view.ids and (entry.old_name or entry.new_name):
                self._redact(entry.correction_id)

    def _redact(self, correction_id: str) -> None:
        def step(reads: Reads) -> Plan | None:
            entry = reads.correction(correction_id)
            if entry is None:
                return None
            plan = Plan(reads, self.settings, f"redact {correction_id}")
            note = "names removed: the person was forgotten"
            plan.put_correction(replace(entry, old_name=None, new_name=None, note=note))
            return plan

        apply_step(self.store, self.settings, f"redact {correction_id}", step)
