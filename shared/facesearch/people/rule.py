"""The density rule: what one face does, given its neighbourhood. Pure functions.

DBSCAN's shape, with guards (docs/people.md explains the numbers):

* two faces of *different* images are **linked** when their cosine similarity is at
  least ``link_similarity`` (two faces of one image are never linked: cannot-link);
* a face is **core** when it and its linked neighbours number ``min_samples``;
* a face **joins** the person that best fits it among the persons of its linked
  neighbours (at least ``min_support`` of them in that person): its similarity to
  the person's quality-weighted centroid must reach ``join_similarity``, the
  person must stay narrow enough (width guard), the user must not have rejected
  that person for this face, and no face of the same image may be in it — unless
  that face was put there by the machine and fits worse (best fit wins, so the
  outcome does not depend on which of the two arrived first);
* a core face that joins nobody **founds** a person (two racing founders are
  serialised by the store's preconditions; the loser re-decides and joins);
* otherwise the face **waits** (deferred) until its neighbourhood changes;
* a core face linked to core faces of *other* persons is density evidence that
  they are one: the engine proposes those merges, and :func:`merge_refusal` checks
  them (centroids close, width kept, no shared image, no "distinct" constraint,
  not two persons a user has named or assigned faces to).

Single-link chaining (Immich's sibling merges) is what the centroid test stops: a
face must resemble the whole person, not one member of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from facesearch.people.representative import (
    PersonView,
    centroid_similarity,
    similarity_to,
    width_after_adding,
    width_after_merging,
)
from facesearch.people.settings import PeopleSettings
from facesearch.people.types import ClusterFace, Source


class Action(StrEnum):
    JOIN = "join"
    FOUND = "found"
    DEFER = "defer"
    KEEP = "keep"  # an already assigned face: nothing to do but (maybe) propose merges


@dataclass(frozen=True, slots=True)
class Link:
    """A neighbour at or above ``link_similarity``, of another image, already clustered."""

    face_id: str
    similarity: float
    person_id: str | None  # its person's root id (aliases resolved)
    core: bool


@dataclass(frozen=True, slots=True)
class Sibling:
    """A face of the same image that is already in a candidate person."""

    face_id: str
    similarity: float  # its similarity to that person's centroid
    source: Source


@dataclass(frozen=True, slots=True)
class Candidate:
    """A person near the face, with what the engine found out about it."""

    view: PersonView
    rejected: bool = False  # the user said this face is not this person
    siblings: tuple[Sibling, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    core: bool
    link_count: int
    person_id: str | None = None  # JOIN: the person; KEEP: the face's own root
    similarity: float | None = None  # face to the person's centroid (JOIN)
    merges: tuple[str, ...] = ()  # persons proposed for merging with person_id
    evict: tuple[str, ...] = ()  # machine-assigned siblings the face displaces
    reason: str = ""


def is_core(link_count: int, settings: PeopleSettings) -> bool:
    return link_count + 1 >= settings.min_samples


def links_of(
    face: ClusterFace,
    neighbours: Sequence[tuple[ClusterFace, float]],
    roots: Mapping[str, str],
    settings: PeopleSettings,
) -> list[Link]:
    """The linked neighbours among k-NN results (``roots`` maps person ids to root ids)."""
    out = []
    for other, similarity in neighbours:
        if other.face_id == face.face_id or other.image_id == face.image_id:
            continue
        if similarity < settings.link_similarity:
            continue
        root = roots.get(other.person_id) if other.person_id is not None else None
        out.append(Link(other.face_id, float(similarity), root, other.core))
    out.sort(key=lambda link: (-link.similarity, link.face_id))
    return out


def _merge_proposals(links: Sequence[Link], exclude: str | None) -> tuple[str, ...]:
    seen: list[str] = []
    for link in links:  # best link first
        if (
            link.core
            and link.person_id is not None
            and link.person_id != exclude
            and link.person_id not in seen
        ):
            seen.append(link.person_id)
    return tuple(seen)


def decide(
    face: ClusterFace,
    links: Sequence[Link],
    candidates: Mapping[str, Candidate],
    settings: PeopleSettings,
    *,
    own_root: str | None = None,
) -> Decision:
    """The rule for one face. ``candidates`` holds the persons of its links (by root)."""
    count = len(links)
    core = is_core(count, settings)
    if face.person_id is not None:
        merges = _merge_proposals(links, own_root) if core else ()
        return Decision(Action.KEEP, core, count, own_root, merges=merges, reason="assigned")

    support: dict[str, int] = {}
    for link in links:
        if link.person_id is not None:
            support[link.person_id] = support.get(link.person_id, 0) + 1

    options: list[tuple[float, int, str, tuple[str, ...]]] = []
    refusals: list[str] = []
    for root, n in support.items():
        candidate = candidates.get(root)
        if candidate is None or n < settings.min_support:
            continue
        if candidate.rejected:
            refusals.append(f"{root}:rejected")
            continue
        similarity = similarity_to(candidate.view.vector_sum, face.embedding)
        if similarity < settings.join_similarity:
            refusals.append(f"{root}:centroid {similarity:.3f}")
            continue
        if width_after_adding(candidate.view, face, settings) < settings.width_min_similarity:
            refusals.append(f"{root}:width")
            continue
        siblings = candidate.siblings
        if any(s.source is Source.USER or s.similarity >= similarity for s in siblings):
            refusals.append(f"{root}:cannot-link")
            continue
        options.append((similarity, n, root, tuple(s.face_id for s in siblings)))

    if options:
        options.sort(key=lambda o: (-o[0], -o[1], o[2]))
        similarity, _, root, evict = options[0]
        merges = _merge_proposals(links, root) if core else ()
        return Decision(
            Action.JOIN, core, count, root, similarity, merges, evict, reason="best fit"
        )

    # Founding needs density that is not borrowed from persons this face may not join.
    usable = sum(
        1
        for link in links
        if link.person_id is None
        or (
            (c := candidates.get(link.person_id)) is not None
            and not c.rejected
            and not any(s.source is Source.USER for s in c.siblings)
        )
    )
    if is_core(usable, settings):
        return Decision(Action.FOUND, core, count, reason="core, no person fits")
    return Decision(
        Action.DEFER,
        core,
        count,
        reason="; ".join(refusals) if refusals else "not core, no person near",
    )


def merge_refusal(
    a: PersonView,
    b: PersonView,
    settings: PeopleSettings,
    *,
    shared_image: bool | None = None,
) -> str | None:
    """Why the machine may not merge ``a`` and ``b`` (None: it may).

    ``shared_image`` is the cannot-link check's answer (None = not checked yet; the
    engine checks last, since it costs reads).
    """
    if a.ids & b.ids:
        return "same person"
    if a.ids & b.distinct_from or b.ids & a.distinct_from:
        return "marked distinct"
    if a.confirmed and b.confirmed:
        return "both confirmed by a user (named or holding user-assigned faces)"
    smaller = min(a.faces, b.faces)
    threshold = settings.join_similarity if smaller <= 1 else settings.merge_similarity
    similarity = centroid_similarity(a, b)
    if similarity < threshold:
        return f"centroids {similarity:.3f} < {threshold:.3f}"
    if width_after_merging(a, b) < settings.width_min_similarity:
        return "too wide together"
    if smaller > settings.merge_check_max_faces:
        return "too large for the cannot-link check"
    if shared_image:
        return "a photo shows both"
    return None
