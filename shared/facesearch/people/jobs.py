"""The full re-cluster of a collection, as the product runs it.

``facesearch persons recluster`` (embedded, or with ``FACESEARCH_BACKEND=gcp`` as the
Cloud Run Job ``<prefix>-recluster``, whose entrypoint runs
``python -m facesearch.people.jobs``) does, per collection:

1. absorb persons and labels from before clustering (Firestore deployments that still
   hold them; a no-op otherwise: :func:`~.legacy.absorb_documents`);
2. read every face record of the metadata store (the source of truth: faces whose
   events were lost are added, faces forgotten meanwhile are removed);
3. :func:`~.recluster.recluster` them with the current settings, which keeps person ids
   and names stable by matching old to new clusters on overlap.

It is for parameter or model changes and for repair; day to day the clusterer keeps
persons current from the face events, so nothing runs nightly.

The k-NN graph is exact up to :data:`EXACT_KNN_MAX_FACES` faces (a few seconds) and
an in-memory USearch HNSW graph beyond (the 1M run in docs/people.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from facesearch.people.adapters import face_input
from facesearch.people.batch import knn_exact
from facesearch.people.legacy import absorb_documents
from facesearch.people.recluster import ReclusterReport, recluster
from facesearch.people.types import FaceInput
from facesearch.storage.catalog import CollectionStatus, iter_collections
from facesearch.storage.metadata import MetadataStore, iter_faces

if TYPE_CHECKING:
    from facesearch.backends import Backend

logger = logging.getLogger(__name__)

#: up to this many faces the k-NN graph is exact (blocked matrix products)
EXACT_KNN_MAX_FACES = 50_000


def knn_graph(
    vectors: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Each row's ``k`` nearest other rows (positions, -1 padded) and their similarities."""
    n = len(vectors)
    if n <= EXACT_KNN_MAX_FACES:
        return knn_exact(vectors, k)
    from facesearch.native import Index

    index = Index(ndim=vectors.shape[1], metric="cos", dtype="f32")
    index.add(np.arange(n, dtype=np.int64), vectors, threads=os.cpu_count() or 1)
    found = index.search(vectors, k + 1, threads=os.cpu_count() or 1)
    keys = np.asarray(found.keys, dtype=np.int64).reshape(n, -1)
    sims = (1.0 - np.asarray(found.distances, dtype=np.float32)).reshape(n, -1)
    counts = np.asarray(getattr(found, "counts", [keys.shape[1]] * n)).reshape(-1)
    valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
    keys = np.where(valid, keys, -1)
    self_hit = keys == np.arange(n)[:, None]
    drop = np.where(self_hit.any(axis=1), self_hit.argmax(axis=1), keys.shape[1] - 1)
    keep = np.ones_like(keys, dtype=bool)
    keep[np.arange(n), drop] = False
    out_keys = keys[keep].reshape(n, -1)[:, :k]
    out_sims = np.where(out_keys >= 0, sims[keep].reshape(n, -1)[:, :k], -np.inf)
    return out_keys, out_sims.astype(np.float32)


def stored_faces(store: MetadataStore) -> Iterator[FaceInput]:
    """Every face record of the collection as clustering input, page by page."""
    return (face_input(r) for r in iter_faces(store, page_size=1000))


def recluster_collection(backend: Backend, collection_id: str) -> ReclusterReport:
    """Re-cluster one collection from its metadata store (ids and names kept)."""
    settings = backend.settings.people
    store = backend.people(collection_id)
    metadata = backend.metadata(collection_id)
    absorbed = absorb_documents(store, metadata, settings)
    start = time.perf_counter()
    report = recluster(store, settings, faces=list(stored_faces(metadata)), knn=knn_graph)
    logger.info(
        "collection re-clustered",
        extra={
            "collection": collection_id,
            "absorbed_persons": absorbed.persons,
            "faces": report.faces,
            "persons_before": report.persons_before,
            "persons_after": report.persons_after,
            "kept_ids": report.kept_ids,
            "s": round(time.perf_counter() - start, 2),
        },
    )
    return report


def active_collections(backend: Backend) -> list[str]:
    """Every active collection (``default`` included while it has not been erased)."""
    catalog = backend.catalog()
    out = [
        r.collection_id for r in iter_collections(catalog) if r.status is CollectionStatus.ACTIVE
    ]
    default = catalog.get_collection("default")
    if "default" not in out and default is not None and default.status is CollectionStatus.ACTIVE:
        out.insert(0, "default")
    return out


def report_dict(collection_id: str, report: ReclusterReport) -> dict[str, object]:
    return {"collection": collection_id, **asdict(report)}


def main(argv: Sequence[str] | None = None) -> int:
    """The Cloud Run Job: re-cluster the collections named (default: every active one)."""
    from facesearch.backends import backend_for
    from facesearch.config import get_settings
    from facesearch.logs import configure_for

    parser = argparse.ArgumentParser(prog="python -m facesearch.people.jobs")
    parser.add_argument("collections", nargs="*", help="collection ids (default: all active)")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_for(settings)
    backend = backend_for(settings)
    for collection_id in args.collections or active_collections(backend):
        report = recluster_collection(backend, collection_id)
        print(json.dumps(report_dict(collection_id, report)), file=sys.stdout, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
