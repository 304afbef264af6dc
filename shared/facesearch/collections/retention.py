"""Retention: a collection's faces are kept ``retention_days`` and then forgotten.

Run by the scheduler (Cloud Scheduler publishes a ``retention`` control message
daily; the indexer fans it out to every collection with a retention and sweeps
each in bounded steps) or by ``facesearch collections sweep`` locally. An expired
image — or video: its track faces, tracks and any work files left — goes the way of
any forgotten one — crops first, then its index entries, then its records — so a
sweep interrupted half-way is simply resumed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from facesearch.collections.policy import CollectionSettings
from facesearch.logs import log_fields
from facesearch.storage.blob import BlobStore
from facesearch.storage.catalog import Catalog, CollectionStatus, iter_collections
from facesearch.storage.metadata import MetadataStore, all_faces
from facesearch.video.names import work_files

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
#: images forgotten per step (one push request's worth)
STEP_IMAGES = 200

#: remove face ids from a collection's index: (collection_id, face_ids)
IndexRemover = Callable[[str, list[str]], object]


@dataclass(frozen=True)
class SweepStep:
    images: int  # images and videos forgotten
    faces: int  # their faces (a video's: its track faces)
    done: bool


class RetentionSweep:
    def __init__(
        self,
        catalog: Catalog,
        *,
        stores: Callable[[str], MetadataStore],
        crops: BlobStore,
        remove_from_index: IndexRemover,
        step_images: int = STEP_IMAGES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.stores = stores
        self.crops = crops
        self.remove_from_index = remove_from_index
        self.step_images = step_images
        self._clock = clock

    def due(self) -> list[str]:
        """Active collections that have a retention period."""
        return [
            r.collection_id
            for r in iter_collections(self.catalog)
            if r.status is CollectionStatus.ACTIVE
            and CollectionSettings.from_record(r.settings).retention_days is not None
        ]

    def step(self, collection_id: str) -> SweepStep:
        record = self.catalog.get_collection(collection_id)
        if record is None or record.status is not CollectionStatus.ACTIVE:
            return SweepStep(0, 0, True)
        days = CollectionSettings.from_record(record.settings).retention_days
        if days is None:
            return SweepStep(0, 0, True)
        store = self.stores(collection_id)
        cutoff = self._clock() - days * DAY_S
        limit = self.step_images
        expired = store.images_created_before(cutoff, limit=limit)
        faces = 0
        for image in expired:
            records = list(all_faces(store, image_id=image.image_id))
            for face in records:
                if face.crop_url:
                    self._delete_crop(face.crop_url)
            face_ids = [f.face_id for f in records]
            if face_ids:
                self.remove_from_index(collection_id, face_ids)
            store.delete_image(image.image_id)
            faces += len(face_ids)
        room = limit - len(expired)
        videos = store.videos_created_before(cutoff, limit=room) if room > 0 else []
        for video in videos:
            records = list(all_faces(store, image_id=video.video_id))
            for face in records:
                if face.crop_url:
                    self._delete_crop(face.crop_url)
            for name in work_files(video):
                self.crops.delete(name)
            face_ids = [f.face_id for f in records]
            if face_ids:
                self.remove_from_index(collection_id, face_ids)
            store.delete_video(video.video_id)
            faces += len(face_ids)
        if expired or videos:
            logger.info(
                "retention: expired images and videos forgotten",
                extra=log_fields(
                    collection=collection_id,
                    images=len(expired),
                    videos=len(videos),
                    faces=faces,
                    days=days,
                ),
            )
        done = room > 0 and len(videos) < room
        return SweepStep(len(expired) + len(videos), faces, done)

    def run(self, collection_id: str) -> SweepStep:
        """Sweep one collection to the end (embedded mode)."""
        images = faces = 0
        while True:
            step = self.step(collection_id)
            images, faces = images + step.images, faces + step.faces
            if step.done:
                return SweepStep(images, faces, True)

    def _delete_crop(self, location: str) -> None:
        prefix = f"{self.crops.url}/"
        if location.startswith(prefix):
            self.crops.delete(location[len(prefix) :])
