"""Immutable segments: build one, and fetch/verify/open one through a local cache.

A segment is two objects, ``segments/<id>.usearch`` (USearch HNSW file) and
``segments/<id>.ids`` (key -> face_id sidecar). Both are written once under a
fresh id and never modified, so any cached copy whose sha256 matches the
manifest is the segment, and caching is safe across processes and restarts.

Cache files are named by content hash (``<sha256>.usearch``) and only ever
appear there by atomic rename *after* their hash was checked, so a file present
under its hash name was verified when it was fetched; on open only its size is
re-checked (hashing a 1 GB segment costs ~0.6 s of the cold-open budget).
``facesearch index verify`` re-hashes everything when you want certainty.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesearch.errors import IndexCorrupt, PreconditionFailed
from facesearch.index.ids import SegmentIds, encode_ids
from facesearch.index.manifest import Dtype, SegmentEntry, segment_object_names
from facesearch.index.params import IndexParams
from facesearch.native import Index, MetricKind
from facesearch.storage.blob import BlobStore
from facesearch.telemetry import metrics


def new_segment_id() -> str:
    """Time-ordered (sorts by creation in listings) and unique without coordination."""
    return f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:16]}"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed (segments and model files are larger than we want in RAM)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass
class BuiltSegment:
    """A segment built locally, not yet (or just) uploaded."""

    entry: SegmentEntry
    index_path: Path
    ids_data: bytes
    keys: np.ndarray
    face_ids: list[str]

    def same_content(self, keys: np.ndarray, face_ids: Sequence[str]) -> bool:
        """Would a rebuild from these pairs produce the same segment?"""
        return (
            len(keys) == len(self.keys)
            and bool(np.array_equal(keys, self.keys))
            and list(face_ids) == self.face_ids
        )


def stack_vectors(got: object) -> np.ndarray:
    """``Index.get`` answers a 2-D array or a tuple of rows, depending on the usearch version."""
    if isinstance(got, np.ndarray):
        return got if got.ndim == 2 else got[None, :]
    if not isinstance(got, tuple | list) or any(row is None for row in got):
        raise IndexCorrupt("segment does not hold a vector for one of its own keys")
    return np.stack(got)


def kernel_metric(dtype: Dtype) -> MetricKind:
    """The usearch distance kernel that computes cosine distance for a stored dtype.

    Every stored vector and every query is unit length (:func:`.vectors.normalise`),
    so the inner product *is* the cosine and ``1 - ip`` the cosine distance.
    usearch's ``cos`` kernel recomputes both norms on every distance (three
    accumulators and a reciprocal square root instead of one accumulator); its
    ``ip`` kernel does not, and measured 1.4-2x less time per query here
    (docs/index.md). i8 is the exception: usearch stores i8 as ``round(127 * x)``
    and only its cos kernel divides that scale back out. Segments written with
    the cos kernel by earlier versions are switched to ip when opened.
    """
    return MetricKind.Cos if dtype == "i8" else MetricKind.IP


def new_usearch_index(dims: int, dtype: Dtype, params: IndexParams) -> Index:
    return Index(
        ndim=dims,
        metric=kernel_metric(dtype),
        dtype=dtype,
        connectivity=params.connectivity,
        expansion_add=params.expansion_add,
        expansion_search=params.expansion_search,
    )


def build_segment(
    keys: np.ndarray,
    vectors: np.ndarray,
    face_ids: Sequence[str],
    *,
    dims: int,
    dtype: Dtype,
    params: IndexParams,
    workdir: Path,
) -> BuiltSegment:
    """Build the HNSW graph and the sidecar for these (key, vector, face_id) triples.

    ``vectors`` are unit-length float32, or already-quantised values of the
    index dtype (compaction passes stored i8/f16 vectors back unchanged, so
    repeated compactions never drift).
    """
    if not len(keys):
        raise ValueError("a segment needs at least one vector")
    index = new_usearch_index(dims, dtype, params)
    index.add(np.asarray(keys, dtype=np.uint64), vectors, threads=params.build_threads)
    segment_id = new_segment_id()
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f".build-{segment_id}.usearch"
    index.save(str(path))
    ids_data = encode_ids(keys, face_ids)
    entry = SegmentEntry(
        id=segment_id,
        count=len(keys),
        index_sha256=sha256_file(path),
        index_bytes=path.stat().st_size,
        ids_sha256=hashlib.sha256(ids_data).hexdigest(),
        ids_bytes=len(ids_data),
        created_at=time.time(),
    )
    return BuiltSegment(entry, path, ids_data, np.asarray(keys, np.uint64), list(face_ids))


def upload_segment(store: BlobStore, built: BuiltSegment) -> None:
    """Upload both objects under their fresh names (must-not-exist: ids never collide).

    Segment ids carry 64 random bits, so "already exists" can only mean that an
    earlier attempt of this very upload landed and its response was lost (the
    adapter retried). Object uploads are atomic, so that object is complete.
    """
    index_name, ids_name = segment_object_names(built.entry.id)
    with contextlib.suppress(PreconditionFailed):
        store.write_file(index_name, built.index_path, if_generation_match=0)
    with contextlib.suppress(PreconditionFailed):
        store.write(ids_name, built.ids_data, if_generation_match=0)


class SegmentCache:
    """Local, content-addressed copies of segment objects, verified on the way in."""

    def __init__(self, store: BlobStore, directory: Path) -> None:
        self.store = store
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    # --- fetch ---------------------------------------------------------------------

    def index_path(self, entry: SegmentEntry) -> Path:
        return self._fetch(entry.index_name, entry.index_sha256, entry.index_bytes, ".usearch")

    def ids(self, entry: SegmentEntry) -> SegmentIds:
        path = self._fetch(entry.ids_name, entry.ids_sha256, entry.ids_bytes, ".ids")
        ids = SegmentIds.open(path)
        if len(ids) != entry.count:
            raise IndexCorrupt(
                f"segment {entry.id}: sidecar has {len(ids)} keys, manifest says {entry.count}"
            )
        return ids

    def open_index(self, entry: SegmentEntry, *, dims: int, dtype: Dtype, view: bool) -> Index:
        """Open a segment's USearch file: memory-mapped (``view``) or loaded into RAM."""
        path = self.index_path(entry)
        meta = Index.metadata(str(path))
        if meta is None:
            raise IndexCorrupt(f"segment {entry.id}: not a USearch file")
        found = (meta["dimensions"], meta["kind_scalar"].name.lower(), meta["count_present"])
        if found != (dims, dtype, entry.count):
            raise IndexCorrupt(
                f"segment {entry.id}: file holds (dims, dtype, count)={found}, "
                f"manifest expects {(dims, dtype, entry.count)}"
            )
        stored_metric = meta["kind_metric"]
        if stored_metric not in (MetricKind.Cos, MetricKind.IP):
            raise IndexCorrupt(
                f"segment {entry.id}: file uses metric {stored_metric}, expected cos or ip"
            )
        try:
            index = Index.restore(str(path), view=view)
        except RuntimeError as exc:
            raise IndexCorrupt(f"segment {entry.id}: USearch cannot open it: {exc}") from exc
        if index is None or len(index) != entry.count:
            raise IndexCorrupt(f"segment {entry.id}: USearch opened an unexpected index")
        kernel = kernel_metric(dtype)
        if stored_metric != kernel:  # a cos segment of an earlier version: same ranking
            index.metric = kernel
        return index

    def adopt(self, built: BuiltSegment) -> None:
        """Move a locally built segment into the cache so its writer never downloads it."""
        entry = built.entry
        target = self._path(entry.index_sha256, ".usearch")
        if not target.exists():
            built.index_path.replace(target)
        else:
            built.index_path.unlink(missing_ok=True)
        ids_target = self._path(entry.ids_sha256, ".ids")
        if not ids_target.exists():
            tmp = self._tmp_path(ids_target)
            tmp.write_bytes(built.ids_data)
            tmp.replace(ids_target)

    def prune(self, keep: Sequence[SegmentEntry]) -> int:
        """Delete cached files no listed segment uses; returns how many were removed.

        Safe while other processes have them mapped (POSIX keeps unlinked files alive).
        """
        wanted = {f"{e.index_sha256}.usearch" for e in keep} | {f"{e.ids_sha256}.ids" for e in keep}
        removed = 0
        for path in self.directory.iterdir():
            if path.suffix in (".usearch", ".ids") and path.name not in wanted:
                if path.name.startswith("."):  # a build or download in flight
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed

    # --- internals -----------------------------------------------------------------

    def _path(self, sha256: str, suffix: str) -> Path:
        return self.directory / f"{sha256}{suffix}"

    def _tmp_path(self, target: Path) -> Path:
        return self.directory / f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"

    def _fetch(self, name: str, sha256: str, size: int, suffix: str) -> Path:
        target = self._path(sha256, suffix)
        with contextlib.suppress(FileNotFoundError):
            if target.stat().st_size == size:
                metrics.record_cache("segments", True)
                return target
            target.unlink()  # damaged local copy (e.g. disk full earlier): fetch again
        metrics.record_cache("segments", False)
        tmp = self._tmp_path(target)
        try:
            self.store.download_to_file(name, tmp)
            got_size = tmp.stat().st_size
            if got_size != size:
                raise IndexCorrupt(
                    f"{self.store.url}/{name}: {got_size} bytes, manifest says {size} "
                    "(truncated or replaced segment)"
                )
            got_sha = sha256_file(tmp)
            if got_sha != sha256:
                raise IndexCorrupt(
                    f"{self.store.url}/{name}: sha256 {got_sha[:12]}..., manifest says "
                    f"{sha256[:12]}... (corrupted or replaced segment)"
                )
            tmp.replace(target)
            return target
        finally:
            tmp.unlink(missing_ok=True)
