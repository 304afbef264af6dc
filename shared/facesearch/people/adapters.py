"""The people ports on the project's existing components.

* :class:`IndexNeighbourSearch` — :class:`~.ports.NeighbourSearch` over the
  collection's segmented USearch index (:class:`facesearch.index.reader.IndexReader`,
  or a callable giving the current one, e.g. the query service's index view),
  refreshing the reader when an event names a newer manifest than it holds.
* :class:`MetadataFaceSource` — :class:`~.ports.FaceSource` over the metadata
  store's face records (SQLite or Firestore).

The ``PeopleStore`` adapters are in :mod:`facesearch.storage.local.people` (SQLite) and
:mod:`facesearch.storage.gcp.people` (Firestore).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from facesearch.index.reader import IndexReader
from facesearch.people.ports import Neighbour
from facesearch.people.types import FaceInput, unit
from facesearch.storage.metadata import FaceRecord, MetadataStore


class IndexNeighbourSearch:
    def __init__(self, reader: IndexReader | Callable[[], IndexReader]) -> None:
        self._reader = reader

    @property
    def reader(self) -> IndexReader:
        return self._reader if isinstance(self._reader, IndexReader) else self._reader()

    def search(self, vectors: npt.ArrayLike, k: int) -> list[list[Neighbour]]:
        rows = np.asarray(vectors, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[None, :]
        return [
            [Neighbour(hit.face_id, float(hit.similarity)) for hit in hits]
            for hits in self.reader.search(rows, k)
        ]

    def at_least(self, version: int | None) -> None:
        if version is None:
            return
        reader = self.reader
        manifest = reader.manifest
        if manifest is None or manifest.version < version:
            reader.refresh()


def face_input(record: FaceRecord) -> FaceInput:
    """The clustering input of a stored face.

    ``quality`` is the pipeline's 0..1 score (1.0 if the record has none);
    ``seen_at`` is the record's creation time until photos carry a capture time.
    """
    score = record.quality.get("score") if record.quality else None
    quality = float(score) if isinstance(score, int | float) else 1.0
    return FaceInput(
        face_id=record.face_id,
        image_id=record.image_id,
        embedding=unit(record.vector()),
        quality=min(1.0, max(0.0, quality)),
        seen_at=float(record.created_at),
    )


class MetadataFaceSource:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def get(self, face_ids: Sequence[str]) -> dict[str, FaceInput]:
        return {face_id: face_input(r) for face_id, r in self.store.get_faces(face_ids).items()}
