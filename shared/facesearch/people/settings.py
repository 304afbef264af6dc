"""Knobs of the people (face clustering) feature: the ``people`` section of
:class:`facesearch.config.Settings`.

Every field maps to the flat environment variable ``FACESEARCH_PEOPLE_<FIELD>``
(e.g. ``FACESEARCH_PEOPLE_JOIN_SIMILARITY``); nothing here reads the environment
itself. The thresholds are cosine similarities for the default embedder
(``dlib-resnet-v1``, 128-d unit vectors) and were chosen by
``python -m tests.bench.clustering`` sweeps (docs/people.md has the numbers).
Another embedder needs its own measured values, and a change of any clustering
threshold takes effect for new decisions only: run a full re-cluster
(``facesearch persons recluster``) to apply it to existing persons.
"""

from __future__ import annotations

from pydantic import Field, NonNegativeInt, PositiveFloat, model_validator

from facesearch.section import Cosine, Count, SettingsSection


class PeopleSettings(SettingsSection):
    """The density rule, representatives, corrections and engine limits."""

    env_prefix = "people_"

    # --- the density rule -------------------------------------------------------------
    link_similarity: Cosine = 0.93
    """Two faces of different images are density neighbours ('linked') at or above this cosine
    similarity."""
    min_samples: Count = Field(default=2, le=64)
    """A face is a core face when it and its linked neighbours number at least this many (DBSCAN's
    min_samples, the face itself included). Only core faces found persons or merge them."""
    join_similarity: Cosine = 0.95
    """A face joins a person only if its similarity to the person's quality-weighted centroid is at
    least this."""
    merge_similarity: Cosine = 0.96
    """The machine merges two persons (each with two or more faces) only if their centroids are at
    least this similar."""
    min_support: Count = Field(default=1, le=64)
    """A face joins a person only if at least this many of its linked neighbours belong to that
    person."""
    width_min_similarity: Cosine = 0.96
    """Width guard: a person's mean face-to-centroid similarity (|weighted sum| / total weight) must
    stay at or above this; joins and merges that would break it are refused, and a person found
    too wide is split."""
    neighbours_k: Count = Field(default=16, le=1024)
    """Nearest neighbours fetched from the index per decision."""
    # --- representatives and search ----------------------------------------------------
    representative_faces: Count = Field(default=8, le=100)
    """Best-quality faces kept on each person record (cover = the first); Rekognition keeps up to
    100 faces per user."""
    quality_weight_floor: float = Field(default=0.2, gt=0.0, le=1.0)
    """Weight of a face in its person's centroid = max(quality score, this)."""
    person_match_similarity: Cosine = 0.95
    """Person search: a query face matches a person whose centroid is at least this similar."""
    # --- corrections -----------------------------------------------------------------------
    max_faces_per_correction: Count = Field(default=100, le=400)
    """Faces one move/split correction may name (Rekognition AssociateFaces takes up to 100); keeps
    each correction one atomic store write."""
    undo_max_age_s: PositiveFloat = 30 * 24 * 3600.0
    """Corrections older than this can no longer be undone."""
    # --- engine limits ---------------------------------------------------------------------
    apply_attempts: Count = Field(default=16, le=1000)
    """Re-read and re-decide this often when a racing writer changed what a decision read; then give
    up with a retryable error (the event is redelivered)."""
    max_reexamine_per_event: NonNegativeInt = Field(default=64, le=10_000)
    """Deferred or newly core neighbours re-examined per event at most (the rest wait for their next
    neighbourhood change or a re-cluster)."""
    merge_check_max_faces: Count = 2000
    """The machine merges two persons only if the smaller has at most this many faces (the
    cannot-link check reads each of its images); larger merges are left to the user or a
    re-cluster."""
    width_guard_max_faces: int = Field(default=5000, ge=2)
    """A too-wide person is split incrementally only up to this many faces; larger ones are logged
    and left to a re-cluster."""

    @model_validator(mode="after")
    def _consistent(self) -> PeopleSettings:
        if self.min_support > self.neighbours_k:
            raise ValueError("min_support cannot exceed neighbours_k")
        if self.min_samples - 1 > self.neighbours_k:
            raise ValueError("min_samples - 1 cannot exceed neighbours_k")
        return self
