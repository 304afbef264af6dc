"""What one ingest request is about, and what became of it (shared by images and videos).

``IngestJob``: the collection-specific collaborators chosen once per request (the
collection's store, pipeline, quality policy, face quota); ``IngestOutcome``: the final
result of a request (every returned outcome is acknowledged; failures that a retry can
fix are raised instead, see :mod:`.entry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from facesearch.errors import FaceSearchError
from facesearch.ingest.sources import SourceRef
from facesearch.storage.metadata import MetadataStore
from facesearch.vision.pipeline import FacePipeline
from facesearch.vision.settings import QualityPolicy

#: Processing attempts (redeliveries of one image, or plans of one video) before it is
#: failed for good.
MAX_PROCESSING_ATTEMPTS = 5


class Outcome(StrEnum):
    DONE = "done"  # an image, a video chunk or a whole video processed
    FAILED = "failed"
    SKIPPED = "skipped"  # not ours to process (own output, not an image)
    DUPLICATE = "duplicate"  # already done with this model: redelivery
    SUPERSEDED = "superseded"  # the object changed or vanished since the event
    QUEUED = "queued"  # a video planned: its chunks are queued for other instances


@dataclass(frozen=True)
class IngestOutcome:
    image_id: str  # the image's, or the video's id
    source: str
    outcome: Outcome
    faces: int = 0
    error_code: str | None = None
    reason: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    media: str = "image"  # image | video (faces: a video's tracks)

    @classmethod
    def failed(
        cls, image_id: str, source: str, error: FaceSearchError, *, media: str = "image"
    ) -> IngestOutcome:
        """A permanent failure, recorded and acknowledged: its code and message."""
        return cls(
            image_id,
            source,
            Outcome.FAILED,
            error_code=error.code,
            reason=error.message,
            media=media,
        )

    @property
    def acknowledged(self) -> bool:
        return True  # every outcome returned (not raised) is final


@dataclass(frozen=True)
class IngestJob:
    """One ingest's collection-specific collaborators, chosen once per request."""

    source: SourceRef
    store: MetadataStore
    pipeline: FacePipeline
    policy: QualityPolicy
    max_faces: int | None

    @property
    def model(self) -> str:
        return self.pipeline.embedder.model_id
