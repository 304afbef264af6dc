"""``facesearch reembed --model NAME``: every face again with another embedder, then one switch.

A rebuild (:mod:`.rebuild`) whose vectors come from a model instead of the metadata store:

1. **start** records the manifest being replaced, the model it holds and the target;
2. **tasks** (same face-id ranges, checkpoints and resume as a rebuild) embed each face
   with the target model — from its stored crop, or from the original image when the
   crop has fewer pixels than the new model wants (:func:`crop_is_enough`) — store the
   vector beside the face's own (``MetadataStore.put_embeddings``: a re-run or a resumed
   task reuses it instead of embedding again) and build HNSW segments of them under fresh
   names in the collection's index bucket. That is the side-by-side index: nothing live
   names those segments, so queries keep being served from the old model's segments;
3. **switch**: one manifest compare-and-swap replaces *all* segments and the manifest's
   model together (segments the indexer committed meanwhile with the old model are
   re-embedded into one more segment first, faces deleted meanwhile stay deleted); then
   the collection's ``embedder`` setting is set to the target. The reader checks the
   manifest's model against the model its queries are embedded with and refuses another
   (:class:`~facesearch.errors.ModelMismatch`): a query service still embedding with the
   old model keeps its old snapshot until it sees the new setting and reopens the
   collection with the new model (:meth:`facesearch.api.service.QueryService.collection`).
   So no query ever compares vectors of two models.

The replaced segments are retired (GC deletes them after the grace period).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch.backends import Backend
from facesearch.errors import ConfigError, FaceSearchError
from facesearch.index.manifest import Manifest, ModelRef, SegmentEntry
from facesearch.jobs.rebuild import (
    SEGMENT_SIZE,
    START,
    Progress,
    Rebuild,
    SwitchResult,
    TaskResult,
)
from facesearch.jobs.tasks import TaskSlot, run_in_processes
from facesearch.storage.metadata import (
    DEFAULT_COLLECTION,
    FaceRecord,
    embedding_bytes,
    iter_faces,
)
from facesearch.vision.align import similarity_transform
from facesearch.vision.decode import decode_image
from facesearch.vision.embed import FaceEmbedder
from facesearch.vision.types import Detection, ImageArray

logger = logging.getLogger(__name__)
#: faces per embedder call (and per ``put_embeddings`` write)
EMBED_BATCH = 32
SOURCES = ("auto", "crop", "original")


def new_run_id() -> str:
    return "reembed-" + uuid.uuid4().hex[:12]


def _eye_distance(points: npt.NDArray[np.float32]) -> float:
    return float(np.linalg.norm(points[1] - points[0]))


def crop_is_enough(old: FaceEmbedder, new: FaceEmbedder, *, margin: float = 0.02) -> bool:
    """Does the old model's crop hold what the new model wants to see of the face?

    The crop is the old model's aligned input: the face's landmarks sit near the old
    template. Two ways it can fall short: *resolution* (the new template puts the eyes
    further apart than the crop has them: it would be upsampled, detail that is not
    there) and *coverage* (the new model's input reaches beyond the crop's borders: it
    would see black where the forehead or chin was). Either way the original is used.
    """
    if _eye_distance(old.spec.template_array) < _eye_distance(new.spec.template_array):
        return False
    matrix = similarity_transform(new.spec.template_array, old.spec.template_array)
    height, width = new.input_size
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float64)
    mapped = corners @ matrix[:, :2].T + matrix[:, 2]
    old_h, old_w = old.input_size
    slack_x, slack_y = margin * old_w, margin * old_h
    inside_x = (mapped[:, 0] >= -slack_x) & (mapped[:, 0] <= old_w + slack_x)
    inside_y = (mapped[:, 1] >= -slack_y) & (mapped[:, 1] <= old_h + slack_y)
    return bool(np.all(inside_x & inside_y))


@dataclass
class Sources:
    """How many faces were embedded from what (the report's and the bench's numbers)."""

    crop: int = 0
    original: int = 0
    reused: int = 0  # already re-embedded (a re-run, a resumed task)
    unavailable: list[str] = field(default_factory=list)  # no crop and no original


class Reembed(Rebuild):
    """One re-embed run of one collection (``run_id`` names its checkpoints)."""

    KIND = "reembed"

    def __init__(
        self,
        backend: Backend,
        run_id: str,
        *,
        model: str,
        collection_id: str = DEFAULT_COLLECTION,
        segment_size: int = SEGMENT_SIZE,
        source: str = "auto",
    ) -> None:
        if source not in SOURCES:
            raise ConfigError(f"reembed source must be one of {SOURCES}, got {source!r}")
        name, _, version = model.partition("@")
        super().__init__(backend, run_id, collection_id=collection_id, segment_size=segment_size)
        self.embedder_name = name
        self._version = version
        self.source = source
        self.sources = Sources()

    @property
    def embedder(self) -> FaceEmbedder:
        embedder = self.backend.pipeline(self.embedder_name).embedder
        if self._version and embedder.model_id != f"{self.embedder_name}@{self._version}":
            raise ConfigError(f"the model manifest has {embedder.model_id}, not @{self._version}")
        return embedder

    # --- 1. start ----------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Record the target model, the model being replaced and the manifest (once)."""
        found = self.checkpoints.read(START)
        if found is not None:
            return found
        manifest = self._current()[0]
        policy = self.backend.collections().settings(self.collection_id)
        serving = self.backend.pipeline(policy.embedder).embedder.model_id
        record: dict[str, Any] = {
            "model": self.embedder.model_id,
            "embedder": self.embedder_name,
            "from_model": str(manifest.model) if manifest else serving,
            "segments": {
                s.id: [format(int(k), "x") for k in s.tombstones]
                for s in (manifest.segments if manifest else ())
            },
            "started_at": time.time(),
        }
        return self.checkpoints.create(START, record)

    # --- 2. tasks ------------------------------------------------------------------------

    def run_task(self, task: TaskSlot, progress: Progress | None = None) -> TaskResult:
        started, state = self._resume(task)
        if state.get("finished"):
            return TaskResult(task, int(state["faces"]), 0, len(state["segments"]), 0.0, True)
        model = str(started["model"])
        segments: list[dict[str, Any]] = list(state.get("segments", []))
        faces_done = int(state.get("faces", 0))
        after, until = task.face_range()
        t0 = time.perf_counter()
        faces = 0
        ids: list[str] = []
        vectors: list[npt.NDArray[np.float32]] = []
        last = state.get("after") or after
        batch: list[FaceRecord] = []
        store = self.backend.metadata(self.collection_id)

        def flush_segment(last_id: str | None) -> None:
            nonlocal faces, ids, vectors
            if ids:
                entry = self._build_vectors(ids, np.stack(vectors))
                segments.append(entry.model_dump(mode="json"))
                faces += len(ids)
                if progress is not None:
                    progress(len(ids))
                ids, vectors = [], []
            body = {"segments": segments, "faces": faces_done + faces, "after": last_id}
            self.checkpoints.write(task.label, {**body, "finished": False})

        for face in iter_faces(store, after=last, until=until):
            batch.append(face)
            if len(batch) >= min(EMBED_BATCH, self.segment_size):
                self._embed_batch(batch, model, ids, vectors)
                batch = []
                if len(ids) >= self.segment_size:
                    flush_segment(face.face_id)
        if batch:
            self._embed_batch(batch, model, ids, vectors)
        if ids:
            flush_segment(None)
        skipped = len(self.sources.unavailable)
        return self._done(task, state, segments, faces=faces, skipped=skipped, t0=t0)

    def _embed_batch(
        self,
        batch: Sequence[FaceRecord],
        model: str,
        ids: list[str],
        vectors: list[npt.NDArray[np.float32]],
    ) -> None:
        """Embed (or reuse) the batch's vectors, store the new ones, append to the segment."""
        fresh: list[FaceRecord] = []
        for face in batch:
            vector = face.vector_for(model)
            if vector is not None:
                self.sources.reused += 1
                ids.append(face.face_id)
                vectors.append(vector)
            else:
                fresh.append(face)
        if not fresh:
            return
        got = self.embed_faces(fresh)
        stored = {fid: embedding_bytes(v) for fid, v in got.items()}
        if stored:
            self.backend.metadata(self.collection_id).put_embeddings(model, stored)
        for face in fresh:
            if face.face_id in got:
                ids.append(face.face_id)
                vectors.append(got[face.face_id])

    def embed_faces(self, faces: Sequence[FaceRecord]) -> dict[str, npt.NDArray[np.float32]]:
        """The target model's vector of each face (absent: neither crop nor original)."""
        embedder = self.embedder
        crops: dict[str, ImageArray] = {}
        for face in faces:
            chip = None
            if self.source != "original":  # the crop is the face's own model's input
                old = self._old_embedder(face.model)
                if old is not None and (self.source == "crop" or crop_is_enough(old, embedder)):
                    chip = self._from_crop(face, old, embedder)
            if chip is not None:
                self.sources.crop += 1
            else:
                chip = self._from_original(face, embedder)
                if chip is None:
                    self.sources.unavailable.append(face.face_id)
                    continue
                self.sources.original += 1
            crops[face.face_id] = chip
        if not crops:
            return {}
        out = embedder.embed(list(crops.values()))
        return {fid: np.asarray(out[i], np.float32) for i, fid in enumerate(crops)}

    def _old_embedder(self, model: str) -> FaceEmbedder | None:
        """The embedder whose input the face's crop is (None: no longer in the manifest)."""
        try:
            return self.backend.pipeline(model.partition("@")[0]).embedder
        except FaceSearchError:
            return None

    def _from_crop(
        self, face: FaceRecord, old: FaceEmbedder, new: FaceEmbedder
    ) -> ImageArray | None:
        """The new model's input from the old model's crop (its landmarks: the old template)."""
        if not face.crop_url:
            return None
        crops = self.backend.crops()
        prefix = crops.url.rstrip("/") + "/"
        if not face.crop_url.startswith(prefix):
            return None
        try:
            data, _ = crops.read(face.crop_url[len(prefix) :])
            image = decode_image(data).rgb
        except FaceSearchError:
            return None
        found = self.backend.pipeline().detector.detect(image)
        if found:  # the crop's own landmarks (the crop came from another landmark recipe)
            best = max(found, key=lambda d: d.width * d.height)
            return new.crops(image, [best])[0]
        height, width = image.shape[:2]  # no detection: where the old template puts them
        points = old.spec.template_array * np.array(
            [width / old.input_size[1], height / old.input_size[0]], np.float32
        )
        box = np.array([0.0, 0.0, float(width), float(height)], np.float32)
        return new.crops(image, [Detection(box, face.det_score, points)])[0]

    def _from_original(self, face: FaceRecord, new: FaceEmbedder) -> ImageArray | None:
        """The new model's input from the original image (stored box and landmarks)."""
        record = self.backend.metadata(self.collection_id).get_image(face.image_id)
        if record is None:
            return None
        info = record.source_info
        try:
            if info.get("kind") == "gcs":
                data, _ = self.backend.bucket(str(info["bucket"])).read(str(info["name"]))
            elif info.get("kind") == "file":
                data = Path(str(info["name"])).read_bytes()
            else:
                return None
            image = decode_image(data, max_bytes=self.backend.settings.vision.max_image_bytes).rgb
        except (FaceSearchError, OSError, KeyError):
            return None
        detection = Detection(
            np.asarray(face.bbox, np.float32),
            face.det_score,
            np.asarray(face.landmarks, np.float32),
        )
        return new.crops(image, [detection])[0]

    # --- 3. switch -----------------------------------------------------------------------

    def switch(self, count: int) -> SwitchResult:
        """One manifest CAS (segments and model together), then the collection's embedder.

        Idempotent: a second call finds the manifest switched and only (re)sets the
        setting, which is how a run killed between the two finishes.
        """
        result = super().switch(count)
        started = self.checkpoints.read(START) or {}
        current = self._current()[0]
        if current is not None and str(current.model) == started.get("model"):
            self._set_embedder(str(started["embedder"]))
        return result

    def _set_embedder(self, name: str) -> None:
        directory = self.backend.collections()
        record = directory.require(self.collection_id, fresh=True)
        if record.settings.get("embedder") != name:
            settings = {**record.settings, "embedder": name}
            self.backend.catalog().update_collection(self.collection_id, settings=settings)
        directory.forget(self.collection_id)

    def _switched(
        self,
        current: Manifest | None,
        rebuilt: list[SegmentEntry],
        replaced: dict[str, set[int]],
        model: ModelRef,
    ) -> tuple[Manifest, int, int, list[str]]:
        if current is not None and current.model != model:
            # old-model segments committed since the start: their live faces re-embedded
            # into one more segment (faces a task already did are not doubled), and the
            # segments themselves retired with the rest; the manifest takes the new model
            done = {face for entry in rebuilt for _, face in self._sidecar(entry).items()}
            kept = [s for s in current.segments if s.id not in replaced]
            late: list[str] = []
            for entry in kept:
                dead = set(map(int, entry.tombstones))
                late += [f for k, f in self._sidecar(entry).items() if k not in dead]
                replaced = {**replaced, entry.id: dead}
            missing = sorted(set(late) - done)
            if missing:
                extra = self._late_segment(missing, str(model))
                if extra is not None:
                    rebuilt = [*rebuilt, extra]
            dims = self._dims(rebuilt) if rebuilt else current.dims
            current = current.model_copy(update={"model": model, "dims": dims})
        return super()._switched(current, rebuilt, replaced, model)

    def _late_segment(self, face_ids: list[str], model: str) -> SegmentEntry | None:
        records = self.backend.metadata(self.collection_id).get_faces(face_ids)
        ids: list[str] = []
        vectors: list[npt.NDArray[np.float32]] = []
        batch = [records[f] for f in face_ids if f in records]
        for start in range(0, len(batch), EMBED_BATCH):
            self._embed_batch(batch[start : start + EMBED_BATCH], model, ids, vectors)
        return self._build_vectors(ids, np.stack(vectors)) if ids else None


def _task_main(args: tuple[Any, str, str, str, int, str, int, int]) -> TaskResult:
    """A ``--tasks N`` worker process: its own backend (nothing crosses the fork)."""
    settings, run_id, model, collection_id, segment_size, source, index, count = args
    from facesearch.backends import backend_for

    job = Reembed(
        backend_for(settings),
        run_id,
        model=model,
        collection_id=collection_id,
        segment_size=segment_size,
        source=source,
    )
    return job.run_task(TaskSlot(index, count))


def run_local_tasks(job: Reembed, count: int) -> list[TaskResult]:
    """Every task of the run in ``count`` processes here (spawned, not forked)."""
    if count == 1:
        return [job.run_task(TaskSlot(0, 1))]
    spec = (
        job.backend.settings,
        job.run_id,
        job.embedder.model_id,
        job.collection_id,
        job.segment_size,
        job.source,
    )
    return run_in_processes(_task_main, spec, count)
