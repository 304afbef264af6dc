"""The key -> face_id sidecar that travels with every segment.

A USearch file knows only 64-bit keys; the sidecar maps them back to face ids.
Format (little endian), chosen so a reader can memory-map it and look keys up
with a binary search instead of building a million-entry Python dict::

    b"FSIDS001" | n: u64 | keys: n x u64 (strictly increasing)
    | offsets: (n + 1) x u64 | utf-8 face ids, concatenated

Face id ``i`` is ``blob[offsets[i]:offsets[i + 1]]``.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from facesearch.errors import IndexCorrupt

MAGIC = b"FSIDS001"
_HEADER = len(MAGIC) + 8


def encode_ids(keys: np.ndarray, face_ids: Sequence[str]) -> bytes:
    """Serialise pairs (any order) into the sidecar format, sorted by key."""
    keys = np.asarray(keys, dtype=np.uint64)
    if len(keys) != len(face_ids):
        raise ValueError(f"{len(keys)} keys for {len(face_ids)} face ids")
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    if len(sorted_keys) > 1 and not np.all(sorted_keys[1:] > sorted_keys[:-1]):
        raise ValueError("duplicate keys in one segment")
    encoded = [face_ids[i].encode("utf-8") for i in order]
    offsets = np.zeros(len(encoded) + 1, dtype=np.uint64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return b"".join(
        [
            MAGIC,
            np.uint64(len(keys)).tobytes(),
            sorted_keys.astype("<u8").tobytes(),
            offsets.astype("<u8").tobytes(),
            *encoded,
        ]
    )


class SegmentIds:
    """Read-only view over one sidecar (bytes or a memory-mapped file), validated on open."""

    def __init__(self, buffer: bytes | mmap.mmap, *, source: str = "sidecar") -> None:
        self._buffer = buffer
        self.source = source
        size = len(buffer)
        if size < _HEADER or bytes(buffer[: len(MAGIC)]) != MAGIC:
            raise IndexCorrupt(f"{source}: not a face-id sidecar (bad magic or too short)")
        n = int(np.frombuffer(buffer, dtype="<u8", count=1, offset=len(MAGIC))[0])
        table_end = _HEADER + 8 * n + 8 * (n + 1)
        if n > size or table_end > size:
            raise IndexCorrupt(f"{source}: truncated (header says {n} entries, {size} bytes)")
        self.keys: np.ndarray = np.frombuffer(buffer, dtype="<u8", count=n, offset=_HEADER)
        self._offsets: np.ndarray = np.frombuffer(
            buffer, dtype="<u8", count=n + 1, offset=_HEADER + 8 * n
        )
        self._blob_start = table_end
        if int(self._offsets[0]) != 0 or table_end + int(self._offsets[-1]) != size:
            raise IndexCorrupt(f"{source}: truncated or padded (offsets do not match size)")
        if n > 1 and not (
            np.all(self.keys[1:] > self.keys[:-1])
            and np.all(self._offsets[1:] >= self._offsets[:-1])
        ):
            raise IndexCorrupt(f"{source}: keys not strictly sorted or offsets decreasing")

    @classmethod
    def open(cls, path: Path) -> SegmentIds:
        """Memory-map a sidecar file: pages load lazily, shared between processes."""
        with path.open("rb") as handle:
            if path.stat().st_size == 0:
                raise IndexCorrupt(f"{path}: empty sidecar")
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return cls(mapped, source=str(path))

    def __len__(self) -> int:
        return len(self.keys)

    def face_id(self, position: int) -> str:
        start = self._blob_start + int(self._offsets[position])
        end = self._blob_start + int(self._offsets[position + 1])
        return bytes(self._buffer[start:end]).decode("utf-8")

    def face_ids(self, positions: np.ndarray | Sequence[int]) -> list[str]:
        """Face ids at many positions (one vectorised offset lookup; hot in search)."""
        pos = np.asarray(positions, dtype=np.int64)
        starts = (self._offsets[pos] + self._blob_start).tolist()
        ends = (self._offsets[pos + 1] + self._blob_start).tolist()
        buffer = self._buffer
        return [buffer[s:e].decode("utf-8") for s, e in zip(starts, ends, strict=True)]

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Position of each key in this sidecar, or -1 where absent (binary search)."""
        keys = np.asarray(keys, dtype=np.uint64)
        if len(self.keys) == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self.keys, keys)
        np.minimum(pos, len(self.keys) - 1, out=pos)
        pos[self.keys[pos] != keys] = -1
        return pos

    def items(self) -> Iterator[tuple[int, str]]:
        for i in range(len(self)):
            yield int(self.keys[i]), self.face_id(i)
