"""Firestore adapter of the metadata port (the cloud source of truth).

Firestore collections ``images`` and ``faces`` (and ``videos``, ``video_chunks``,
``tracks``: :mod:`.videos`), document id = record id,
per face collection: the ``default`` collection keeps the top-level ones (where
all data from before collections lives, so nothing needs migrating); every other
collection ``c`` lives under ``collections/c/`` (``collections/c/faces/...``), so
a scoped store cannot even name another collection's documents. Every write
transaction reads ``collections/c`` and refuses to write into a collection that
is being erased (:class:`CollectionClosed`). The
queries are exactly the ones the composite indexes in Terraform cover
(``faces(image_id, face_index)``, ``images(status, updated_at DESC)``); change both
together. ``put_faces`` runs in a transaction so redelivered events and racing
instances leave one consistent face set. The collection's persons are the people
store's (:mod:`.people`), beside these collections.

Errors: Firestore's transient statuses (unavailable, deadline, aborted after
the client's own retries) become :class:`TransientError` so the entry point
asks the platform to retry; everything else propagates.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from facesearch.errors import CollectionClosed, NotFound
from facesearch.storage.catalog import CollectionStatus
from facesearch.storage.gcp.firestore import (
    existing_documents,
    firestore,
    snapshot_data,
    transient,
)
from facesearch.storage.gcp.videos import FirestoreVideos
from facesearch.storage.metadata import (
    DEFAULT_COLLECTION,
    FaceRecord,
    ImageRecord,
    ImageStatus,
    Purged,
    StoreCounts,
    check_collection_id,
    check_face_set,
    check_id,
    now,
    stamped,
)
from facesearch.storage.paging import Page, clamp_limit, decode_cursor, page_of
from facesearch.storage.records import (
    face_from_dict,
    face_to_dict,
    image_from_dict,
    image_to_dict,
)
from facesearch.storage.videos import VideoRecord

T = TypeVar("T")
#: the records with a status, upserted alike
R = TypeVar("R", ImageRecord, VideoRecord)
#: dynamic for the same reason as ``firestore`` (typed package vs google.cloud namespace)
_FIELD_PATH: Any = importlib.import_module("google.cloud.firestore_v1.field_path")
#: Firestore caps a write batch / transaction at 500 writes.
_BATCH = 450
_NAME = "__name__"
#: Transaction attempts on contention (redeliveries racing on one image's faces).
_TX_ATTEMPTS = 20
#: the Firestore collection of collection records (and parent of their subcollections)
COLLECTIONS = "collections"


def collection_path(collection_id: str) -> str:
    """Where a face collection's documents live ('' = top level for ``default``)."""
    return "" if collection_id == DEFAULT_COLLECTION else f"{COLLECTIONS}/{collection_id}/"


def check_open(record: Any, collection_id: str, tx: Any) -> None:
    """Inside a write transaction: the collection (its ``collections/{id}`` document
    ``record``) must exist and take writes; the implicit ``default`` always does."""
    snap = record.get(transaction=tx)
    if not snap.exists:
        if collection_id == DEFAULT_COLLECTION:
            return
        raise NotFound(f"collection {collection_id} does not exist")
    status = snapshot_data(snap).get("status", CollectionStatus.ACTIVE)
    if status != CollectionStatus.ACTIVE:
        raise CollectionClosed(f"collection {collection_id} is {status}: nothing is written")


class FirestoreMetadataStore(FirestoreVideos):
    """One collection's metadata in Firestore (native mode), on the instance's one client.

    The video methods (``videos``, ``video_chunks``, ``tracks``) are in :mod:`.videos`."""

    def __init__(self, client: Any, collection_id: str = DEFAULT_COLLECTION) -> None:
        self.client = client
        self._cid = check_collection_id(collection_id)
        prefix = collection_path(self._cid)
        self._images = self.client.collection(f"{prefix}images")
        self._faces = self.client.collection(f"{prefix}faces")
        self._open_video_collections(prefix)
        self._record = self.client.collection(COLLECTIONS).document(self._cid)

    @property
    def collection_id(self) -> str:
        return self._cid

    def __repr__(self) -> str:
        return f"FirestoreMetadataStore({self.client.project}, {self._cid})"

    def _in_transaction(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(transaction)``, re-run on contention (the client's own retry loop)."""
        result: T = firestore.transactional(fn)(self.client.transaction(max_attempts=_TX_ATTEMPTS))
        return result

    def _check_open(self, tx: Any) -> None:
        check_open(self._record, self._cid, tx)

    def _put_stamped(self, ref: Any, record: R, to_dict: Callable[[R], dict[str, Any]]) -> R:
        """Upsert an image or video record: keep its stored ``created_at``, stamp the rest,
        in a transaction that checks the collection still takes writes."""

        def run(tx: Any) -> R:
            self._check_open(tx)
            snap = ref.get(transaction=tx)
            created = snap.get("created_at") if snap.exists else None
            out = stamped(record, created, self._cid)
            tx.set(ref, to_dict(out))
            return out

        return self._in_transaction(run)

    # --- images -----------------------------------------------------------------------

    @transient
    def put_image(self, record: ImageRecord) -> ImageRecord:
        check_id("image", record.image_id)
        return self._put_stamped(self._images.document(record.image_id), record, image_to_dict)

    @transient
    def get_image(self, image_id: str) -> ImageRecord | None:
        snap = self._images.document(image_id).get()
        return image_from_dict(snapshot_data(snap)) if snap.exists else None

    @transient
    def existing_images(self, image_ids: Sequence[str]) -> set[str]:
        # field_paths=[]: existence only, no document bodies over the wire
        snaps = existing_documents(self.client, self._images, image_ids, field_paths=[])
        return {snap.id for snap in snaps}

    @transient
    def list_images(
        self, *, status: ImageStatus | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[ImageRecord]:
        limit = clamp_limit(limit)
        if status is None:
            kind = "images"
            query = self._images.order_by(_NAME)
            if cursor:
                query = query.start_after(decode_cursor(kind, cursor, 1))
        else:
            kind = f"images:{status}"
            query = (
                self._images.where(filter=firestore.FieldFilter("status", "==", str(status)))
                .order_by("updated_at", direction=firestore.Query.DESCENDING)
                .order_by(_NAME, direction=firestore.Query.DESCENDING)
            )
            if cursor:
                query = query.start_after(decode_cursor(kind, cursor, 2))
        items = [image_from_dict(snapshot_data(s)) for s in query.limit(limit).stream()]
        if status is None:
            return page_of(items, limit, kind, lambda last: [last.image_id])
        return page_of(items, limit, kind, lambda last: [last.updated_at, last.image_id])

    @transient
    def images_created_before(self, before: float, *, limit: int = 100) -> list[ImageRecord]:
        older = firestore.FieldFilter("created_at", "<", before)
        query = self._images.where(filter=older).limit(clamp_limit(limit))
        return [image_from_dict(snapshot_data(s)) for s in query.stream()]

    @transient
    def delete_image(self, image_id: str) -> list[str]:
        query = self._faces.where(filter=firestore.FieldFilter("image_id", "==", image_id))
        face_ids = sorted(s.id for s in query.select([]).stream())
        for start in range(0, len(face_ids), _BATCH):
            batch = self.client.batch()
            for face_id in face_ids[start : start + _BATCH]:
                batch.delete(self._faces.document(face_id))
            batch.commit()
        self._images.document(image_id).delete()
        return face_ids

    # --- faces ------------------------------------------------------------------------

    @transient
    def put_faces(self, image_id: str, faces: Sequence[FaceRecord]) -> None:
        check_face_set(image_id, faces)
        if len(faces) > _BATCH:
            raise ValueError(f"at most {_BATCH} faces per image fit one transaction")
        query = self._faces.where(filter=firestore.FieldFilter("image_id", "==", image_id))

        def run(tx: Any) -> None:
            self._check_open(tx)
            existing = {s.id: s.to_dict() for s in tx.get(query)}
            for face_id in set(existing) - {f.face_id for f in faces}:
                tx.delete(self._faces.document(face_id))
            for face in faces:
                old = existing.get(face.face_id)
                record = stamped(face, old.get("created_at") if old else None, self._cid)
                tx.set(self._faces.document(face.face_id), face_to_dict(record))

        self._in_transaction(run)

    @transient
    def get_face(self, face_id: str) -> FaceRecord | None:
        snap = self._faces.document(face_id).get()
        return face_from_dict(snapshot_data(snap)) if snap.exists else None

    @transient
    def get_faces(self, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        snaps = existing_documents(self.client, self._faces, face_ids)
        return {snap.id: face_from_dict(snapshot_data(snap)) for snap in snaps}

    @transient
    def list_faces(
        self, *, image_id: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[FaceRecord]:
        limit = clamp_limit(limit)
        if image_id is not None:
            kind, arity = f"faces:image:{image_id}", 2
            query = (
                self._faces.where(filter=firestore.FieldFilter("image_id", "==", image_id))
                .order_by("face_index")
                .order_by(_NAME)
            )
        else:
            kind, arity = "faces", 1
            query = self._faces.order_by(_NAME)
        if cursor:
            query = query.start_after(decode_cursor(kind, cursor, arity))
        items = [face_from_dict(snapshot_data(s)) for s in query.limit(limit).stream()]
        if image_id is None:
            return page_of(items, limit, kind, lambda last: [last.face_id])
        return page_of(items, limit, kind, lambda last: [last.face_index, last.face_id])

    @transient
    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> int:
        items = list(vectors.items())
        field = _FIELD_PATH.FieldPath("embeddings", model).to_api_repr()
        updated = 0
        for start in range(0, len(items), _BATCH // 2):
            chunk = items[start : start + _BATCH // 2]
            refs = [self._faces.document(face_id) for face_id, _ in chunk]

            def run(tx: Any, chunk: list[tuple[str, bytes]] = chunk, refs: list[Any] = refs) -> int:
                self._check_open(tx)
                snaps = {s.id: s for s in self.client.get_all(refs, transaction=tx)}
                t = now()
                count = 0
                for (face_id, raw), ref in zip(chunk, refs, strict=True):
                    snap = snaps.get(face_id)
                    if snap is None or not snap.exists:
                        continue  # forgotten meanwhile
                    own = snapshot_data(snap).get("model") == model
                    tx.update(ref, {"embedding" if own else field: bytes(raw), "updated_at": t})
                    count += 1
                return count

            updated += self._in_transaction(run)
        return updated

    # --- stats ------------------------------------------------------------------------

    def _count(self, query: Any) -> int:
        result = query.count().get()
        return int(result[0][0].value)

    @transient
    def counts(self) -> StoreCounts:
        by_status = {
            str(s): self._count(
                self._images.where(filter=firestore.FieldFilter("status", "==", str(s)))
            )
            for s in ImageStatus
        }
        return StoreCounts(
            images=self._count(self._images),
            faces=self._count(self._faces),
            images_by_status=by_status,
            videos=self._count(self._videos),
            tracks=self._count(self._tracks),
        )

    # --- erase ------------------------------------------------------------------------

    @transient
    def purge(self, *, limit: int = 500) -> Purged:
        removed = {}
        left = limit
        order = (
            ("faces", self._faces),
            ("tracks", self._tracks),
            ("images", self._images),
            ("video_chunks", self._chunks),
            ("videos", self._videos),
        )
        for name, ref in order:
            ids = [s.id for s in ref.select([]).limit(max(left, 0)).stream()] if left > 0 else []
            for start in range(0, len(ids), _BATCH):
                batch = self.client.batch()
                for doc_id in ids[start : start + _BATCH]:
                    batch.delete(ref.document(doc_id))
                batch.commit()
            removed[name] = len(ids)
            left -= len(ids)
        done = all(not list(ref.select([]).limit(1).stream()) for _, ref in order)
        return Purged.of(removed, done=done)
