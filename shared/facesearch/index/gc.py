"""Garbage collection: delete segment objects nobody can need any more.

Retired segments (replaced by compaction) go once the grace period has passed
since they were replaced; orphans (uploaded by a writer that died or lost
before committing) go once the object itself is that old. Objects listed by the
manifest, and foreign objects under ``segments/``, are never touched. The
grace period must exceed the longest reader refresh interval and the longest
upload-to-commit time of a writer (docs/index.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from facesearch.index.commit import ManifestLog
from facesearch.index.manifest import SEGMENTS_PREFIX, segment_id_of
from facesearch.logs import log_fields

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GcResult:
    deleted_objects: tuple[str, ...]
    forgotten_retired: int


def collect_garbage(log: ManifestLog, *, grace_s: float, attempts: int) -> GcResult:
    """One GC pass over the store behind ``log`` (one list call, deletes, one manifest swap)."""
    manifest, _ = log.read()
    if manifest is None:
        return GcResult((), 0)
    now = log.clock()
    live_ids = {s.id for s in manifest.segments}
    retired_at = {r.id: r.retired_at for r in manifest.retired}
    expired = {sid for sid, when in retired_at.items() if now - when >= grace_s}
    doomed: list[str] = []
    for info in log.store.list(SEGMENTS_PREFIX):
        sid = segment_id_of(info.name)
        if sid is None or sid in live_ids:
            continue
        if sid in retired_at:
            if sid in expired:
                doomed.append(info.name)
        elif now - info.updated >= grace_s:
            doomed.append(info.name)
    for name in doomed:
        log.store.delete(name)
    forgotten = _forget_retired(log, expired, attempts) if expired else 0
    if doomed or forgotten:
        logger.info(
            "index gc",
            extra=log_fields(deleted_objects=len(doomed), forgotten_retired=forgotten),
        )
    return GcResult(tuple(doomed), forgotten)


def _forget_retired(log: ManifestLog, expired: set[str], attempts: int) -> int:
    """Drop GC'd entries from the manifest's retired list (after their objects are gone)."""
    for attempt in range(1, attempts + 1):
        manifest, generation = log.read()
        if manifest is None:
            return 0
        keep = tuple(r for r in manifest.retired if r.id not in expired)
        if len(keep) == len(manifest.retired):
            return 0
        new = log.successor(manifest, retired=keep)
        if log.swap(new, generation, attempt, "gc"):
            return len(manifest.retired) - len(keep)
    return 0
