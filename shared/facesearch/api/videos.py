"""A video as the API shows it: status, progress, and its tracks with moments and persons.

Thin, like :mod:`.records`: the store keeps the video, its chunk markers (progress while
it is processed) and its tracks; a track's best face is an ordinary face record, which
carries the person label and the crop. Search hits on video faces get their moments
here too (:func:`moments_of`).
"""

from __future__ import annotations

from collections.abc import Iterable

from facesearch.api.crops import CropUrls
from facesearch.api.schemas import Moment
from facesearch.api.video_schemas import TrackOut, VideoOut
from facesearch.errors import NotFound
from facesearch.people.service import PeopleService
from facesearch.storage.metadata import MetadataStore
from facesearch.storage.videos import VideoStatus


def moments_of(store: MetadataStore, track_ids: Iterable[str]) -> dict[str, list[Moment]]:
    """track_id -> its moments (one batched read for a page of search hits)."""
    ids = sorted(set(track_ids))
    tracks = store.get_tracks(ids) if ids else {}
    return {
        track_id: [Moment(start_ms=a, end_ms=b) for a, b in track.spans]
        for track_id, track in tracks.items()
    }


class VideoService:
    def __init__(self, store: MetadataStore, crops: CropUrls, people: PeopleService) -> None:
        self.store = store
        self.crops = crops
        self.people = people

    def get_video(self, video_id: str, *, cursor: str | None, limit: int) -> VideoOut:
        record = self.store.get_video(video_id)
        if record is None:
            raise NotFound(f"video {video_id} not found")
        if record.status is VideoStatus.DONE:
            done = record.chunks_done
        elif record.plan_id:
            done = self.store.chunks_done(video_id, record.plan_id)
        else:
            done = 0
        page = self.store.list_tracks(video_id, cursor=cursor, limit=limit)
        faces = self.store.get_faces([t.face_id for t in page.items])
        assigned = self.people.assignments(t.face_id for t in page.items)
        tracks = []
        for track in page.items:
            face = faces.get(track.face_id)
            tracks.append(
                TrackOut.from_records(
                    track,
                    face,
                    crop_url=None
                    if face is None
                    else self.crops.url(face.face_id, face.crop_url, face.collection_id),
                    person_id=person.person_id if (person := assigned.get(track.face_id)) else None,
                    person_name=person.name if person else None,
                )
            )
        return VideoOut.from_record(
            record, chunks_done=done, tracks=tracks, next_cursor=page.next_cursor
        )
