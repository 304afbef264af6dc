"""``facesearch rebuild``: the index again from the metadata store, while the old one serves.

The metadata store (Firestore / SQLite) is the source of truth and the index a view of
it, so a lost, corrupt or suspect index is rebuilt from the faces there:

1. **start**: the run records the manifest it replaces (``jobs/<run>/start.json``:
   its segments and their tombstones);
2. **tasks** (Cloud Run Job tasks or ``--tasks N`` processes) each read one face-id
   range (:meth:`TaskSlot.face_range`), build segments of ``--segment-size`` faces and
   upload them under fresh names: invisible, the live index keeps serving. After each
   segment a task checkpoints the segments it has and the last face id, so a killed
   task resumes there;
3. **switch**: when every task's result is in, one manifest compare-and-swap replaces
   the recorded segments with the rebuilt ones (retired: GC deletes them after the
   grace period, so readers holding the old manifest still finish). What changed
   meanwhile is carried over, not lost: segments the indexer committed after the start
   stay, faces deleted meanwhile are tombstoned in the rebuilt segments too, and a face
   both rebuilt and re-added meanwhile stays live once. Whichever task finishes last
   switches; the switch is idempotent (a second one finds it done).

Keys are the faces' probe-0 keys (:mod:`facesearch.index.keys`), as the indexer would
assign in an empty index; a collision between two faces (odds about 3e-8 at 1M) is not
assumed away: the second face is left out of the segments and added through the
writer after the switch, which probes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesearch.backends import Backend
from facesearch.errors import ConfigError, IndexCorrupt, PreconditionFailed, TransientError
from facesearch.index.ids import SegmentIds
from facesearch.index.keys import face_keys
from facesearch.index.manifest import (
    MANIFEST_NAME,
    Manifest,
    ModelRef,
    RetiredSegment,
    SegmentEntry,
)
from facesearch.index.segment import build_segment, upload_segment
from facesearch.index.vectors import normalise
from facesearch.index.writer import read_manifest
from facesearch.jobs.tasks import Checkpoints, TaskSlot, run_in_processes
from facesearch.logs import log_fields
from facesearch.storage.blob import BlobStore
from facesearch.storage.metadata import DEFAULT_COLLECTION, FaceRecord, iter_faces

logger = logging.getLogger(__name__)
SEGMENT_SIZE = 50_000
START = "start.json"
SWITCHED = "switched.json"
Progress = Callable[[int], None]


@dataclass
class TaskResult:
    task: TaskSlot
    faces: int
    skipped_other_model: int
    segments: int
    seconds: float
    resumed: bool

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0


@dataclass
class SwitchResult:
    switched: bool
    live: int
    segments: int
    carried_segments: int
    tombstoned_meanwhile: int
    readded: int
    manifest_version: int


def new_run_id() -> str:
    return "rebuild-" + uuid.uuid4().hex[:12]


class Rebuild:
    """One rebuild run of one collection's index (``run_id`` names its checkpoints)."""

    #: what the run is called in errors and logs
    KIND = "rebuild"

    def __init__(
        self,
        backend: Backend,
        run_id: str,
        *,
        collection_id: str = DEFAULT_COLLECTION,
        segment_size: int = SEGMENT_SIZE,
        model: str | None = None,
    ) -> None:
        if segment_size < 1:
            raise ConfigError("segment size must be >= 1")
        self.backend = backend
        self.run_id = run_id
        self.collection_id = collection_id
        self.segment_size = segment_size
        self.store: BlobStore = backend.index_store(collection_id=collection_id)
        self.checkpoints = Checkpoints(self.store, f"jobs/{run_id}")
        self.params = backend.settings.index
        self._model = model

    # --- 1. start ----------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Record what is being replaced (idempotent: an existing record is kept)."""
        found = self.checkpoints.read(START)
        if found is not None:
            return found
        manifest = self._current()[0]
        model = self._model or (str(manifest.model) if manifest else None)
        if model is None:
            model = self._first_model()
        record: dict[str, Any] = {
            "model": model,
            "segments": {
                s.id: [format(int(k), "x") for k in s.tombstones]
                for s in (manifest.segments if manifest else ())
            },
            "started_at": time.time(),
        }
        return self.checkpoints.create(START, record)  # concurrent tasks: the first one wins

    def _first_model(self) -> str:
        for face in iter_faces(self.backend.metadata(self.collection_id), page_size=1):
            return face.model
        raise ConfigError("nothing to rebuild: the metadata store has no faces")

    def _current(self) -> tuple[Manifest | None, int]:
        """The live manifest and generation; a corrupt one counts as none (it is replaced)."""
        try:
            return read_manifest(self.store)
        except IndexCorrupt:
            logger.warning("replacing a corrupt manifest", extra=log_fields(run=self.run_id))
            return None, self.store.stat(MANIFEST_NAME) or 0

    # --- 2. tasks ------------------------------------------------------------------------

    def _resume(self, task: TaskSlot) -> tuple[dict[str, Any], dict[str, Any]]:
        """The run's start record and this task's checkpoint (``{}``: a fresh task)."""
        started = self.checkpoints.read(START)
        if started is None:
            raise ConfigError(f"{self.KIND} {self.run_id} was not started")
        return started, self.checkpoints.read(task.label) or {}

    def _done(
        self,
        task: TaskSlot,
        state: dict[str, Any],
        segments: list[dict[str, Any]],
        *,
        faces: int,
        skipped: int,
        t0: float,
    ) -> TaskResult:
        """Checkpoint the task as finished (a rerun then returns at once), log it, report it:
        ``faces`` done now, on top of what ``state`` (its checkpoint) had done before."""
        total = int(state.get("faces", 0)) + faces
        self.checkpoints.write(task.label, {"segments": segments, "faces": total, "finished": True})
        seconds = time.perf_counter() - t0
        logger.info(
            f"{self.KIND} task finished",
            extra=log_fields(run=self.run_id, task=task.label, faces=faces, seconds=seconds),
        )
        return TaskResult(task, faces, skipped, len(segments), seconds, bool(state))

    def run_task(self, task: TaskSlot, progress: Progress | None = None) -> TaskResult:
        started, state = self._resume(task)
        if state.get("finished"):
            return TaskResult(task, int(state["faces"]), 0, len(state["segments"]), 0.0, True)
        model = ModelRef.parse(started["model"])
        segments: list[dict[str, Any]] = list(state.get("segments", []))
        faces_done = int(state.get("faces", 0))
        after, until = task.face_range()
        resume_after = state.get("after") or after
        t0 = time.perf_counter()
        faces = skipped = 0
        store = self.backend.metadata(self.collection_id)
        for chunk, skipped_now, last in _chunks(
            iter_faces(store, after=resume_after, until=until), str(model), self.segment_size
        ):
            skipped += skipped_now
            if chunk:
                segments.append(self._build(chunk, str(model)).model_dump(mode="json"))
                faces += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            body = {"segments": segments, "faces": faces_done + faces, "after": last}
            self.checkpoints.write(task.label, {**body, "finished": False})
        return self._done(task, state, segments, faces=faces, skipped=skipped, t0=t0)

    def _build(self, faces: Sequence[FaceRecord], model: str) -> SegmentEntry:
        vectors = [f.vector_for(model) for f in faces]
        return self._build_vectors(
            [f.face_id for f in faces], np.stack([v for v in vectors if v is not None])
        )

    def _build_vectors(self, ids: list[str], raw: np.ndarray) -> SegmentEntry:
        """One segment of these faces' vectors, uploaded under a fresh (unnamed) name."""
        vectors = normalise(raw)
        keys = face_keys(ids)
        manifest = self._current()[0]
        dtype = manifest.dtype if manifest else self.params.dtype
        built = build_segment(
            keys,
            vectors,
            ids,
            dims=vectors.shape[1],
            dtype=dtype,
            params=self.params,
            workdir=self.backend.index_cache_dir(self.collection_id),
        )
        try:
            upload_segment(self.store, built)
        finally:
            built.index_path.unlink(missing_ok=True)
        return built.entry

    def tasks_done(self, count: int) -> bool:
        return all(
            (self.checkpoints.read(TaskSlot(i, count).label) or {}).get("finished")
            for i in range(count)
        )

    # --- 3. switch -----------------------------------------------------------------------

    def switch(self, count: int) -> SwitchResult:
        """Swap the rebuilt segments in (once every task of ``count`` finished)."""
        started = self.checkpoints.read(START)
        if started is None or not self.tasks_done(count):
            raise ConfigError(f"rebuild {self.run_id}: not every task has finished")
        rebuilt = [
            SegmentEntry.model_validate(s)
            for i in range(count)
            for s in (self.checkpoints.read(TaskSlot(i, count).label) or {})["segments"]
        ]
        model = ModelRef.parse(started["model"])
        if not rebuilt and self._current()[0] is None:
            return SwitchResult(False, 0, 0, 0, 0, 0, 0)  # no faces, no index: nothing to do
        replaced: dict[str, set[int]] = {
            sid: {int(k, 16) for k in keys} for sid, keys in started["segments"].items()
        }
        for attempt in range(1, self.params.commit_attempts + 1):
            current, generation = self._current()
            ours = {s.id for s in rebuilt}
            present = (
                {s.id for s in current.segments} | {r.id for r in current.retired}
                if current
                else set()
            )
            if current is not None and ours & present:
                return SwitchResult(False, current.live_count, len(current.segments), 0, 0, 0,
                                    current.version)  # fmt: skip
            new, carried, tombstoned, collided = self._switched(current, rebuilt, replaced, model)
            try:
                self.store.write(MANIFEST_NAME, new.to_bytes(), if_generation_match=generation)
            except PreconditionFailed:
                time.sleep(min(0.5, 0.01 * attempt))
                continue
            readded = self._readd(collided)
            self.checkpoints.write(SWITCHED, {"version": new.version, "at": time.time()})
            final = self._current()[0] or new
            return SwitchResult(
                True, final.live_count, len(final.segments), carried, tombstoned, readded,
                final.version,
            )  # fmt: skip
        raise TransientError("rebuild switch: manifest still contended")

    def _switched(
        self,
        current: Manifest | None,
        rebuilt: list[SegmentEntry],
        replaced: dict[str, set[int]],
        model: ModelRef,
    ) -> tuple[Manifest, int, int, list[str]]:
        now = time.time()
        kept = [s for s in (current.segments if current else ()) if s.id not in replaced]
        gone = [s for s in (current.segments if current else ()) if s.id in replaced]
        # faces deleted since the start (new tombstones in replaced segments) and faces
        # live in segments committed since the start must not be live in the rebuilt ones
        drop: set[str] = set()
        for entry in gone:
            fresh = set(map(int, entry.tombstones)) - replaced[entry.id]
            if fresh:
                sidecar = self._sidecar(entry)
                positions = sidecar.positions(np.fromiter(fresh, np.uint64, len(fresh)))
                drop.update(sidecar.face_id(int(p)) for p in positions if p >= 0)
        for entry in kept:
            sidecar = self._sidecar(entry)
            dead = set(map(int, entry.tombstones))
            drop.update(face for key, face in sidecar.items() if key not in dead)
        seen: set[int] = set()
        collided: list[str] = []
        out: list[SegmentEntry] = []
        for entry in rebuilt:
            sidecar = self._sidecar(entry)
            tombs = set(map(int, entry.tombstones))
            for key, face in sidecar.items():
                if face in drop:
                    tombs.add(key)
                elif key in seen:  # two faces, one probe-0 key: the later one re-added
                    tombs.add(key)
                    collided.append(face)
                seen.add(key)
            out.append(entry.model_copy(update={"tombstones": tuple(sorted(tombs))}))
        base = current or Manifest(dims=self._dims(rebuilt), dtype=self.params.dtype, model=model)
        if current is not None:
            current.check_model(model)
        retired = (*base.retired, *(RetiredSegment(id=s.id, retired_at=now) for s in gone))
        new = base.model_copy(
            update={
                "segments": (*out, *kept),
                "retired": retired,
                "version": base.version + 1,
                "updated_at": now,
            }
        )
        tombstoned = sum(len(s.tombstones) for s in out) - sum(len(s.tombstones) for s in rebuilt)
        return Manifest.model_validate(new.model_dump()), len(kept), tombstoned, collided

    def _dims(self, rebuilt: list[SegmentEntry]) -> int:
        sidecar = self._sidecar(rebuilt[0])
        face = self.backend.metadata(self.collection_id).get_face(sidecar.face_id(0))
        if face is None:
            raise ConfigError("rebuild: a rebuilt face vanished; run the rebuild again")
        vector = face.vector_for(self._started_model())
        return face.dims if vector is None else int(vector.shape[0])

    def _started_model(self) -> str:
        started = self.checkpoints.read(START) or {}
        return str(started.get("model", ""))

    def _sidecar(self, entry: SegmentEntry) -> SegmentIds:
        data, _ = self.store.read(entry.ids_name)
        return SegmentIds(data, source=entry.ids_name)

    def _readd(self, face_ids: list[str]) -> int:
        if not face_ids:
            return 0
        faces = self.backend.metadata(self.collection_id).get_faces(face_ids)
        if not faces:
            return 0
        model = self._started_model()
        writer = self.backend.index_writer(collection_id=self.collection_id)
        pairs = [(f.face_id, f.vector_for(model)) for f in faces.values()]
        kept = [(face, vector) for face, vector in pairs if vector is not None]
        if not kept:
            return 0
        result = writer.add(
            [face for face, _ in kept], np.stack([vector for _, vector in kept]), model
        )
        return result.added


def _chunks(
    faces: Iterator[FaceRecord], model: str, size: int
) -> Iterator[tuple[list[FaceRecord], int, str]]:
    """Faces with a ``model`` embedding (their own, or one a re-embed stored) in chunks of
    ``size``; with each, the faces skipped (no such embedding) and the last face id read
    (where a resumed task continues)."""
    chunk: list[FaceRecord] = []
    skipped = 0
    last = ""
    for face in faces:
        last = face.face_id
        if face.model != model and model not in face.embeddings:  # re-embedded faces count
            skipped += 1
            continue
        chunk.append(face)
        if len(chunk) >= size:
            yield chunk, skipped, last
            chunk, skipped = [], 0
    if chunk or skipped:
        yield chunk, skipped, last


def _task_main(args: tuple[Any, str, str, int, int, int]) -> TaskResult:
    """A ``--tasks N`` worker process: its own backend (nothing crosses the fork)."""
    settings, run_id, collection_id, segment_size, index, count = args
    from facesearch.backends import backend_for

    rebuild = Rebuild(
        backend_for(settings), run_id, collection_id=collection_id, segment_size=segment_size
    )
    return rebuild.run_task(TaskSlot(index, count))


def run_local_tasks(rebuild: Rebuild, count: int) -> list[TaskResult]:
    """Every task of the run in ``count`` processes on this machine (spawned, not forked)."""
    if count == 1:
        return [rebuild.run_task(TaskSlot(0, 1))]
    spec = (rebuild.backend.settings, rebuild.run_id, rebuild.collection_id, rebuild.segment_size)
    return run_in_processes(_task_main, spec, count)
