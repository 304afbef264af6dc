"""Search and match: the two questions that run the vision pipeline on a request.

Search answers "who in the collection looks like this face?" for every face of an
image, one chosen face, a raw embedding or a stored face; match answers "are these
two faces the same person?". Detection is the expensive part, so at most
``query_max_concurrent_images`` requests run it at once per instance; the rest
get 429 at once instead of queueing into Cloud Run's request timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from facesearch.api.crops import CropUrls
from facesearch.api.index_view import IndexView
from facesearch.api.schemas import (
    Match,
    MatchFace,
    MatchOptions,
    MatchResponse,
    PersonMatchOut,
    QueryFace,
    SearchParams,
    SearchResponse,
)
from facesearch.api.videos import moments_of
from facesearch.config import Settings
from facesearch.errors import (
    BadRequest,
    ConfigError,
    InvalidEmbedding,
    NoFace,
    NotFound,
    RateLimited,
)
from facesearch.index.reader import SearchHit
from facesearch.index.vectors import normalise
from facesearch.people.service import PeopleService
from facesearch.storage.metadata import MetadataStore
from facesearch.vision.matching import compare_faces, pick_face
from facesearch.vision.pipeline import FacePipeline
from facesearch.vision.types import Face, ImageResult

#: extra candidates fetched per face so that hits dropped after the ANN search
#: (records forgotten but not yet tombstoned, the probe face itself) rarely shorten k
CANDIDATE_SLACK = 8
#: with group_by=person, nearest faces fetched per person asked for (their persons are the
#: candidates ranked by centroid)
PERSON_CANDIDATE_FACES = 8


@dataclass(frozen=True)
class ImageProbe:
    data: bytes


@dataclass(frozen=True)
class UrlProbe:
    """An image to fetch first (SSRF-safe), inside the same concurrency slot as detection."""

    url: str


@dataclass(frozen=True)
class EmbeddingProbe:
    vector: list[float]


@dataclass(frozen=True)
class FaceIdProbe:
    face_id: str


Probe = ImageProbe | UrlProbe | EmbeddingProbe | FaceIdProbe
#: one side of a match: the image's bytes, or a URL to fetch
ImageInput = bytes | UrlProbe


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class SearchService:
    """Search by image / embedding / face id, and match two images."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: MetadataStore,
        crops: CropUrls,
        pipeline: FacePipeline,
        index: IndexView,
        fetch: Callable[[str], bytes],
        people: PeopleService,
        threshold: float | None = None,
    ) -> None:
        self.settings = settings
        self.people = people
        self.fetch = fetch
        self._threshold = threshold
        self.store = store
        self.crops = crops
        self.pipeline = pipeline
        self.index = index
        self._image_slots = threading.BoundedSemaphore(settings.api.query_max_concurrent_images)

    @property
    def default_threshold(self) -> float:
        """The collection's threshold, else the settings', else the embedder's calibrated one."""
        chosen = self._threshold
        if chosen is None:
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

    def _process(self, image: ImageInput, timings: dict[str, float]) -> ImageResult:
        """Fetch (for a URL) and detect inside one slot: slow URLs count against the limit."""
        with self._image_slot():
            if isinstance(image, UrlProbe):
                start = time.perf_counter()
                image = self.fetch(image.url)
                timings["fetch"] = timings.get("fetch", 0.0) + _ms(start)
            return self.pipeline.process(image)

    # --- search ---------------------------------------------------------------------------

    def search(self, probe: Probe, params: SearchParams) -> SearchResponse:
        start = time.perf_counter()
        k = params.k or self.settings.api.search_default_k
        if k > self.settings.api.search_max_k:
            raise BadRequest(f"k must be <= {self.settings.api.search_max_k}")
        threshold = params.threshold if params.threshold is not None else self.default_threshold
        timings: dict[str, float] = {}
        exclude: str | None = None
        if isinstance(probe, ImageProbe | UrlProbe):
            result = self._process(probe.data if isinstance(probe, ImageProbe) else probe, timings)
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
            faces = [QueryFace.from_record(record)]
            exclude = record.face_id
        live_rows = [i for i, face in enumerate(faces) if face.skipped is None]
        reader = self.index.reader
        t = time.perf_counter()
        # persons: candidates are the persons of the nearest faces; fetch enough faces that
        # a person with many close faces does not crowd out the others
        fetch = k * PERSON_CANDIDATE_FACES if params.group_by == "person" else k
        hits = (
            reader.search(np.stack([vectors[i] for i in live_rows]), fetch + CANDIDATE_SLACK)
            if live_rows and reader.manifest is not None
            else [[] for _ in live_rows]
        )
        timings["ann"] = _ms(t)
        t = time.perf_counter()
        if params.group_by == "person":
            self._persons(
                faces,
                rows=live_rows,
                vectors=vectors,
                hits=hits,
                k=k,
                exclude=exclude,
                threshold=params.threshold,
            )
        else:
            self._matches(
                faces, rows=live_rows, hits=hits, k=k, exclude=exclude, threshold=threshold
            )
        timings["metadata"] = _ms(t)
        timings["total"] = _ms(start)
        if params.group_by == "person":
            threshold = self._person_threshold(params.threshold)
        return SearchResponse(
            model=self.pipeline.embedder.model_id,
            k=k,
            threshold=threshold,
            faces=faces,
            index_size=reader.live_count,
            timings_ms=timings,
        )

    def _matches(
        self,
        faces: list[QueryFace],
        *,
        rows: list[int],
        hits: list[list[SearchHit]],
        k: int,
        exclude: str | None,
        threshold: float,
    ) -> None:
        """Each query face's matching faces (with who they are), best first."""
        wanted = {h.face_id for row in hits for h in row if h.similarity >= threshold}
        wanted.discard(exclude or "")
        records = self.store.get_faces(sorted(wanted)) if wanted else {}
        assigned = self.people.assignments(records)
        moments = moments_of(self.store, (r.track_id for r in records.values() if r.track_id))
        for row, face_hits in zip(rows, hits, strict=True):
            matches: list[Match] = []
            for hit in face_hits:
                found = records.get(hit.face_id)
                if found is None or hit.similarity < threshold:
                    continue  # forgotten (tombstone pending), the probe itself, or too far
                person = assigned.get(hit.face_id)
                matches.append(
                    Match(
                        face_id=hit.face_id,
                        image_id=found.image_id,
                        similarity=round(float(hit.similarity), 6),
                        person_id=person.person_id if person else None,
                        person_name=person.name if person else None,
                        crop_url=self.crops.url(found.face_id, found.crop_url, found.collection_id),
                        video_id=found.video_id,
                        track_id=found.track_id,
                        t_ms=found.t_ms,
                        moments=moments.get(found.track_id or "") if found.track_id else None,
                    )
                )
                if len(matches) == k:
                    break
            faces[row] = faces[row].model_copy(update={"matches": matches})

    def _person_threshold(self, given: float | None) -> float:
        return given if given is not None else self.settings.people.person_match_similarity

    def _persons(
        self,
        faces: list[QueryFace],
        *,
        rows: list[int],
        vectors: list[np.ndarray],
        hits: list[list[SearchHit]],
        k: int,
        exclude: str | None,
        threshold: float | None,
    ) -> None:
        """Each query face's persons ranked by centroid similarity (``group_by=person``);
        candidates are the persons of its nearest faces."""
        for row, face_hits in zip(rows, hits, strict=True):
            near = [h.face_id for h in face_hits if h.face_id != exclude]
            ranked = self.people.rank(
                vectors[row], near, k=k, min_similarity=self._person_threshold(threshold)
            )
            covers = self.store.get_faces([m.cover for m in ranked if m.cover])
            persons = [
                PersonMatchOut.from_match(
                    match,
                    cover_url=self.crops.url(cover.face_id, cover.crop_url, cover.collection_id)
                    if (cover := covers.get(match.cover or ""))
                    else None,
                )
                for match in ranked
            ]
            faces[row] = faces[row].model_copy(update={"persons": persons})

    def _check_embedding(self, vector: list[float]) -> np.ndarray:
        dims = self.pipeline.embedder.dim
        manifest = self.index.reader.manifest
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
            box = params.bbox
            best = max(result.faces, key=lambda f: iou(f.detection.box.tolist(), box))
            if iou(best.detection.box.tolist(), box) <= 0.0:
                raise NoFace("no detected face overlaps the given bbox")
            chosen = [best]
        faces, vectors = [], []
        for face in chosen:
            faces.append(QueryFace.from_face(face, skipped=_skip_reason(face, params)))
            assert face.embedding is not None
            vectors.append(np.asarray(face.embedding, dtype=np.float32))
        return faces, vectors

    # --- match ----------------------------------------------------------------------------

    def match(
        self, image_a: ImageInput, image_b: ImageInput, options: MatchOptions | None = None
    ) -> MatchResponse:
        start = time.perf_counter()
        options = options or MatchOptions()
        timings: dict[str, float] = {}
        results = [self._process(image_a, timings), self._process(image_b, timings)]
        faces = [
            pick_face(result, choice, label=label, largest=options.largest)
            for result, choice, label in zip(
                results, (options.face_a, options.face_b), ("image A", "image B"), strict=True
            )
        ]
        threshold = options.threshold
        chosen = threshold if threshold is not None else self.default_threshold
        verdict = compare_faces(faces[0], faces[1], self.pipeline.embedder, chosen)
        return MatchResponse(
            same_person=verdict.same_person,
            similarity=round(verdict.similarity, 6),
            distance=round(verdict.distance, 6),
            threshold=verdict.threshold,
            model=verdict.model,
            faces=[
                MatchFace.from_face(face, face_count=len(result.faces))
                for result, face in zip(results, faces, strict=True)
            ],
            timings_ms={**timings, "total": _ms(start)},
        )


def _skip_reason(face: Face, params: SearchParams) -> str | None:
    """Why a query face is not searched (below the caller's liveness / quality floor)."""
    if params.min_liveness is not None and (face.liveness or 0.0) < params.min_liveness:
        return f"liveness {face.liveness or 0.0:.3f} below min_liveness"
    quality = face.quality
    if params.min_quality is not None and (quality is None or quality.score < params.min_quality):
        return f"quality {quality.score if quality else 0.0:.2f} below min_quality"
    return None
