"""face_id -> 64-bit USearch key: stable hashing with collision probing.

Why hash instead of a counter: a key derived from the face id alone does not
depend on the manifest a writer started from, so a segment built before losing
a commit race can usually be reused as is on the retry (no HNSW rebuild), and a
rebuild of the index from Firestore yields the same keys.

Why it is still collision-safe: keys are 63 bits of BLAKE2b (about 3e-8 odds of
any collision among a million faces, but never assumed away). A key is only
ever *assigned* at commit time, against the manifest being swapped from: probe
``p = 0, 1, 2, ...`` takes ``key(face_id, p)`` until the key is not live for a
different face id. The highest probe ever used is recorded in the manifest
(``max_probe``), so "is this face already live?" checks every key the face
could hold, and the sidecar of each segment stores the exact key -> face_id
pairs, so lookups never rely on the hash being injective.
"""

from __future__ import annotations

import hashlib

import numpy as np

KEY_MASK = (1 << 63) - 1  # keeps clear of usearch's reserved all-ones "free" key
MAX_FACE_ID_BYTES = 1024
#: Far more probes than any plausible run of collisions needs; reaching it means a bug.
MAX_PROBE = 64


def face_key(face_id: str, probe: int = 0) -> int:
    """The key ``face_id`` takes at probe ``probe`` (stable across processes and releases)."""
    digest = hashlib.blake2b(
        face_id.encode("utf-8"), digest_size=8, person=b"facesearch-key1", salt=_salt(probe)
    ).digest()
    return int.from_bytes(digest, "little") & KEY_MASK


def face_keys(face_ids: list[str], probe: int = 0) -> np.ndarray:
    """Vector of keys (uint64) for a batch at one probe depth."""
    return np.fromiter((face_key(f, probe) for f in face_ids), dtype=np.uint64, count=len(face_ids))


def check_face_id(face_id: object) -> str:
    """Face ids are non-empty UTF-8 strings of bounded size; anything else is a caller bug."""
    if not isinstance(face_id, str) or not face_id:
        raise ValueError(f"face id must be a non-empty string, got {face_id!r}")
    if len(face_id.encode("utf-8")) > MAX_FACE_ID_BYTES:
        raise ValueError(f"face id longer than {MAX_FACE_ID_BYTES} bytes: {face_id[:40]!r}...")
    return face_id


def _salt(probe: int) -> bytes:
    if not 0 <= probe <= MAX_PROBE:
        raise ValueError(f"probe {probe} outside 0..{MAX_PROBE}")
    return probe.to_bytes(16, "little")
