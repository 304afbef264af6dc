"""What an ingest writes besides its records: face crops and the indexer's messages.

Photos (:mod:`.results`) and videos (:mod:`.video_finish`) both end here, so a face
found in either has the same crop format and reaches the indexer in the same batches.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from facesearch.ingest.sources import SourceRef
from facesearch.storage.blob import BlobStore
from facesearch.storage.bus import Bus
from facesearch.storage.messages import EmbeddingsMessage, chunked
from facesearch.storage.metadata import FaceRecord, collection_prefix

#: JPEG quality of stored face crops: small enough for a results grid, sharp enough to judge
CROP_JPEG_QUALITY = 90


def crop_prefix(collection_id: str, item_id: str) -> str:
    """Where the face crops of one photo or video live (``<collection>/<id>/``)."""
    return f"{collection_prefix(collection_id)}{item_id}/"


def crop_name(collection_id: str, item_id: str, index: int) -> str:
    """A photo's ``index``-th face crop, or a video's track ``index``'s best face."""
    return f"{crop_prefix(collection_id, item_id)}{index}.jpg"


def write_crop(crops: BlobStore, name: str, pixels: np.ndarray) -> str:
    """Store an RGB face crop as JPEG under ``name``; the URL records point at."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=CROP_JPEG_QUALITY)
    crops.write(name, buffer.getvalue())
    return f"{crops.url}/{name}"


def publish_embeddings(
    bus: Bus,
    topic: str,
    faces: Sequence[FaceRecord],
    *,
    source: SourceRef,
    image_id: str,
    model: str,
    per_message: int,
) -> None:
    """The faces' embeddings to the indexer, ``per_message`` to a message (none: nothing)."""
    if not faces:
        return
    messages = [
        EmbeddingsMessage(
            image_id,
            model,
            [f.face_id for f in part],
            np.stack([f.vector() for f in part]),
            source.created_time,
            collection_id=source.collection_id,
        ).encode()
        for part in chunked(faces, per_message)
    ]
    bus.publish(topic, messages)
