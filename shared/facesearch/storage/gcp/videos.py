"""Firestore half of the metadata port for videos: ``videos``, ``video_chunks``, ``tracks``.

A mixin of :class:`facesearch.storage.gcp.metadata.FirestoreMetadataStore`: the same
collection scoping (top level for ``default``, ``collections/c/...`` otherwise) and the
same closed-collection check inside every write transaction. Queries and the composite
indexes Terraform declares for them: ``tracks(video_id, track_index)``;
``video_chunks(plan_id, done)`` (an equality-only count). Track faces are ordinary
``faces`` documents (``image_id`` = the video id).

Chunk markers are one document per chunk, not a counter on the video document: the
chunks of a long video finish at about the same time on many instances, and one
document takes about one write per second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from facesearch.storage.gcp.firestore import (
    existing_documents,
    firestore,
    snapshot_data,
    transient,
)
from facesearch.storage.metadata import FaceRecord, check_id, stamped
from facesearch.storage.paging import Page, clamp_limit, decode_cursor, page_of
from facesearch.storage.records import (
    face_to_dict,
    track_from_dict,
    track_to_dict,
    video_from_dict,
    video_to_dict,
)
from facesearch.storage.videos import ChunkState, TrackRecord, VideoRecord, check_tracks

T = TypeVar("T")
_NAME = "__name__"
#: writes per transaction (Firestore allows 500; the collection check reads one more)
_WRITES_PER_TX = 400


class FirestoreVideos:
    """Video methods of the Firestore metadata store (mixed into it)."""

    if TYPE_CHECKING:  # provided by FirestoreMetadataStore
        client: Any
        _cid: str
        _faces: Any

        def _in_transaction(self, fn: Callable[[Any], T]) -> T: ...
        def _check_open(self, tx: Any) -> None: ...
        def _put_stamped(
            self, ref: Any, record: VideoRecord, to_dict: Callable[[VideoRecord], dict[str, Any]]
        ) -> VideoRecord: ...

    def _open_video_collections(self, prefix: str) -> None:
        self._videos = self.client.collection(f"{prefix}videos")
        self._tracks = self.client.collection(f"{prefix}tracks")
        self._chunks = self.client.collection(f"{prefix}video_chunks")

    # --- videos ---------------------------------------------------------------------------

    @transient
    def put_video(self, record: VideoRecord) -> VideoRecord:
        check_id("video", record.video_id)
        return self._put_stamped(self._videos.document(record.video_id), record, video_to_dict)

    @transient
    def get_video(self, video_id: str) -> VideoRecord | None:
        snap = self._videos.document(video_id).get()
        return video_from_dict(snapshot_data(snap)) if snap.exists else None

    @transient
    def videos_created_before(self, before: float, *, limit: int = 100) -> list[VideoRecord]:
        older = firestore.FieldFilter("created_at", "<", before)
        query = self._videos.where(filter=older).limit(clamp_limit(limit))
        return [video_from_dict(snapshot_data(s)) for s in query.stream()]

    # --- chunk markers ----------------------------------------------------------------------

    @transient
    def start_chunk(self, video_id: str, plan_id: str, chunk_index: int) -> ChunkState:
        ref = self._chunks.document(_chunk_id(video_id, plan_id, chunk_index))

        def run(tx: Any) -> ChunkState:
            self._check_open(tx)
            snap = ref.get(transaction=tx)
            data = snapshot_data(snap) if snap.exists else {}
            if data.get("done"):
                return ChunkState(attempts=int(data.get("attempts", 1)), done=True)
            attempts = int(data.get("attempts", 0)) + 1
            tx.set(ref, _marker(video_id, plan_id, chunk_index, attempts, done=False))
            return ChunkState(attempts=attempts, done=False)

        return self._in_transaction(run)

    @transient
    def finish_chunk(self, video_id: str, plan_id: str, chunk_index: int) -> int:
        ref = self._chunks.document(_chunk_id(video_id, plan_id, chunk_index))

        def run(tx: Any) -> None:
            self._check_open(tx)
            snap = ref.get(transaction=tx)
            attempts = int(snapshot_data(snap).get("attempts", 1)) if snap.exists else 1
            tx.set(ref, _marker(video_id, plan_id, chunk_index, attempts, done=True))

        self._in_transaction(run)
        return self._count_done(plan_id)

    @transient
    def chunks_done(self, video_id: str, plan_id: str) -> int:
        return self._count_done(plan_id)

    @transient
    def claim_finish(self, video_id: str, plan_id: str) -> bool:
        ref = self._videos.document(video_id)

        def run(tx: Any) -> bool:
            self._check_open(tx)
            snap = ref.get(transaction=tx)
            if not snap.exists:
                return False
            data = snapshot_data(snap)
            if data.get("plan_id") != plan_id or data.get("finish_claimed") == plan_id:
                return False
            tx.update(ref, {"finish_claimed": plan_id})
            return True

        return self._in_transaction(run)

    def _count_done(self, plan_id: str) -> int:
        query = self._chunks.where(filter=firestore.FieldFilter("plan_id", "==", plan_id)).where(
            filter=firestore.FieldFilter("done", "==", True)
        )
        return int(query.count().get()[0][0].value)

    # --- tracks -----------------------------------------------------------------------------

    @transient
    def put_tracks(
        self, video_id: str, tracks: Sequence[TrackRecord], faces: Sequence[FaceRecord]
    ) -> None:
        check_tracks(video_id, tracks, faces)
        by_video = firestore.FieldFilter("video_id", "==", video_id)
        by_image = firestore.FieldFilter("image_id", "==", video_id)
        old_tracks = {s.id: snapshot_data(s) for s in self._tracks.where(filter=by_video).stream()}
        old_faces = {s.id: snapshot_data(s) for s in self._faces.where(filter=by_image).stream()}
        # (ref, document or None to delete); a long video has more tracks than one
        # transaction writes, so they go in several, each checking the collection is open
        ops: list[tuple[Any, dict[str, Any] | None]] = []
        ops += [(self._tracks.document(t), None) for t in set(old_tracks) - _ids(tracks)]
        ops += [(self._faces.document(f), None) for f in set(old_faces) - _face_ids(faces)]
        for track in tracks:
            old = old_tracks.get(track.track_id, {})
            ops.append(
                (
                    self._tracks.document(track.track_id),
                    track_to_dict(stamped(track, old.get("created_at"), self._cid)),
                )
            )
        for face in faces:
            old = old_faces.get(face.face_id, {})
            stored = stamped(face, old.get("created_at"), self._cid)
            ops.append((self._faces.document(face.face_id), face_to_dict(stored)))
        for start in range(0, len(ops), _WRITES_PER_TX):
            self._apply(ops[start : start + _WRITES_PER_TX])

    def _apply(self, ops: list[tuple[Any, dict[str, Any] | None]]) -> None:
        def run(tx: Any) -> None:
            self._check_open(tx)
            for ref, document in ops:
                if document is None:
                    tx.delete(ref)
                else:
                    tx.set(ref, document)

        self._in_transaction(run)

    @transient
    def list_tracks(
        self, video_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[TrackRecord]:
        limit = clamp_limit(limit)
        kind = f"tracks:{video_id}"
        query = (
            self._tracks.where(filter=firestore.FieldFilter("video_id", "==", video_id))
            .order_by("track_index")
            .order_by(_NAME)
        )
        if cursor:
            query = query.start_after(decode_cursor(kind, cursor, 2))
        items = [track_from_dict(snapshot_data(s)) for s in query.limit(limit).stream()]
        return page_of(items, limit, kind, lambda last: [last.track_index, last.track_id])

    @transient
    def get_tracks(self, track_ids: Sequence[str]) -> dict[str, TrackRecord]:
        snaps = existing_documents(self.client, self._tracks, track_ids)
        return {snap.id: track_from_dict(snapshot_data(snap)) for snap in snaps}

    @transient
    def delete_video(self, video_id: str) -> list[str]:
        """Faces first (a face never outlives its video record), then tracks, markers,
        the video; in batches, each retried on its own: a half-done delete is re-run."""
        face_ids = sorted(
            s.id
            for s in self._faces.where(filter=firestore.FieldFilter("image_id", "==", video_id))
            .select([])
            .stream()
        )
        refs = [self._faces.document(f) for f in face_ids]
        for collection in (self._tracks, self._chunks):
            query = collection.where(filter=firestore.FieldFilter("video_id", "==", video_id))
            refs += [collection.document(s.id) for s in query.select([]).stream()]
        refs.append(self._videos.document(video_id))
        for start in range(0, len(refs), _WRITES_PER_TX):
            batch = self.client.batch()
            for ref in refs[start : start + _WRITES_PER_TX]:
                batch.delete(ref)
            batch.commit()
        return face_ids


def _chunk_id(video_id: str, plan_id: str, chunk_index: int) -> str:
    """The planner's chunk id (facesearch.video.chunks.chunk_id_for)."""
    check_id("video", video_id)
    return f"{video_id}-{plan_id}-{int(chunk_index)}"


def _marker(
    video_id: str, plan_id: str, index: int, attempts: int, *, done: bool
) -> dict[str, Any]:
    return {
        "video_id": video_id,
        "plan_id": plan_id,
        "chunk_index": int(index),
        "attempts": attempts,
        "done": done,
    }


def _ids(tracks: Sequence[TrackRecord]) -> set[str]:
    return {t.track_id for t in tracks}


def _face_ids(faces: Sequence[FaceRecord]) -> set[str]:
    return {f.face_id for f in faces}
