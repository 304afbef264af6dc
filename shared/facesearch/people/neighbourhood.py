"""A face's neighbourhood as the rule sees it, and the link counts kept inside it.

The engine decides one face at a time from its k nearest neighbours in the index:
which of them are stored (clustered or waiting), which persons they and the other
faces of the face's photo are in, and how well each such person would fit. This
module reads that (:func:`read_neighbourhood`) through a :class:`~.reads.Reads`,
so every record it looked at becomes a precondition of the decision's apply.

Link counts (how many linked neighbours a face has, which makes it *core*) are
maintained incrementally by the engine when a face is added; when one is removed,
the neighbours that had counted it are recounted here
(:func:`recount_after_removal`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from facesearch.people import rule
from facesearch.people.plan import Plan
from facesearch.people.ports import NeighbourSearch
from facesearch.people.reads import Reads
from facesearch.people.representative import PersonView, face_weight, similarity_to
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace


@dataclass(frozen=True)
class Neighbourhood:
    """Everything one decision about ``face`` reads."""

    face: ClusterFace
    links: list[rule.Link]
    neighbours: dict[str, ClusterFace]  # stored neighbours among the k-NN hits
    candidates: dict[str, rule.Candidate]  # root person id -> how the face would fit it
    roots: dict[str, str]  # person id -> its root, for every person read
    views: dict[str, PersonView]  # root -> the person as users see it


def read_neighbourhood(
    search: NeighbourSearch, settings: PeopleSettings, reads: Reads, face: ClusterFace
) -> Neighbourhood:
    """The face's k nearest stored neighbours, their persons (and the persons of the other
    faces of its photo, the cannot-link evidence) and a candidate for each person linked."""
    k = settings.neighbours_k
    hits = [h for h in search.search(face.embedding, k + 1)[0] if h.face_id != face.face_id]
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
    links = rule.links_of(face, pairs, roots, settings)
    rejected_roots = {roots[p] for p in face.rejected if p in roots}
    candidates: dict[str, rule.Candidate] = {}
    for root in {link.person_id for link in links if link.person_id is not None}:
        view = views[root]
        sibs = tuple(
            rule.Sibling(s.face_id, fit_without(view, s, settings), s.source)
            for s in siblings
            if s.person_id is not None and roots.get(s.person_id) == root
        )
        candidates[root] = rule.Candidate(
            view,
            rejected=root in rejected_roots or bool(view.ids & face.rejected),
            siblings=sibs,
        )
    return Neighbourhood(face, links, stored, candidates, roots, views)


def fit_without(view: PersonView, face: ClusterFace, settings: PeopleSettings) -> float:
    """A member's similarity to its person's centroid computed without itself."""
    w = face_weight(face.quality, settings)
    total = view.vector_sum
    if not len(total):
        return -1.0
    rest = total - w * face.embedding.astype(np.float64)
    if view.faces <= 1 or float(np.linalg.norm(rest)) < 1e-9:
        return -1.0
    return similarity_to(rest, face.embedding)


def recount_after_removal(
    search: NeighbourSearch,
    settings: PeopleSettings,
    reads: Reads,
    plan: Plan,
    removed: ClusterFace,
) -> None:
    """Plan the new link counts of the neighbours that counted ``removed``: a non-core
    one loses one link; a core one (whose count is only a lower bound) is recounted."""
    k = settings.neighbours_k
    hits = search.search(removed.embedding, k + 1)[0]
    stored = reads.faces(h.face_id for h in hits if h.face_id != removed.face_id)
    for hit in hits:
        neighbour = stored.get(hit.face_id)
        if neighbour is None or neighbour.image_id == removed.image_id:
            continue
        if hit.similarity < settings.link_similarity:
            continue
        neighbour = plan.face(neighbour.face_id) or neighbour
        if not neighbour.core:
            count = max(0, neighbour.link_count - 1)
        else:
            count = _count_links(search, settings, reads, neighbour, exclude=removed.face_id)
        core = rule.is_core(count, settings)
        if (count, core) != (neighbour.link_count, neighbour.core):
            plan.put_face(neighbour, replace(neighbour, link_count=count, core=core))


def _count_links(
    search: NeighbourSearch,
    settings: PeopleSettings,
    reads: Reads,
    face: ClusterFace,
    *,
    exclude: str,
) -> int:
    k = settings.neighbours_k
    hits = [
        h
        for h in search.search(face.embedding, k + 2)[0]
        if h.face_id not in (face.face_id, exclude)
    ][:k]
    stored = reads.faces(h.face_id for h in hits)
    return sum(
        1
        for h in hits
        if h.face_id in stored
        and stored[h.face_id].image_id != face.image_id
        and h.similarity >= settings.link_similarity
    )
