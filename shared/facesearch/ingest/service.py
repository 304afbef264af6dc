"""The ingest service: one image in, records + crops + embeddings out, idempotently.

Order of effects, chosen so that a crash at any point is repaired by the
platform's redelivery and never loses or duplicates a face:

1. cheap refusals before any download: our own output prefixes (skip), over
   the size cap (failed ``image-too-large``), already done with this model (ack);
2. download, content sniff (not an image: failed if it claimed to be one,
   skipped otherwise), status ``processing`` with the attempt counted;
3. vision pipeline; a permanently bad image becomes ``failed(code, message)``;
4. crops, then ``faces/*`` (same ids on every attempt), then the embeddings are
   published (the index ignores faces it already holds), and only then ``done``
   (these writes are :class:`facesearch.ingest.results.ImageResults`'s).

Transient failures (a dependency unavailable) propagate as
:class:`TransientError` so the entry point asks for a retry; an image that
keeps crashing its instance is failed after :data:`MAX_PROCESSING_ATTEMPTS`
instead of cycling until the dead-letter queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from facesearch.collections.directory import CollectionDirectory
from facesearch.collections.policy import CollectionSettings
from facesearch.config import Settings
from facesearch.errors import (
    CollectionClosed,
    ConfigError,
    EventExpired,
    FaceSearchError,
    ImageTooLarge,
    ModelError,
    NotFound,
    QuotaExceeded,
    TooManyAttempts,
)
from facesearch.ingest.job import (
    MAX_PROCESSING_ATTEMPTS,
    IngestJob,
    IngestOutcome,
    Outcome,
)
from facesearch.ingest.results import ImageResults
from facesearch.ingest.sources import SourceRef
from facesearch.ingest.video import VideoIngest, is_video
from facesearch.logs import log_fields
from facesearch.storage.blob import BlobStore
from facesearch.storage.bus import Bus
from facesearch.storage.messages import VideoTask
from facesearch.storage.metadata import (
    DEFAULT_COLLECTION,
    ImageRecord,
    ImageStatus,
    MetadataStore,
)
from facesearch.telemetry import metrics, span
from facesearch.video.sniff import SNIFF_BYTES
from facesearch.vision.decode import sniff_format
from facesearch.vision.pipeline import FacePipeline

logger = logging.getLogger(__name__)

#: Reads a source's bytes and the generation they belong to (None where meaningless).
Loader = Callable[[SourceRef], tuple[bytes, int | None]]


@dataclass(eq=False)
class IngestService:
    """Stateless per request; holds per-instance clients and the loaded models.

    Everything collection-specific is looked up per image: the collection must exist
    and be active (else the event is acknowledged and skipped), and its own embedder,
    quality limits and face quota apply; records, crops and embeddings carry its id.
    """

    settings: Settings
    stores: Callable[[str], MetadataStore] = field(kw_only=True)
    pipelines: Callable[[str | None], FacePipeline] = field(kw_only=True)
    collections: CollectionDirectory = field(kw_only=True)
    crops: BlobStore = field(kw_only=True)
    bus: Bus = field(kw_only=True)
    loader: Loader = field(kw_only=True)
    #: the video half (facesearch.ingest.video); None: videos are skipped as not images
    videos: VideoIngest | None = field(kw_only=True, default=None)
    #: writes a photo's crops, records and messages (built from the clients above)
    results: ImageResults = field(init=False)

    def __post_init__(self) -> None:
        self.results = ImageResults(self.settings, self.crops, self.bus)

    @property
    def metadata(self) -> MetadataStore:
        """The default collection's store."""
        return self.stores(DEFAULT_COLLECTION)

    @property
    def pipeline(self) -> FacePipeline:
        """The deployment's default pipeline."""
        return self.pipelines(None)

    # --- the whole flow ------------------------------------------------------------------

    def ingest(self, source: SourceRef, data: bytes | None = None) -> IngestOutcome:
        """Process one source; returns a final outcome or raises TransientError (retry).

        Traced as an ``ingest`` span (its stages as children) and counted in the metrics.
        """
        start = time.perf_counter()
        with span(
            "ingest",
            {"facesearch.image_id": source.image_id, "facesearch.source.kind": source.kind},
        ) as current:
            outcome = self._ingest_source(source, data)
            current.set_attribute("facesearch.outcome", str(outcome.outcome))
            current.set_attribute("facesearch.faces", outcome.faces)
        metrics.record_ingest(
            str(outcome.outcome),
            time.perf_counter() - start,
            outcome.faces if outcome.outcome is Outcome.DONE else 0,
            outcome.error_code,
        )
        return outcome

    def _ingest_source(self, source: SourceRef, data: bytes | None) -> IngestOutcome:
        image_id = source.image_id
        fields = source.log_fields()
        if source.kind == "gcs" and source.name.startswith(
            tuple(self.settings.ingest.skip_prefixes)
        ):
            logger.info("skipped: our own output prefix", extra=fields)
            return IngestOutcome(image_id, source.display, Outcome.SKIPPED, reason="own-output")
        try:
            job = self._job(source)
        except (NotFound, CollectionClosed) as error:
            # nothing to write into: an unknown collection, or one being erased (never
            # resurrected by a late upload); acknowledged, and visible in the log
            logger.warning("skipped: %s", error.message, extra=fields)
            return IngestOutcome(image_id, source.display, Outcome.SKIPPED, reason=error.code)
        try:
            return self._ingest(job, data, fields)
        except CollectionClosed as error:  # the erase began while this image was processed
            logger.warning("skipped: %s", error.message, extra=fields)
            self.results.drop_crops(job)
            return IngestOutcome(image_id, source.display, Outcome.SKIPPED, reason=error.code)

    def run_video_task(self, task: VideoTask) -> IngestOutcome:
        """One step of a video (a chunk, or the finish) queued on ingest-requests."""
        fields = log_fields(video_id=task.video_id, collection=task.collection_id)
        source = SourceRef(kind="video", name=task.video_id, identity=task.video_id).in_collection(
            task.collection_id
        )
        if self.videos is None:
            raise ConfigError("this ingest service does not process videos")
        try:
            job = self._job(source)
        except (NotFound, CollectionClosed) as error:
            logger.warning("skipped: %s", error.message, extra=fields)
            return IngestOutcome(task.video_id, source.display, Outcome.SKIPPED, reason=error.code)
        try:
            if task.step == "chunk":
                return self.videos.chunk(job, task)
            return self.videos.finish(job, task)
        except CollectionClosed as error:  # the erase began while this step ran
            logger.warning("skipped: %s", error.message, extra=fields)
            return IngestOutcome(task.video_id, source.display, Outcome.SKIPPED, reason=error.code)

    def record_expired(self, source: SourceRef, age_s: float) -> IngestOutcome:
        """An event too old to retry: the image is recorded ``failed(event-expired)``
        (unless it already has a final record), so it is visible and can be re-queued."""
        try:
            job = self._job(source)
        except (NotFound, CollectionClosed) as error:
            return IngestOutcome(
                source.image_id, source.display, Outcome.SKIPPED, reason=error.code
            )
        existing = job.store.get_image(source.image_id)
        if existing is not None and existing.status in (ImageStatus.DONE, ImageStatus.FAILED):
            return IngestOutcome(
                source.image_id, source.display, Outcome.DUPLICATE, reason="already final"
            )
        return self.results.fail(
            job, EventExpired(f"event {age_s:.0f} s old: dropped, not retried"), existing
        )

    def _job(self, source: SourceRef) -> IngestJob:
        record = self.collections.require_active(source.collection_id)
        policy = CollectionSettings.from_record(record.settings)
        return IngestJob(
            source=source,
            store=self.stores(source.collection_id),
            pipeline=self.pipelines(policy.embedder),
            policy=policy.quality.apply(self.settings.quality),
            max_faces=policy.max_faces,
        )

    def _ingest(
        self, job: IngestJob, data: bytes | None, fields: dict[str, object]
    ) -> IngestOutcome:
        source, store = job.source, job.store
        image_id = source.image_id
        limit = self.settings.vision.max_image_bytes
        if self.videos is not None and (
            source.claims_video or (data is None and self._large_video(source, limit))
        ):
            return self.videos.plan(job, data)
        if source.size is not None and source.size > limit:
            return self.results.fail(
                job, ImageTooLarge(f"{source.size} bytes is over the {limit}-byte cap"), None
            )
        existing = store.get_image(image_id)
        done = existing is not None and existing.status is ImageStatus.DONE
        if done and existing is not None and existing.model == job.model:
            # Re-publish the stored embeddings: the indexer skips live faces, and a face
            # recorded but never indexed (a crash between publish and commit in embedded
            # mode, a dropped message) becomes searchable again. No download, no model.
            republished = self.results.republish(job, image_id)
            logger.info("already done: redelivery acknowledged, embeddings re-sent", extra=fields)
            return IngestOutcome(
                image_id,
                source.display,
                Outcome.DUPLICATE,
                faces=existing.face_count,
                reason=f"{republished} embeddings re-published",
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
            return self.results.fail(
                job,
                TooManyAttempts(f"gave up after {existing.attempts} processing attempts"),
                existing,
            )
        if job.max_faces is not None and store.counts().faces >= job.max_faces:
            return self.results.fail(
                job,
                QuotaExceeded(
                    f"collection {source.collection_id} holds its maximum of {job.max_faces} faces"
                ),
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
                return self.results.fail(job, error, existing)
            if source.generation is not None and generation not in (None, source.generation):
                logger.info(
                    "object was overwritten since the event; the newer event ingests it",
                    extra=fields,
                )
                return IngestOutcome(
                    image_id, source.display, Outcome.SUPERSEDED, reason="overwritten"
                )
        if self.videos is not None and is_video(data):  # sniffed by content, never the name
            return self.videos.plan(job, data)
        if len(data) > limit:
            return self.results.fail(
                job, ImageTooLarge(f"{len(data)} bytes is over the {limit}-byte cap"), existing
            )
        if sniff_format(data) is None and not source.claims_image():
            logger.info("skipped: not an image (content sniffing)", extra=fields)
            return IngestOutcome(image_id, source.display, Outcome.SKIPPED, reason="not-an-image")
        attempts = (existing.attempts if existing else 0) + 1
        record = store.put_image(
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
            result = job.pipeline.process(data, policy=job.policy)
        except ModelError:
            raise  # a broken instance, not a bad image: let the platform retry elsewhere
        except FaceSearchError as error:
            if error.retryable:
                raise
            return self.results.fail(job, error, record)
        return self.results.store(job, record, result, time.perf_counter() - start)

    def _large_video(self, source: SourceRef, limit: int) -> bool:
        """An object over the image cap is refused unless its first bytes say video."""
        if self.videos is None or source.size is None or source.size <= limit:
            return False  # read whole below, and sniffed then (no extra request per photo)
        where: dict[str, object]
        if source.kind == "gcs":
            where = {"kind": "gcs", "bucket": source.bucket, "name": source.name}
            if source.generation is not None:
                where["generation"] = source.generation
        elif source.kind == "file":
            where = {"kind": "file", "path": source.name}
        else:
            return False
        try:
            with self.videos.open_video(where) as reader:
                return is_video(reader.read(SNIFF_BYTES))
        except NotFound:
            return False  # gone: the normal path records it superseded


__all__ = [
    "MAX_PROCESSING_ATTEMPTS",
    "IngestJob",
    "IngestOutcome",
    "IngestService",
    "Loader",
    "Outcome",
]
