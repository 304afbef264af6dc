"""Embedded mode: the whole event pipeline in one process, no cloud, no services.

Local-directory blob stores (index, crops), an in-process bus, SQLite
metadata and CPU onnxruntime, wired to the *same* ingest and indexer services
that the Cloud Run functions run. Publishing an embedding queues it on the
in-process bus; :meth:`EmbeddedSystem.flush` delivers the queue to the indexer
in batches (one segment per batch: the in-process twin of group commit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesearch.backends import services
from facesearch.backends.local import LocalBackend
from facesearch.config import Settings
from facesearch.index.reader import IndexReader
from facesearch.ingest.entry import bus_handler
from facesearch.ingest.service import IngestOutcome, IngestService, Outcome
from facesearch.ingest.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, SourceRef
from facesearch.ingest.video import VideoProgress
from facesearch.storage.metadata import (
    DEFAULT_COLLECTION,
    FaceRecord,
    ImageRecord,
    MetadataStore,
    check_collection_id,
)
from facesearch.storage.videos import VideoRecord, VideoStatus
from facesearch.vision.pipeline import FacePipeline
from facesearch.vision.types import Face

logger = logging.getLogger(__name__)

#: Images ingested between two index commits (bigger = fewer, larger segments).
COMMIT_EVERY_IMAGES = 64


@dataclass
class IngestSummary:
    images: int = 0  # inputs: images and videos
    done: int = 0
    duplicates: int = 0
    faces: int = 0  # faces of images, tracks of videos
    videos: int = 0  # videos processed (their tracks count as faces)
    video_ids: list[str] = field(default_factory=list)  # every video given, whatever became of it
    rejected: dict[str, list[str]] = field(default_factory=dict)  # reason -> sources
    skipped: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def add(self, outcome: IngestOutcome) -> None:
        self.images += 1
        if outcome.media == "video" and outcome.image_id:
            self.video_ids.append(outcome.image_id)
        if outcome.outcome is Outcome.DONE:
            self.done += 1
            self.faces += outcome.faces
            self.videos += int(outcome.media == "video")
        elif outcome.outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        elif outcome.outcome is Outcome.FAILED:
            self.rejected.setdefault(outcome.error_code or "failed", []).append(outcome.source)
        else:
            self.skipped.setdefault(outcome.reason or str(outcome.outcome), []).append(
                outcome.source
            )


@dataclass(frozen=True)
class Match:
    face_id: str
    similarity: float
    image_id: str  # the image's, or the video's id
    source: str  # the matched face's source image or video (path or gs:// URL)
    face: FaceRecord | None
    moments: tuple[tuple[int, int], ...] = ()  # a video track's (start_ms, end_ms) spans


@dataclass(frozen=True)
class FaceMatches:
    face: Face
    matches: list[Match]


def iter_image_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files given directly, and image- or video-named files under given folders (sorted);
    what a file is, is decided by its content when it is ingested."""
    wanted = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in wanted:
                    yield child
        else:
            yield path


class EmbeddedSystem:
    """Ingest, index and search one collection on this machine, with the cloud code paths.

    A collection other than ``default`` must exist (``facesearch collections create``):
    ingest into an unknown or erasing one is skipped, as in the cloud.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        pipeline: FacePipeline | None = None,
        collection_id: str = DEFAULT_COLLECTION,
        on_video_progress: VideoProgress | None = None,
        cluster: bool = True,
    ) -> None:
        """``cluster=False`` leaves face-events unconsumed (no persons are found): for
        fixtures that label faces by hand."""
        if settings.backend != "local":
            settings = settings.with_overrides(backend="local")
        self.settings = settings
        self.backend = LocalBackend(settings)
        if pipeline is not None:
            self.backend.override(pipeline=pipeline)
        self.collection_id = check_collection_id(collection_id)
        policy = self.backend.collections().settings(self.collection_id)
        self.pipeline = self.backend.pipeline(policy.embedder)
        self.metadata: MetadataStore = self.backend.metadata(self.collection_id)
        self.bus = self.backend.bus()
        self.ingest_service: IngestService = services.ingest_service(self.backend)
        self.index_store = self.backend.index_store(collection_id=self.collection_id)
        self.writer = self.backend.index_writer(collection_id=self.collection_id)
        self.indexer = services.indexer_service(self.backend)
        self.bus.subscribe(settings.storage.embeddings_topic, self.indexer.handle_batch)
        self.bus.subscribe(settings.storage.deletions_topic, self.indexer.handle_batch)
        # face-events -> persons, as the clusterer function does in the cloud (drained by
        # the same flush, after the index commit that announced them)
        if cluster:
            self.clusterer = services.clusterer_service(self.backend)
            self.bus.subscribe(settings.storage.events_topic, self.clusterer.handle_batch)
        # a video's chunk and finish tasks, handled one by one as Pub/Sub pushes them
        self.bus.subscribe(settings.storage.ingest_topic, bus_handler(self.ingest_service))
        if self.ingest_service.videos is not None:
            self.ingest_service.videos.on_progress = on_video_progress
        self._reader: IndexReader | None = None

    def flush(self) -> int:
        """Deliver queued embeddings/deletions to the indexer; returns messages applied."""
        return self.bus.drain()

    def ingest_files(
        self,
        paths: Sequence[Path],
        *,
        on_result: Callable[[Path, IngestOutcome], None] | None = None,
    ) -> IngestSummary:
        summary = IngestSummary()
        start = time.perf_counter()
        for count, path in enumerate(paths, 1):
            outcome = self.ingest_file(path)
            summary.add(outcome)
            if on_result is not None:
                on_result(path, outcome)
            if count % COMMIT_EVERY_IMAGES == 0:
                self.flush()
        self.flush()
        summary.seconds = time.perf_counter() - start
        return summary

    def ingest_file(self, path: Path) -> IngestOutcome:
        """One file; a video is processed to the end (its chunks, then the finish) here."""
        try:
            if path.stat().st_size > self.settings.vision.max_image_bytes:
                # larger than any image: maybe a video, never read whole (ingest sniffs it)
                source = SourceRef.local_large_file(str(path), created_time=time.time())
                outcome = self.ingest_service.ingest(source.in_collection(self.collection_id))
            else:
                data = path.read_bytes()
                source = SourceRef.local_file(str(path), data, created_time=time.time())
                source = source.in_collection(self.collection_id)
                outcome = self.ingest_service.ingest(source, data)
        except OSError as exc:
            return IngestOutcome(
                "", str(path), Outcome.FAILED, error_code="unreadable", reason=str(exc)
            )
        if outcome.outcome is Outcome.QUEUED:
            return self._finish_video(outcome)
        return outcome

    def _finish_video(self, queued: IngestOutcome) -> IngestOutcome:
        """Run a planned video's tasks (and the indexer) now; its final outcome."""
        self.flush()
        video = self.metadata.get_video(queued.image_id)
        if video is None:
            return IngestOutcome(
                queued.image_id, queued.source, Outcome.FAILED, reason="gone", media="video"
            )
        if video.status is VideoStatus.DONE:
            return IngestOutcome(
                video.video_id,
                queued.source,
                Outcome.DONE,
                faces=video.track_count,
                timings_ms=dict(video.timings_ms),
                media="video",
            )
        return IngestOutcome(
            video.video_id,
            queued.source,
            Outcome.FAILED,
            error_code=video.error_code or "video-unfinished",
            reason=video.error_message or f"video left {video.status}",
            media="video",
        )

    def reader(self) -> IndexReader:
        if self._reader is None:
            self._reader = self.backend.index_reader(
                expected_model=self.pipeline.embedder.model_id, collection_id=self.collection_id
            )
        else:
            self._reader.refresh()
        return self._reader

    def search(self, data: bytes, *, k: int = 5) -> list[FaceMatches]:
        """Every face in ``data`` with its top-``k`` indexed matches (raises for a bad image)."""
        result = self.pipeline.process(data)
        faces = [f for f in result.faces if f.embedding is not None]
        if not faces:
            return []
        hits = self.reader().search(
            np.stack([f.embedding for f in faces if f.embedding is not None]), k
        )
        records = self.metadata.get_faces([h.face_id for row in hits for h in row])
        tracks = self.metadata.get_tracks([r.track_id for r in records.values() if r.track_id])
        sources: dict[str, str] = {}
        out = []
        for face, row in zip(faces, hits, strict=True):
            matches = []
            for hit in row:
                record = records.get(hit.face_id)
                image_id = record.image_id if record else hit.face_id.rsplit("-", 1)[0]
                if image_id not in sources:
                    sources[image_id] = self._source(
                        image_id, video=bool(record and record.video_id)
                    )
                track = tracks.get(record.track_id or "") if record else None
                matches.append(
                    Match(
                        hit.face_id,
                        hit.similarity,
                        image_id,
                        sources[image_id],
                        record,
                        track.spans if track else (),
                    )
                )
            out.append(FaceMatches(face, matches))
        return out

    def _source(self, image_id: str, *, video: bool) -> str:
        item: ImageRecord | VideoRecord | None = (
            self.metadata.get_video(image_id) if video else self.metadata.get_image(image_id)
        )
        return item.source if item else "?"


__all__ = ["EmbeddedSystem", "FaceMatches", "IngestSummary", "Match", "iter_image_files"]
