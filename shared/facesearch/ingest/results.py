"""The write half of a photo's ingest: its crops, records and messages, in a safe order.

:class:`facesearch.ingest.service.IngestService` decides what becomes of an image;
:class:`ImageResults` carries the decision out. The order of effects is the crash
contract of the module docstring of :mod:`.service`: crops, then ``faces/*`` (the
same ids on every attempt), then the embeddings, and only then ``done``; a failure
removes faces an earlier attempt stored, from the records and the index.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from facesearch.config import Settings
from facesearch.errors import FaceSearchError
from facesearch.ingest.job import IngestJob, IngestOutcome, Outcome
from facesearch.ingest.outputs import crop_name, crop_prefix, publish_embeddings, write_crop
from facesearch.ingest.sources import face_id_for
from facesearch.storage.blob import BlobStore
from facesearch.storage.bus import Bus
from facesearch.storage.messages import DeletionsMessage
from facesearch.storage.metadata import FaceRecord, ImageRecord, ImageStatus, all_faces
from facesearch.telemetry import span
from facesearch.vision.types import Face, ImageResult

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class ImageResults:
    """Writes what the pipeline found (or why it failed) for one photo at a time."""

    settings: Settings
    crops: BlobStore
    bus: Bus

    def store(
        self, job: IngestJob, record: ImageRecord, result: ImageResult, pipeline_s: float
    ) -> IngestOutcome:
        """Crops, face records, embeddings, then the image ``done`` with its stage timings."""
        source, image_id = job.source, record.image_id
        start = time.perf_counter()
        with span("ingest.crops"):
            faces = [self._face_record(job, face, result.model) for face in result.faces]
        crops_ms = (time.perf_counter() - start) * 1000.0
        start = time.perf_counter()
        with span("ingest.metadata"):
            job.store.put_faces(image_id, faces)
        metadata_ms = (time.perf_counter() - start) * 1000.0
        start = time.perf_counter()
        with span("ingest.publish", {"facesearch.faces": len(faces)}):
            self.publish(job, result.model, faces)
        publish_ms = (time.perf_counter() - start) * 1000.0
        timings = {
            **result.timings_ms,
            "pipeline": round(pipeline_s * 1000.0, 3),
            "crops": round(crops_ms, 3),
            "metadata": round(metadata_ms, 3),
            "publish": round(publish_ms, 3),
        }
        job.store.put_image(
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
            extra=source.log_fields(faces=len(faces), timings_ms=timings),
        )
        return IngestOutcome(image_id, source.display, Outcome.DONE, len(faces), timings_ms=timings)

    def drop_crops(self, job: IngestJob) -> None:
        """Crops written for an image whose records the store then refused (erased collection)."""
        for info in self.crops.list(crop_prefix(job.source.collection_id, job.source.image_id)):
            self.crops.delete(info.name)

    def republish(self, job: IngestJob, image_id: str) -> int:
        """The embeddings of a done image's stored faces, published again; how many."""
        faces = [f for f in all_faces(job.store, image_id=image_id) if f.model == job.model]
        self.publish(job, job.model, faces)
        return len(faces)

    def publish(self, job: IngestJob, model: str, faces: list[FaceRecord]) -> None:
        publish_embeddings(
            self.bus,
            self.settings.storage.embeddings_topic,
            faces,
            source=job.source,
            image_id=job.source.image_id,
            model=model,
            per_message=self.settings.ingest.faces_per_message,
        )

    def fail(
        self, job: IngestJob, error: FaceSearchError, existing: ImageRecord | None
    ) -> IngestOutcome:
        """Record a permanent failure (so it is visible and never retried) and acknowledge.

        Faces an earlier, interrupted attempt stored (and perhaps published) are removed
        from the records and the index: a failed image has no searchable faces.
        """
        source = job.source
        if existing is not None:
            stale = [f.face_id for f in all_faces(job.store, image_id=source.image_id)]
            if stale:
                job.store.put_faces(source.image_id, [])
                self.bus.publish(
                    self.settings.storage.deletions_topic,
                    [
                        DeletionsMessage(
                            stale, "image failed", collection_id=source.collection_id
                        ).encode()
                    ],
                )
        job.store.put_image(
            ImageRecord(
                image_id=source.image_id,
                source=source.display,
                status=ImageStatus.FAILED,
                source_info=source.info(),
                error_code=error.code,
                error_message=error.message,
                model=job.model,
                attempts=existing.attempts if existing else 0,
                created_at=existing.created_at if existing else 0.0,
            )
        )
        logger.error(
            "image failed",
            extra=source.log_fields(**error.log_fields()),
        )
        return IngestOutcome.failed(source.image_id, source.display, error)

    def _face_record(self, job: IngestJob, face: Face, model: str) -> FaceRecord:
        image_id = job.source.image_id
        crop_url = None
        if face.crop is not None:
            crop_url = write_crop(
                self.crops, crop_name(job.source.collection_id, image_id, face.index), face.crop
            )
        return FaceRecord.from_face(
            face,
            face_id=face_id_for(image_id, face.index),
            image_id=image_id,
            model=model,
            crop_url=crop_url,
        )
