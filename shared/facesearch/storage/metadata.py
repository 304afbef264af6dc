"""The metadata-store port: images and faces, the system's source of truth.

Two adapters implement it: :mod:`.local.metadata` (SQLite, embedded mode)
and :mod:`.gcp.metadata` (Firestore); :mod:`.records` maps records to
documents. The index is a rebuildable *view* of the faces kept here, so
everything a face needs to be re-indexed (embedding bytes and model) lives on
its record.

Contract shared by both adapters (``tests/contracts/test_metadata.py`` runs
the same tests against each):

* ids are caller-chosen and stable (image_id from the source, face_id from
  image_id + index), so a redelivered event rewrites the same records:
  :meth:`MetadataStore.put_image` and :meth:`MetadataStore.put_faces` are upserts.
* ``put_faces`` replaces an image's faces (keeping each face's ``created_at``) and
  deletes faces of that image not in the new set.
* listings are pages ordered by a stable key with an opaque ``next_cursor``
  (``None`` on the last page; :mod:`.paging`); cursors survive writes between pages.
* missing records: ``get_*`` return ``None``; mutations of a missing record
  raise :class:`facesearch.errors.NotFound`; deletes of missing records are
  idempotent and return ``[]``.
* a backend that is unavailable raises :class:`facesearch.errors.TransientError`.

Persons — who a face belongs to, by the clusterer or a user — are not here: they
live in the collection's people store (:class:`facesearch.people.ports.PeopleStore`,
``Catalog.people``), beside these records in the same database. The collections
themselves and the catalog that hands out scoped stores are :mod:`.catalog`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from facesearch.storage.paging import Page, encode_cursor, iter_pages

if TYPE_CHECKING:
    from facesearch.storage.videos import ChunkState, TrackRecord, VideoRecord
    from facesearch.vision.types import Face

T = TypeVar("T")

#: the collection every record without one belongs to (all data from before collections)
DEFAULT_COLLECTION = "default"
_COLLECTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def check_collection_id(value: str) -> str:
    """Collection ids become path segments (buckets, Firestore): a short lowercase slug."""
    if not isinstance(value, str) or not _COLLECTION_ID.match(value):
        raise ValueError(
            f"invalid collection id {value!r}: 1-63 of a-z, 0-9 and '-', starting with a letter"
            " or digit"
        )
    return value


def collection_prefix(collection_id: str) -> str:
    """Where a collection's objects live inside a shared bucket or index root: nothing
    for ``default`` (its objects predate collections), ``collections/<id>/`` otherwise."""
    check_collection_id(collection_id)
    return "" if collection_id == DEFAULT_COLLECTION else f"collections/{collection_id}/"


class ImageStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Purged:
    """What one bounded purge step removed, and whether anything is left."""

    images: int = 0
    faces: int = 0
    done: bool = True
    videos: int = 0  # video records and their chunk markers
    tracks: int = 0

    @classmethod
    def of(cls, removed: Mapping[str, int], *, done: bool) -> Purged:
        """The step's counts from what each adapter deletes, by table / collection name
        (``faces``, ``tracks``, ``images``, ``video_chunks``, ``videos``)."""
        return cls(
            images=removed["images"],
            faces=removed["faces"],
            done=done,
            videos=removed["videos"] + removed["video_chunks"],
            tracks=removed["tracks"],
        )


@dataclass(frozen=True)
class ImageRecord:
    """``images/{image_id}``: where an image came from and what became of it."""

    image_id: str
    source: str  # e.g. gs://bucket/object#generation or cloudinary://cloud/public_id#version
    status: ImageStatus = ImageStatus.QUEUED
    source_info: Mapping[str, Any] = field(default_factory=dict)  # bucket, object, size, ...
    error_code: str | None = None
    error_message: str | None = None
    face_count: int = 0
    width: int | None = None
    height: int | None = None
    format: str | None = None
    model: str | None = None  # embedder model id (name@version)
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    attempts: int = 0  # processing attempts so far (redeliveries count)
    created_at: float = 0.0  # epoch seconds; 0 = let the store stamp it
    updated_at: float = 0.0
    collection_id: str = DEFAULT_COLLECTION  # stamped by the scoped store that writes it


@dataclass(frozen=True)
class FaceRecord:
    """``faces/{face_id}``: one detected face with everything needed to re-index it."""

    face_id: str
    image_id: str
    face_index: int
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in original image pixels
    landmarks: tuple[tuple[float, float], ...]  # 5 x (x, y)
    det_score: float
    embedding: bytes  # float32 little endian, L2-normalised
    model: str  # embedder model id (name@version)
    liveness: float | None = None
    live: bool | None = None
    quality: Mapping[str, Any] = field(default_factory=dict)  # sharpness, ..., score, reasons
    crop_url: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    collection_id: str = DEFAULT_COLLECTION
    #: a track's best face (docs/video.md): the video (also its ``image_id``), the track
    #: (also its ``face_id``) and when in the video the face was seen
    video_id: str | None = None
    track_id: str | None = None
    t_ms: int | None = None
    #: the same face embedded by other models (model id -> float32 LE bytes), written by a
    #: re-embed job (``facesearch reembed``, docs/jobs.md); ``embedding`` / ``model`` stay the ones
    #: ingest stored. Re-processing the image (``put_faces``) drops them: they belonged to
    #: old detections.
    embeddings: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def dims(self) -> int:
        return len(self.embedding) // 4

    def vector_for(self, model: str) -> npt.NDArray[np.float32] | None:
        """This face's embedding by ``model`` (its own or a re-embedded one), if it has one."""
        raw = self.embedding if model == self.model else self.embeddings.get(model)
        return None if raw is None else np.frombuffer(raw, dtype="<f4").astype(np.float32)

    def with_embedding(self, model: str, raw: bytes) -> FaceRecord:
        """The record holding ``raw`` as its ``model`` embedding (own slot if it is its model)."""
        if model == self.model:
            return replace(self, embedding=raw)
        return replace(self, embeddings={**self.embeddings, model: raw})

    @classmethod
    def from_face(
        cls, face: Face, *, face_id: str, image_id: str, model: str, crop_url: str | None
    ) -> FaceRecord:
        """The stored form of a detected, embedded face (ingest, and tests that seed)."""
        if face.embedding is None:
            raise ValueError("a face needs its embedding to be stored")
        quality: dict[str, Any] = asdict(face.quality) if face.quality is not None else {}
        if "reasons" in quality:
            quality["reasons"] = list(quality["reasons"])
        box = [float(v) for v in face.detection.box]
        return cls(
            face_id=face_id,
            image_id=image_id,
            face_index=face.index,
            bbox=(box[0], box[1], box[2], box[3]),
            landmarks=tuple((float(x), float(y)) for x, y in face.detection.landmarks),
            det_score=float(face.detection.score),
            embedding=embedding_bytes(face.embedding),
            model=model,
            liveness=face.liveness,
            live=face.live,
            quality=quality,
            crop_url=crop_url,
        )

    def vector(self) -> npt.NDArray[np.float32]:
        return np.frombuffer(self.embedding, dtype="<f4").astype(np.float32)


@dataclass(frozen=True)
class StoreCounts:
    images: int
    faces: int
    images_by_status: Mapping[str, int]
    videos: int = 0
    tracks: int = 0


@runtime_checkable
class MetadataStore(Protocol):
    """Images and faces of *one* collection. Implementations are thread-safe.

    A store is scoped: nothing it reads or writes belongs to another collection, and
    every write (images, faces) is refused with
    :class:`~facesearch.errors.CollectionClosed` once its collection is being erased,
    checked in the same transaction as the write.
    """

    @property
    def collection_id(self) -> str:
        """The collection this store reads and writes."""
        ...

    # images
    def put_image(self, record: ImageRecord) -> ImageRecord:
        """Upsert; stamps ``updated_at`` (and ``created_at`` on first write)."""
        ...

    def get_image(self, image_id: str) -> ImageRecord | None: ...

    def existing_images(self, image_ids: Sequence[str]) -> set[str]:
        """Which of these images have a record (one batched read: backfill skips them)."""
        ...

    def list_images(
        self, *, status: ImageStatus | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[ImageRecord]:
        """By ``image_id`` (or, with ``status``, most recently updated first)."""
        ...

    def delete_image(self, image_id: str) -> list[str]:
        """Delete the image and all its faces; returns the deleted face ids."""
        ...

    def images_created_before(self, before: float, *, limit: int = 100) -> list[ImageRecord]:
        """Up to ``limit`` images first stored before ``before`` (epoch s): retention."""
        ...

    # faces
    def put_faces(self, image_id: str, faces: Sequence[FaceRecord]) -> None:
        """Make ``faces`` the image's face set (upsert, drop the rest)."""
        ...

    def get_face(self, face_id: str) -> FaceRecord | None: ...

    def get_faces(self, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        """Batch lookup (search hits -> records); missing ids are absent from the dict."""
        ...

    def list_faces(
        self, *, image_id: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[FaceRecord]:
        """All faces by face_id; an image's by face_index."""
        ...

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> int:
        """Store ``model``'s embedding (float32 LE bytes) on these faces (a re-embed job).

        Nothing else of a face changes; a face that no longer exists is skipped (it was
        forgotten meanwhile). Returns how many faces were updated.
        """
        ...

    # stats
    def counts(self) -> StoreCounts: ...

    # videos (records in facesearch.storage.videos; docs/video.md)
    def put_video(self, record: VideoRecord) -> VideoRecord:
        """Upsert; stamps ``updated_at`` (and ``created_at`` on first write)."""
        ...

    def get_video(self, video_id: str) -> VideoRecord | None: ...

    def videos_created_before(self, before: float, *, limit: int = 100) -> list[VideoRecord]:
        """Up to ``limit`` videos first stored before ``before`` (epoch s): retention."""
        ...

    def start_chunk(self, video_id: str, plan_id: str, chunk_index: int) -> ChunkState:
        """Count one processing attempt of a chunk (its marker is created on the first);
        an already finished chunk is reported done and not counted."""
        ...

    def finish_chunk(self, video_id: str, plan_id: str, chunk_index: int) -> int:
        """Mark the chunk done (idempotent); returns how many chunks of the plan are done."""
        ...

    def chunks_done(self, video_id: str, plan_id: str) -> int:
        """Chunks of the plan marked done (a video's progress)."""
        ...

    def claim_finish(self, video_id: str, plan_id: str) -> bool:
        """True for the first caller only (per plan): who queues the video's finisher when
        several last chunks finish at once. False too when the video or plan is gone."""
        ...

    def put_tracks(
        self, video_id: str, tracks: Sequence[TrackRecord], faces: Sequence[FaceRecord]
    ) -> None:
        """Make these the video's tracks and track faces (``image_id`` = ``video_id``):
        upserts; other tracks and faces of the video go."""
        ...

    def list_tracks(
        self, video_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[TrackRecord]:
        """A video's tracks by ``track_index`` (first appearance)."""
        ...

    def get_tracks(self, track_ids: Sequence[str]) -> dict[str, TrackRecord]:
        """Batch lookup (search hits on video faces -> their spans)."""
        ...

    def delete_video(self, video_id: str) -> list[str]:
        """Delete the video, its chunk markers, tracks and track faces; the face ids."""
        ...

    # erase
    def purge(self, *, limit: int = 500) -> Purged:
        """Delete up to ``limit`` records of this collection (faces, tracks, images, chunk
        markers, videos); ``done`` once none is left. Used by collection erase (which
        purges the people store too); idempotent."""
        ...


# --- helpers shared by the adapters ------------------------------------------------------------


def now() -> float:
    return time.time()


def stamped(record: T, existing_created_at: float | None, collection_id: str) -> T:
    """Set created_at (kept from the stored record), updated_at = now, and the collection
    of the store writing it (a record can only ever be written into its store's collection)."""
    t = now()
    created = existing_created_at or getattr(record, "created_at", 0.0) or t
    return replace(  # type: ignore[type-var]
        record, created_at=created, updated_at=t, collection_id=collection_id
    )


def check_face_set(image_id: str, faces: Sequence[FaceRecord]) -> None:
    """What ``put_faces`` accepts: valid ids, and only faces of that image (a face of
    another image would be dropped from it the next time that image is processed)."""
    check_id("image", image_id)
    for face in faces:
        check_id("face", face.face_id)
        if face.image_id != image_id:
            raise ValueError(f"face {face.face_id} belongs to {face.image_id}, not {image_id}")


def embedding_bytes(vector: npt.ArrayLike) -> bytes:
    """The stored form of an embedding: float32 little endian."""
    return np.asarray(vector, dtype="<f4").reshape(-1).tobytes()


def check_id(kind: str, value: str) -> str:
    """Ids become Firestore document names: no slashes, not empty, not ``.``/``..``."""
    if not value or "/" in value or value in (".", "..") or len(value.encode()) > 1500:
        raise ValueError(f"invalid {kind} id {value!r}")
    if value.startswith("__") and value.endswith("__"):
        raise ValueError(f"invalid {kind} id {value!r} (reserved)")
    return value


def iter_faces(
    store: MetadataStore,
    *,
    page_size: int = 500,
    after: str | None = None,
    until: str | None = None,
) -> Iterator[FaceRecord]:
    """Every face by face id, page by page (``rebuild`` and ``reembed`` read from this).

    ``after`` / ``until``: only faces with ``after < face_id <= until`` (either bound
    open when None), which is how job tasks split the faces into disjoint ranges and how
    a task resumes after the last face it finished.
    """
    start = faces_cursor_after(after) if after else None
    pages = iter_pages(lambda cursor: store.list_faces(cursor=cursor, limit=page_size), start)
    for face in pages:
        if until is not None and face.face_id > until:
            return
        yield face


def iter_images(store: MetadataStore, status: ImageStatus | None = None) -> Iterator[ImageRecord]:
    """Every image (with ``status``, when given) by image id, page by page."""
    return iter_pages(lambda cursor: store.list_images(status=status, cursor=cursor, limit=500))


def all_faces(store: MetadataStore, *, image_id: str) -> Iterator[FaceRecord]:
    """Every face of an image (or a video's track faces), following the pages."""
    return iter_pages(lambda cursor: store.list_faces(image_id=image_id, cursor=cursor, limit=1000))


def faces_cursor_after(face_id: str) -> str:
    """The ``list_faces`` cursor of the all-faces listing that continues after ``face_id``."""
    return encode_cursor("faces", [face_id])
