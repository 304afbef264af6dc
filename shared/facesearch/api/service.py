"""The query service: search, match, records, persons, forget, stats, health.

Transport-free: takes decoded inputs, returns the response models of
:mod:`facesearch.api.schemas`, raises typed errors. The HTTP layer
(:mod:`facesearch.api.app`) parses, authenticates and renders; the CLI and
tests can call this directly.

Forgetting is ordered so that a failure half-way can simply be retried:
crops first, then the index (tombstones locally, a face-deletions message in
the cloud), then the metadata records. Search drops any hit whose record no
longer exists, so a forgotten face is unsearchable as soon as its record is
gone, even before the indexer has applied the tombstone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesearch.api.crops import CropUrls
from facesearch.api.problems import BadRequest, RateLimited
from facesearch.api.schemas import (
    FaceOut,
    FacePage,
    Forgotten,
    Health,
    ImageOut,
    IndexStats,
    Match,
    MatchFace,
    MatchResponse,
    PersonOut,
    PersonPage,
    QueryFace,
    SearchParams,
    SearchResponse,
    Stats,
)
from facesearch.config import Settings
from facesearch.errors import (
    ConfigError,
    FaceSearchError,
    InvalidEmbedding,
    NoFace,
    NotFound,
)
from facesearch.index.reader import IndexReader
from facesearch.index.vectors import normalise
from facesearch.logs import log_fields
from facesearch.storage.metadata import FaceRecord, ImageRecord, MetadataStore, PersonRecord
from facesearch.vision.matching import compare_faces, pick_face
from facesearch.vision.pipeline import FacePipeline
from facesearch.vision.types import Face, ImageResult

logger = logging.getLogger(__name__)

#: extra candidates fetched per face so that hits dropped after the ANN search
#: (records forgotten but not yet tombstoned, the probe face itself) rarely shorten k
CANDIDATE_SLACK = 8

#: forget the index entries of these face ids; returns "tombstoned" or "queued"
IndexForgetter = Callable[[list[str]], str]


@dataclass(frozen=True)
class ImageProbe:
    data: bytes


@dataclass(frozen=True)
class EmbeddingProbe:
    vector: list[float]


@dataclass(frozen=True)
class FaceIdProbe:
    face_id: str


Probe = ImageProbe | EmbeddingProbe | FaceIdProbe


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _box(face: Face) -> list[float]:
    return [round(float(v), 1) for v in face.detection.box]


class QueryService:
    """One per process (Cloud Run instance): models, index reader and stores load once."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: MetadataStore,
        crops: CropUrls,
        forget_index: IndexForgetter,
        pipeline: FacePipeline,
        open_reader: Callable[[str], IndexReader] | None = None,
        reader: IndexReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.crops = crops
        self._forget_index = forget_index
        self.pipeline = pipeline
        self._open_reader = open_reader
        self._reader = reader
        self._reader_lock = threading.Lock()
        self._clock = clock
        self._refreshed_at = clock()
        self._image_slots = threading.BoundedSemaphore(settings.api.query_max_concurrent_images)

    # --- shared pieces -------------------------------------------------------------------

    @property
    def reader(self) -> IndexReader:
        """The index, opened on first use and re-read every index_refresh_interval_s."""
        with self._reader_lock:
            if self._reader is None:
                if self._open_reader is None:
                    raise ConfigError("the query service was built without an index")
                self._reader = self._open_reader(self.pipeline.embedder.model_id)
                self._refreshed_at = self._clock()
            reader = self._reader
            due = self._clock() - self._refreshed_at >= self.settings.index.refresh_interval_s
            if due:
                self._refreshed_at = self._clock()
        if due:
            try:
                reader.refresh()
            except FaceSearchError as exc:  # keep serving the snapshot we have
                logger.warning(
                    "index refresh failed", extra=log_fields(error_type=type(exc).__name__)
                )
        return reader

    def refresh_index(self) -> None:
        self.reader.refresh()

    @property
    def default_threshold(self) -> float:
        chosen = self.settings.vision.match_threshold
        if chosen is None:
            chosen = self.pipeline.embedder.match_threshold
        if chosen is None:
            raise ConfigError(
                f"no match threshold for {self.pipeline.embedder.model_id}: "
                "set FACESEARCH_MATCH_THRESHOLD"
            )
        return float(chosen)

    @contextmanager
    def _image_slot(self) -> Iterator[None]:
        """Bound concurrent detections: beyond the limit the caller gets 429, not a queue."""
        if not self._image_slots.acquire(blocking=False):
            raise RateLimited("too many image requests in flight; retry shortly")
        try:
            yield
        finally:
            self._image_slots.release()

    def _process(self, data: bytes) -> ImageResult:
        with self._image_slot():
            return self.pipeline.process(data)

    # --- search ---------------------------------------------------------------------------

    def search(self, probe: Probe, params: SearchParams, *, base_url: str) -> SearchResponse:
        start = time.perf_counter()
        k = params.k or self.settings.api.search_default_k
        if k > self.settings.api.search_max_k:
            raise BadRequest(f"k must be <= {self.settings.api.search_max_k}")
        threshold = params.threshold if params.threshold is not None else self.default_threshold
        timings: dict[str, float] = {}
        exclude: str | None = None
        if isinstance(probe, ImageProbe):
            result = self._process(probe.data)
            timings.update({name: round(ms, 3) for name, ms in result.timings_ms.items()})
            faces, vectors = self._select_faces(result, params)
        elif isinstance(probe, EmbeddingProbe):
            vectors = [self._check_embedding(probe.vector)]
            faces = [QueryFace()]
        else:
            record = self.store.get_face(probe.face_id)
            if record is None:
                raise NotFound(f"face {probe.face_id} not found")
            vectors = [record.vector()]
            faces = [self._query_face_from_record(record)]
            exclude = record.face_id
        live_rows = [i for i, face in enumerate(faces) if face.skipped is None]
        reader = self.reader
        t = time.perf_counter()
        hits = (
            reader.search(np.stack([vectors[i] for i in live_rows]), k + CANDIDATE_SLACK)
            if live_rows and reader.manifest is not None
            else [[] for _ in live_rows]
        )
        timings["ann"] = _ms(t)
        t = time.perf_counter()
        wanted = {h.face_id for row in hits for h in row if h.similarity >= threshold}
        wanted.discard(exclude or "")
        records = self.store.get_faces(sorted(wanted)) if wanted else {}
        names = self._person_names({r.person_id for r in records.values() if r.person_id})
        for row, face_hits in zip(live_rows, hits, strict=True):
            matches: list[Match] = []
            for hit in face_hits:
                record = records.get(hit.face_id)
                if record is None or hit.similarity < threshold:
                    continue  # forgotten (tombstone pending), the probe itself, or too far
                matches.append(
                    Match(
                        face_id=hit.face_id,
                        image_id=record.image_id,
                        similarity=round(float(hit.similarity), 6),
                        person_id=record.person_id,
                        person_name=names.get(record.person_id or ""),
                        crop_url=self.crops.url(record.face_id, record.crop_url, base_url),
                    )
                )
                if len(matches) == k:
                    break
            faces[row] = faces[row].model_copy(update={"matches": matches})
        timings["metadata"] = _ms(t)
        timings["total"] = _ms(start)
        return SearchResponse(
            model=self.pipeline.embedder.model_id,
            k=k,
            threshold=threshold,
            faces=faces,
            index_size=reader.live_count,
            timings_ms=timings,
        )

    def _check_embedding(self, vector: list[float]) -> np.ndarray:
        dims = self.pipeline.embedder.dim
        manifest = self.reader.manifest
        if manifest is not None:
            dims = manifest.dims
        if len(vector) != dims:
            raise InvalidEmbedding(f"expected a {dims}-d embedding, got {len(vector)}-d")
        row: np.ndarray = normalise(np.asarray(vector, dtype=np.float64), dims=dims)[0]
        return row

    def _select_faces(
        self, result: ImageResult, params: SearchParams
    ) -> tuple[list[QueryFace], list[np.ndarray]]:
        if not result.faces:
            raise NoFace("no face found in the image")
        chosen = result.faces
        if params.face_index is not None:
            chosen = [pick_face(result, params.face_index, label="the image")]
        elif params.bbox is not None:
            best = max(
                result.faces, key=lambda f: _iou(f.detection.box.tolist(), params.bbox or [])
            )
            if _iou(best.detection.box.tolist(), params.bbox) <= 0.0:
                raise NoFace("no detected face overlaps the given bbox")
            chosen = [best]
        faces, vectors = [], []
        for face in chosen:
            quality = face.quality
            skipped = None
            if params.min_liveness is not None and (face.liveness or 0.0) < params.min_liveness:
                skipped = f"liveness {face.liveness or 0.0:.3f} below min_liveness"
            elif params.min_quality is not None and (
                quality is None or quality.score < params.min_quality
            ):
                skipped = f"quality {quality.score if quality else 0.0:.2f} below min_quality"
            faces.append(
                QueryFace(
                    face_index=face.index,
                    bbox=_box(face),
                    det_score=round(face.detection.score, 4),
                    liveness=None if face.liveness is None else round(face.liveness, 4),
                    live=face.live,
                    quality=None if quality is None else quality.score,
                    quality_reasons=list(quality.reasons) if quality else [],
                    skipped=skipped,
                )
            )
            assert face.embedding is not None
            vectors.append(np.asarray(face.embedding, dtype=np.float32))
        return faces, vectors

    @staticmethod
    def _query_face_from_record(record: FaceRecord) -> QueryFace:
        return QueryFace(
            face_index=record.face_index,
            bbox=[float(v) for v in record.bbox],
            det_score=record.det_score,
            liveness=record.liveness,
            live=record.live,
            quality=record.quality.get("score"),
            quality_reasons=list(record.quality.get("reasons") or []),
        )

    def _person_names(self, person_ids: set[str]) -> dict[str, str]:
        names = {}
        for person_id in person_ids:
            person = self.store.get_person(person_id)
            if person is not None:
                names[person_id] = person.name
        return names

    # --- match ----------------------------------------------------------------------------

    def match(
        self,
        image_a: bytes,
        image_b: bytes,
        *,
        face_a: int | None = None,
        face_b: int | None = None,
        largest: bool = False,
        threshold: float | None = None,
    ) -> MatchResponse:
        start = time.perf_counter()
        results = [self._process(image_a), self._process(image_b)]
        faces = [
            pick_face(result, choice, label=label, largest=largest)
            for result, choice, label in zip(
                results, (face_a, face_b), ("image A", "image B"), strict=True
            )
        ]
        chosen = threshold if threshold is not None else self.default_threshold
        verdict = compare_faces(faces[0], faces[1], self.pipeline.embedder, chosen)
        out_faces = []
        for result, face in zip(results, faces, strict=True):
            quality = face.quality
            out_faces.append(
                MatchFace(
                    face_index=face.index,
                    face_count=len(result.faces),
                    bbox=_box(face),
                    det_score=round(face.detection.score, 4),
                    liveness=None if face.liveness is None else round(face.liveness, 4),
                    live=face.live,
                    quality=None if quality is None else quality.score,
                    quality_reasons=list(quality.reasons) if quality else [],
                )
            )
        return MatchResponse(
            same_person=verdict.same_person,
            similarity=round(verdict.similarity, 6),
            distance=round(verdict.distance, 6),
            threshold=verdict.threshold,
            model=verdict.model,
            faces=out_faces,
            timings_ms={"total": _ms(start)},
        )

    # --- records ---------------------------------------------------------------------------

    def face_out(self, record: FaceRecord, base_url: str, names: dict[str, str]) -> FaceOut:
        return FaceOut(
            face_id=record.face_id,
            image_id=record.image_id,
            face_index=record.face_index,
            bbox=[float(v) for v in record.bbox],
            landmarks=[[float(x), float(y)] for x, y in record.landmarks],
            det_score=record.det_score,
            liveness=record.liveness,
            live=record.live,
            quality=dict(record.quality),
            model=record.model,
            person_id=record.person_id,
            person_name=names.get(record.person_id or ""),
            crop_url=self.crops.url(record.face_id, record.crop_url, base_url),
            created_at=record.created_at,
            updated_at=record.updated_at,
        )

    def _faces_out(self, records: Sequence[FaceRecord], base_url: str) -> list[FaceOut]:
        names = self._person_names({r.person_id for r in records if r.person_id})
        return [self.face_out(r, base_url, names) for r in records]

    def get_face(self, face_id: str, *, base_url: str) -> FaceOut:
        record = self.store.get_face(face_id)
        if record is None:
            raise NotFound(f"face {face_id} not found")
        return self._faces_out([record], base_url)[0]

    def _all_faces(self, **where: str) -> list[FaceRecord]:
        out: list[FaceRecord] = []
        cursor: str | None = None
        while True:
            page = self.store.list_faces(cursor=cursor, limit=1000, **where)  # type: ignore[arg-type]
            out.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return out

    def get_image(self, image_id: str, *, base_url: str) -> ImageOut:
        image = self.store.get_image(image_id)
        if image is None:
            raise NotFound(f"image {image_id} not found")
        faces = self._faces_out(self._all_faces(image_id=image_id), base_url)
        return _image_out(image, faces)

    def list_faces(
        self,
        *,
        person_id: str | None,
        image_id: str | None,
        cursor: str | None,
        limit: int,
        base_url: str,
    ) -> FacePage:
        page = self.store.list_faces(
            person_id=person_id, image_id=image_id, cursor=cursor, limit=limit
        )
        return FacePage(items=self._faces_out(page.items, base_url), next_cursor=page.next_cursor)

    def set_face_person(self, face_id: str, person_id: str | None, *, base_url: str) -> FaceOut:
        record = self.store.set_face_person(face_id, person_id)
        return self._faces_out([record], base_url)[0]

    # --- persons -----------------------------------------------------------------------------

    def create_person(self, name: str, metadata: dict[str, Any]) -> PersonOut:
        return _person_out(self.store.create_person(name, metadata))

    def get_person(self, person_id: str) -> PersonOut:
        person = self.store.get_person(person_id)
        if person is None:
            raise NotFound(f"person {person_id} not found")
        return _person_out(person)

    def update_person(
        self, person_id: str, *, name: str | None, metadata: dict[str, Any] | None
    ) -> PersonOut:
        return _person_out(self.store.update_person(person_id, name=name, metadata=metadata))

    def list_persons(self, *, cursor: str | None, limit: int) -> PersonPage:
        page = self.store.list_persons(cursor=cursor, limit=limit)
        return PersonPage(items=[_person_out(p) for p in page.items], next_cursor=page.next_cursor)

    # --- forget --------------------------------------------------------------------------------

    def _forget(self, faces: Sequence[FaceRecord], reason: str) -> tuple[int, str]:
        crops = 0
        for face in faces:
            if face.crop_url:
                self.crops.delete(face.crop_url)
                crops += 1
        face_ids = [f.face_id for f in faces]
        state = self._forget_index(face_ids) if face_ids else "tombstoned"
        logger.info(
            "forgetting faces",
            extra=log_fields(reason=reason, faces=len(face_ids), crops=crops, index=state),
        )
        return crops, state

    def forget_image(self, image_id: str) -> Forgotten:
        if self.store.get_image(image_id) is None:
            raise NotFound(f"image {image_id} not found")
        faces = self._all_faces(image_id=image_id)
        crops, state = self._forget(faces, f"image {image_id}")
        deleted = self.store.delete_image(image_id)
        self._after_forget(state)
        return Forgotten(
            deleted_faces=sorted(set(deleted) | {f.face_id for f in faces}),
            crops_deleted=crops,
            index=state,
        )

    def forget_person(self, person_id: str) -> Forgotten:
        """Delete the person *and* their faces (right to be forgotten), not just the label."""
        if self.store.get_person(person_id) is None:
            raise NotFound(f"person {person_id} not found")
        faces = self._all_faces(person_id=person_id)
        crops, state = self._forget(faces, f"person {person_id}")
        gone = {f.face_id for f in faces}
        # The port has no per-face delete: rewrite each affected image's face set without them.
        for image_id in sorted({f.image_id for f in faces}):
            keep = [f for f in self._all_faces(image_id=image_id) if f.face_id not in gone]
            self.store.put_faces(image_id, keep)
        self.store.delete_person(person_id)
        self._after_forget(state)
        return Forgotten(deleted_faces=sorted(gone), crops_deleted=crops, index=state)

    def _after_forget(self, state: str) -> None:
        if state == "tombstoned":  # applied to the index already: show it right away
            with suppress(FaceSearchError):
                self.reader.refresh()

    # --- operations ------------------------------------------------------------------------------

    def models(self) -> dict[str, str]:
        return {
            "embedder": self.pipeline.embedder.model_id,
            "detector": "mtcnn",
            "liveness": self.settings.vision.liveness_model,
        }

    def stats(self) -> Stats:
        counts = self.store.counts()
        reader = self.reader
        manifest = reader.manifest
        index = IndexStats(
            live_faces=reader.live_count,
            vectors=manifest.vector_count if manifest else 0,
            segments=len(manifest.segments) if manifest else 0,
            size_bytes=sum(s.index_bytes + s.ids_bytes for s in manifest.segments)
            if manifest
            else 0,
            manifest_version=manifest.version if manifest else None,
            model=str(manifest.model) if manifest else None,
        )
        return Stats(
            faces=counts.faces,
            images=counts.images,
            persons=counts.persons,
            images_by_status=dict(counts.images_by_status),
            index=index,
            models=self.models(),
        )

    def health(self) -> Health:
        problems: list[str] = []
        models: dict[str, str] = {}
        try:
            self.pipeline.warm_up()
            models = self.models()
        except FaceSearchError as exc:
            problems.append(f"models: {exc.code}")
        readable, faces = False, None
        if not problems:
            try:
                reader = self.reader
                reader.refresh()
                readable, faces = True, reader.live_count
            except FaceSearchError as exc:
                problems.append(f"index: {exc.code}")
        return Health(
            status="ok" if not problems else "unavailable",
            env=self.settings.env,
            models=models,
            index_readable=readable,
            index_faces=faces,
            problems=problems,
        )


def _image_out(image: ImageRecord, faces: list[FaceOut]) -> ImageOut:
    return ImageOut(
        image_id=image.image_id,
        source=image.source,
        status=str(image.status),
        error_code=image.error_code,
        error_message=image.error_message,
        face_count=image.face_count,
        width=image.width,
        height=image.height,
        format=image.format,
        model=image.model,
        created_at=image.created_at,
        updated_at=image.updated_at,
        faces=faces,
    )


def _person_out(person: PersonRecord) -> PersonOut:
    return PersonOut(
        person_id=person.person_id,
        name=person.name,
        metadata=dict(person.metadata),
        created_at=person.created_at,
        updated_at=person.updated_at,
    )
