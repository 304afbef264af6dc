"""Forgetting: an image, a video or a person, with their faces, crops and index entries.

Ordered so that a failure half-way can simply be retried: crops first, then the
index (tombstones locally, a face-deletions message in the cloud), then the
metadata records, then the faces' places in their persons (the people store: at
once, so counts and covers change now; the indexer's later face_removed event finds
them gone). Search drops any hit whose record no longer exists, so a forgotten face
is unsearchable as soon as its record is gone, even before the indexer has applied
the tombstone. Forgetting a person also deletes its records (and those merged into
it) and blanks its names in the correction log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import suppress

from facesearch.api.crops import CropUrls
from facesearch.api.index_view import IndexView
from facesearch.api.schemas import Forgotten
from facesearch.errors import FaceSearchError, NotFound
from facesearch.logs import log_fields
from facesearch.people.service import PeopleService
from facesearch.storage.metadata import FaceRecord, MetadataStore, all_faces
from facesearch.storage.videos import all_tracks
from facesearch.video.names import work_files

logger = logging.getLogger(__name__)

#: forget the index entries of these face ids; returns "tombstoned" or "queued"
IndexForgetter = Callable[[list[str]], str]


class ForgetService:
    def __init__(
        self,
        store: MetadataStore,
        crops: CropUrls,
        forget_index: IndexForgetter,
        index: IndexView,
        people: PeopleService,
        *,
        crops_root: str | None = None,
    ) -> None:
        self.store = store
        self.people = people
        self.crops = crops
        self._forget_index = forget_index
        self.index = index
        #: the crops store's URL: a video's work files are named relative to it
        self.crops_root = crops_root

    def forget_image(self, image_id: str) -> Forgotten:
        if self.store.get_image(image_id) is None:
            raise NotFound(f"image {image_id} not found")
        faces = list(all_faces(self.store, image_id=image_id))
        crops, state = self._forget(faces, f"image {image_id}")
        deleted = self.store.delete_image(image_id)
        self.people.remove(sorted(set(deleted) | {f.face_id for f in faces}))
        self._after(state)
        return Forgotten(
            deleted_faces=sorted(set(deleted) | {f.face_id for f in faces}),
            crops_deleted=crops,
            index=state,
        )

    def forget_video(self, video_id: str) -> Forgotten:
        """Every track face (crops, index entries, records), the tracks, chunk markers, the
        video's work files (chunk results and a staged copy, if any are left) and its record.
        A chunk still running when its video is forgotten removes what it wrote itself."""
        record = self.store.get_video(video_id)
        if record is None:
            raise NotFound(f"video {video_id} not found")
        faces = list(all_faces(self.store, image_id=video_id))
        crops, state = self._forget(faces, f"video {video_id}")
        if self.crops_root:
            for name in work_files(record):
                self.crops.delete(f"{self.crops_root}/{name}")
        deleted = self.store.delete_video(video_id)
        self._after(state)
        return Forgotten(
            deleted_faces=sorted(set(deleted) | {f.face_id for f in faces}),
            crops_deleted=crops,
            index=state,
        )

    def forget_person(self, person_id: str) -> Forgotten:
        """Delete the person *and* their faces (right to be forgotten), not just the label."""
        view = self.people.view(person_id)
        face_ids: list[str] = []
        cursor: str | None = None
        while True:
            page = self.people.faces(view.person_id, cursor=cursor, limit=1000)
            face_ids += [f.face_id for f in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        records = self.store.get_faces(face_ids)
        faces = [records[f] for f in face_ids if f in records]
        crops, state = self._forget(faces, f"person {view.person_id}")
        gone = set(face_ids)
        videos = {f.image_id for f in faces if f.video_id}
        # The port has no per-face delete: rewrite each affected image's face set without
        # them (a video's: its tracks too, so no track outlives its face).
        for image_id in sorted({f.image_id for f in faces}):
            keep = [f for f in all_faces(self.store, image_id=image_id) if f.face_id not in gone]
            if image_id in videos:
                tracks = [t for t in all_tracks(self.store, image_id) if t.track_id not in gone]
                self.store.put_tracks(image_id, tracks, keep)
            else:
                self.store.put_faces(image_id, keep)
        self.people.remove(sorted(gone))
        self.people.drop(view)
        self._after(state)
        return Forgotten(deleted_faces=sorted(gone), crops_deleted=crops, index=state)

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

    def _after(self, state: str) -> None:
        if state == "tombstoned":  # applied to the index already: show it right away
            with suppress(FaceSearchError):
                self.index.refresh()
