"""Where a video's objects live in the crops store: track crops and work files.

* ``<collection>/<video_id>/<n>.jpg`` — track ``n``'s best face, named like a photo's face
  crops (:func:`facesearch.ingest.outputs.crop_name`);
* ``<collection>/videos/<video_id>/chunks/<chunk_id>.json`` — one chunk's result, read by
  the finisher, deleted once the video is done;
* ``<collection>/videos/<video_id>/source`` — a video fetched from a URL, staged for its
  chunks, deleted once the video is done.

Everything sits under the collection's crops prefix, so a collection erase removes it
with the crops; forgetting a video derives every name from its record (no listing).
"""

from __future__ import annotations

from facesearch.storage.metadata import collection_prefix
from facesearch.storage.videos import VideoRecord
from facesearch.video.chunks import chunk_id_for


def work_prefix(collection_id: str, video_id: str) -> str:
    return f"{collection_prefix(collection_id)}videos/{video_id}/"


def result_name(collection_id: str, video_id: str, chunk_id: str) -> str:
    return f"{work_prefix(collection_id, video_id)}chunks/{chunk_id}.json"


def staged_name(collection_id: str, video_id: str) -> str:
    return f"{work_prefix(collection_id, video_id)}source"


def work_files(record: VideoRecord) -> list[str]:
    """Every work file a video may have left (from its record's plan)."""
    names = [staged_name(record.collection_id, record.video_id)]
    if record.plan_id:
        names += [
            result_name(
                record.collection_id,
                record.video_id,
                chunk_id_for(record.video_id, record.plan_id, index),
            )
            for index in range(record.chunks_total)
        ]
    return names
