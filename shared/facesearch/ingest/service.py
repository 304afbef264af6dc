"""The ingest service: one image in, records + crops + embeddings out, idempotently.

Order of effects, chosen so that a crash at any point is repaired by the
platform's redelivery and never loses or duplicates a face:

1. cheap refusals before any download: our own output prefixes (skip), over
   the size cap (failed ``image-too-large``), already done with this model (ack);
2. download, content sniff (not an image: failed if it claimed to be one,
   skipped otherwise), status ``processing`` with the attempt counted;
3. vision pipeline; a permanently bad image becomes ``failed(code, message)``;
4. crops, then ``faces/*`` (same ids on every attempt), then the embeddings are
   published (the index ignores faces it already holds), and only then ``done``.

Transient failures (a dependency unavailable) propagate as
:class:`TransientError` so the entry point asks for a retry; an image that
keeps crashing its instance is failed after :data:`MAX_PROCESSING_ATTEMPTS`
instead of cycling until the dead-letter queue.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from PIL import Image

from facesearch.config import Settings
from facesearch.errors import (
    ConfigError,
    FaceSearchError,
    ImageTooLarge,
    ModelError,
    NotFound,
    TooManyAttempts,
)
from facesearch.ingest.sources import SourceRef, face_id_for
from facesearch.logs import log_fields
from facesearch.storage.blob import BlobStore
from facesearch.storage.bus import Bus
from facesearch.storage.messages import EmbeddingsMessage, chunked
from facesearch.storage.metadata import FaceRecord, ImageRecord, ImageStatus, MetadataStore
from facesearch.vision.decode import sniff_format
from facesearch.vision.pipeline import FacePipeline
from facesearch.vision.types import Face, ImageResult

logger = logging.getLogger(__name__)

#: Processing attempts (redeliveries of one image) before it is failed for good.
MAX_PROCESSING_ATTEMPTS = 5
CROP_JPEG_QUALITY = 90

#: Reads a source's bytes and the generation they belong to (None where meaningless).
Loader = Callable[[SourceRef], tuple[bytes, int | None]]


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # not ours to process (own output, not an image)
    DUPLICATE = "duplicate"  # already done with this model: redelivery
    SUPERSEDED = "superseded"  # the object changed or vanished since the event


@dataclass(frozen=True)
class IngestOutcome:
    image_id: str
    source: str
    outcome: Outcome
    faces: int = 0
    error_code: str | None = None
    reason: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def acknowledged(self) -> bool:
        return True  # every outcome returned (not raised) is final


@dataclass(eq=False)
class IngestService:
    """Stateless per request; holds per-instance clients and the loaded models."""

    settings: Settings
    pipeline: FacePipeline = field(kw_only=True)
    metadata: MetadataStore = field(kw_only=True)
    crops: BlobStore = field(kw_only=True)
    bus: Bus = field(kw_only=True)
    loader: Loader = field(kw_only=True)
    _model_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _model: str | None = field(init=False, default=None)

    @property
    def model(self) -> str:
        with self._model_lock:
            if self._model is None:
                self._model = self.pipeline.embedder.model_id
            return self._model

    # --- the whole flow ------------------------------------------------------------------

    def ingest(self, source: SourceRef, data: bytes | None = None) -> IngestOutcome:
        """Process one source; returns a final outcome or raises TransientError (retry)."""
        image_id = source.image_id
        fields = log_fields(image_id=image_id, source=source.display)
        if source.kind == "gcs" and source.name.startswith(
            tuple(self.settings.ingest.skip_prefixes)
        ):
            logger.info("skipped: our own output prefix", extra=fields)
            return IngestOutcome(image_id, source.display, Outcome.SKIPPED, reason="own-output")
        limit = self.settings.vision.max_image_bytes
        if source.size is not None and source.size > limit:
            return self._fail(
                source, ImageTooLarge(f"{source.size} bytes is over the {limit}-byte cap"), None
            )
        existing = self.metadata.get_image(image_id)
        done = existing is not None and existing.status is ImageStatus.DONE
        if done and existing is not None and existing.model == self.model:
            logger.info("already done: redelivery acknowledged", extra=fields)
            return IngestOutcome(
                image_id, source.display, Outcome.DUPLICATE, faces=existing.face_count
            )
        if existing is not None and existing.attempts >= MAX_PROCESSING_ATTEMPTS:
            if existing.status is ImageStatus.FAILED:
                return IngestOutcome(
                    image_id,
                    source.display,
                    Outcome.FAILED,
                    error_code=existing.error_code,
                    reason="already failed",
                )
            return self._fail(
                source,
                TooManyAttempts(f"gave up after {existing.attempts} processing attempts"),
                existing,
            )
        if data is None:
            try:
                data, generation = self.loader(source)
            except NotFound:
                logger.warning("source vanished before processing; acknowledged", extra=fields)
                return IngestOutcome(image_id, source.display, Outcome.SUPERSEDED, reason="gone")
            except ConfigError:
                raise  # this instance is misconfigured, the image may be fine: retry / DLQ
            except FaceSearchError as error:  # e.g. a URL outside the fetch allow-list
                if error.retryable:
                    raise
                return self._fail(source, error, existing)
            if source.generation is not None and generation not in (None, source.generation):
                logger.info(
                    "object was overwritten since the event; the newer event ingests it",
                    extra=fields,
                )
                return IngestOutcome(
                    image_id, source.display, Outcome.SUPERSEDED, reason="overwritten"
                )
        if len(data) > limit:
            return self._fail(
                source, ImageTooLarge(f"{len(data)} bytes is over the {limit}-byte cap"), existing
            )
        if sniff_format(data) is None and not source.claims_image():
            logger.info("skipped: not an image (content sniffing)", extra=fields)
            return IngestOutcome(image_id, source.display, Outcome.SKIPPED, reason="not-an-image")
        attempts = (existing.attempts if existing else 0) + 1
        record = self.metadata.put_image(
            ImageRecord(
                image_id=image_id,
                source=source.display,
                status=ImageStatus.PROCESSING,
                source_info=source.info(),
                attempts=attempts,
            )
        )
        start = time.perf_counter()
        try:
            result = self.pipeline.process(data)
        except ModelError:
            raise  # a broken instance, not a bad image: let the platform retry elsewhere
        except FaceSearchError as error:
            if error.retryable:
                raise
            return self._fail(source, error, record)
        return self._store(source, record, result, time.perf_counter() - start)

    def _store(
        self, source: SourceRef, record: ImageRecord, result: ImageResult, pipeline_s: float
    ) -> IngestOutcome:
        image_id = record.image_id
        start = time.perf_counter()
        faces = [self._face_record(image_id, face, result.model) for face in result.faces]
        crops_ms = (time.perf_counter() - start) * 1000.0
        start = time.perf_counter()
        self.metadata.put_faces(image_id, faces)
        metadata_ms = (time.perf_counter() - start) * 1000.0
        start = time.perf_counter()
        self._publish(image_id, result.model, faces, source.created_time)
        publish_ms = (time.perf_counter() - start) * 1000.0
        timings = {
            **result.timings_ms,
            "pipeline": round(pipeline_s * 1000.0, 3),
            "crops": round(crops_ms, 3),
            "metadata": round(metadata_ms, 3),
            "publish": round(publish_ms, 3),
        }
        self.metadata.put_image(
            ImageRecord(
                image_id=image_id,
                source=record.source,
                status=ImageStatus.DONE,
                source_info=record.source_info,
                face_count=len(faces),
                width=result.width,
                height=result.height,
                format=result.source_format,
                model=result.model,
                timings_ms=timings,
                attempts=record.attempts,
                created_at=record.created_at,
            )
        )
        logger.info(
            "image ingested",
            extra=log_fields(
                image_id=image_id, source=source.display, faces=len(faces), timings_ms=timings
            ),
        )
        return IngestOutcome(image_id, source.display, Outcome.DONE, len(faces), timings_ms=timings)

    def _face_record(self, image_id: str, face: Face, model: str) -> FaceRecord:
        crop_url = None
        if face.crop is not None:
            buffer = io.BytesIO()
            Image.fromarray(face.crop).save(buffer, format="JPEG", quality=CROP_JPEG_QUALITY)
            name = f"{image_id}/{face.index}.jpg"
            self.crops.write(name, buffer.getvalue())
            crop_url = f"{self.crops.url}/{name}"
        return FaceRecord.from_face(
            face,
            face_id=face_id_for(image_id, face.index),
            image_id=image_id,
            model=model,
            crop_url=crop_url,
        )

    def _publish(
        self, image_id: str, model: str, faces: list[FaceRecord], source_time: float | None
    ) -> None:
        if not faces:
            return
        messages = []
        for chunk in chunked(faces, self.settings.ingest.faces_per_message):
            vectors = np.stack([f.vector() for f in chunk])
            messages.append(
                EmbeddingsMessage(
                    image_id, model, [f.face_id for f in chunk], vectors, source_time
                ).encode()
            )
        self.bus.publish(self.settings.storage.embeddings_topic, messages)

    def _fail(
        self, source: SourceRef, error: FaceSearchError, existing: ImageRecord | None
    ) -> IngestOutcome:
        """Record a permanent failure (so it is visible and never retried) and acknowledge."""
        self.metadata.put_image(
            ImageRecord(
                image_id=source.image_id,
                source=source.display,
                status=ImageStatus.FAILED,
                source_info=source.info(),
                error_code=error.code,
                error_message=error.message,
                model=self.model,
                attempts=existing.attempts if existing else 0,
                created_at=existing.created_at if existing else 0.0,
            )
        )
        logger.error(
            "image failed",
            extra=log_fields(
                image_id=source.image_id,
                source=source.display,
                error_type=type(error).__name__,
                error_code=error.code,
                error=error.message,
            ),
        )
        return IngestOutcome(
            source.image_id,
            source.display,
            Outcome.FAILED,
            error_code=error.code,
            reason=error.message,
        )


__all__ = [
    "MAX_PROCESSING_ATTEMPTS",
    "IngestOutcome",
    "IngestService",
    "Loader",
    "Outcome",
    "TooManyAttempts",
]
