"""Erasing a collection: every record, crop, index object and ledger entry, then proof.

The collection is first marked ``erasing`` (stores refuse writes into it from that
moment, in the same transaction as each write, so a late upload cannot resurrect
anything), then removed in bounded steps — each step is small enough for one Pub/Sub
push in the cloud, where the indexer re-publishes a continuation until the work is
done — and finally scanned: the metadata store, the people store (persons, their
faces' clustering records with embeddings, tombstones, the correction log), the
collection's index objects, its crops, its Cloudinary ledger entries and this
instance's cached index segments must all be empty (query instances drop their
cached copies when they see the collection closed:
:meth:`facesearch.api.service.QueryService.close`). Only then is it marked
``erased``, with a report of what was removed and what the scan found. A scan that
finds leftovers (something written just before the status change landed) sends the
job round again instead of declaring success.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facesearch.errors import CannotErase
from facesearch.logs import log_fields
from facesearch.people.ports import PeopleStore
from facesearch.storage.blob import BlobStore
from facesearch.storage.catalog import Catalog, CollectionStatus
from facesearch.storage.ledger import EventLedger
from facesearch.storage.metadata import DEFAULT_COLLECTION, MetadataStore, collection_prefix

logger = logging.getLogger(__name__)

#: records, objects and ledger entries removed per step (one push request's worth)
STEP_BUDGET = 2000


@dataclass
class EraseStep:
    """What one step removed; ``done`` once everything of the collection is gone."""

    removed: dict[str, int] = field(default_factory=dict)
    done: bool = False


class EraseJob:
    def __init__(
        self,
        catalog: Catalog,
        *,
        stores: Callable[[str], MetadataStore],
        people: Callable[[str], PeopleStore],
        crops: BlobStore,
        index_store: Callable[[str], BlobStore],
        ledger: EventLedger | None = None,
        caches: Callable[[str], Path] | None = None,
        step_budget: int = STEP_BUDGET,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.stores = stores
        self.people = people
        self.crops = crops
        self.index_store = index_store
        self.ledger = ledger
        self.caches = caches
        self.step_budget = step_budget
        self._clock = clock

    def start(self, collection_id: str) -> None:
        """Mark the collection erasing: from here on, nothing is written into it."""
        if collection_id == DEFAULT_COLLECTION:
            raise CannotErase(
                "the default collection cannot be erased; forget its images or persons instead"
            )
        record = self.catalog.update_collection(collection_id, status=CollectionStatus.ERASING)
        if not record.erase_report:
            self.catalog.update_collection(
                collection_id, erase_report={"started_at": self._clock(), "removed": {}}
            )
        logger.info("collection erase started", extra=log_fields(collection=collection_id))

    def step(self, collection_id: str) -> EraseStep:
        """Remove up to ``step_budget`` things; idempotent (a redelivered step does less)."""
        budget = self.step_budget
        result = EraseStep()
        purged = self.stores(collection_id).purge(limit=budget)
        result.removed.update(
            images=purged.images, faces=purged.faces, videos=purged.videos, tracks=purged.tracks
        )
        left = budget - sum(result.removed.values())
        people = self.people(collection_id).purge(limit=max(left, 0))
        result.removed["people_records"] = people.removed
        left -= people.removed
        result.removed["crops"] = self._delete_objects(
            self.crops, collection_prefix(collection_id), left
        )
        left -= result.removed["crops"]
        result.removed["index_objects"] = self._delete_objects(
            self.index_store(collection_id), "", left
        )
        left -= result.removed["index_objects"]
        result.removed["ledger"] = (
            self.ledger.purge_collection(collection_id, limit=max(left, 0)) if self.ledger else 0
        )
        result.removed["cache_files"] = self._clear_cache(collection_id)
        result.done = (
            purged.done
            and people.done
            and not any(result.removed[k] for k in ("crops", "index_objects", "ledger"))
        )
        self._record(collection_id, result)
        return result

    def finish(self, collection_id: str) -> dict[str, Any] | None:
        """Scan for leftovers; mark erased (with the report) when there are none."""
        leftovers = self.scan(collection_id)
        if any(leftovers.values()):
            logger.warning(
                "collection erase found leftovers; another round",
                extra=log_fields(collection=collection_id, leftovers=leftovers),
            )
            return None
        record = self.catalog.get_collection(collection_id)
        report = dict(record.erase_report) if record else {}
        report.update(finished_at=self._clock(), verified=True, leftovers=leftovers)
        self.catalog.update_collection(
            collection_id, status=CollectionStatus.ERASED, erase_report=report
        )
        logger.info("collection erased", extra=log_fields(collection=collection_id, **report))
        return report

    def run(self, collection_id: str, *, max_rounds: int = 10_000) -> dict[str, Any]:
        """Start (if needed), step until done, verify: the embedded mode's whole erase."""
        record = self.catalog.get_collection(collection_id)
        if record is not None and record.status is CollectionStatus.ERASED:
            return dict(record.erase_report)
        if record is None or record.status is CollectionStatus.ACTIVE:
            self.start(collection_id)
        for _ in range(max_rounds):
            if self.step(collection_id).done:
                report = self.finish(collection_id)
                if report is not None:
                    return report
        raise RuntimeError(f"collection {collection_id} still not empty after {max_rounds} rounds")

    def discard_index(self, collection_id: str) -> int:
        """Remove every index object of a closed collection (a commit that raced the
        erase cleans up after itself with this); returns how many were removed."""
        store = self.index_store(collection_id)
        versions = store.list_versions("")
        for info in versions:
            store.delete_version(info.name, info.generation)
        return len(versions) + self._clear_cache(collection_id)

    def scan(self, collection_id: str) -> dict[str, int]:
        """What of the collection is still stored anywhere (all zero when erased)."""
        counts = self.stores(collection_id).counts()
        people = self.people(collection_id).counts()
        return {
            "images": counts.images,
            "faces": counts.faces,
            "persons": people.persons + people.aliases,
            "people_records": people.faces + people.tombstones + people.corrections,
            "videos": counts.videos,
            "tracks": counts.tracks,
            "crops": len(self.crops.list_versions(collection_prefix(collection_id))),
            "index_objects": len(self.index_store(collection_id).list_versions("")),
            "ledger": self.ledger.count_collection(collection_id) if self.ledger else 0,
            "cache_files": len(self._cache_files(collection_id)),
        }

    def _cache_files(self, collection_id: str) -> list[Path]:
        """This instance's local copies of the collection's index segments."""
        if self.caches is None:
            return []
        root = self.caches(collection_id)
        return [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []

    def _clear_cache(self, collection_id: str) -> int:
        """Segment copies are embeddings too: removed with the bucket objects."""
        files = self._cache_files(collection_id)
        for path in files:
            path.unlink(missing_ok=True)
        if self.caches is not None:
            shutil.rmtree(self.caches(collection_id), ignore_errors=True)
        return len(files)

    @staticmethod
    def _delete_objects(store: BlobStore, prefix: str, budget: int) -> int:
        """Every version, noncurrent ones too: a versioned bucket (the index bucket keeps
        retired segments for a grace period) would otherwise keep the embeddings."""
        if budget <= 0:
            return 0
        versions = store.list_versions(prefix)[:budget]
        for info in versions:
            store.delete_version(info.name, info.generation)
        return len(versions)

    def _record(self, collection_id: str, step: EraseStep) -> None:
        record = self.catalog.get_collection(collection_id)
        report = dict(record.erase_report) if record else {}
        removed = dict(report.get("removed") or {})
        for kind, count in step.removed.items():
            removed[kind] = int(removed.get(kind, 0)) + count
        report["removed"] = removed
        report["steps"] = int(report.get("steps", 0)) + 1
        self.catalog.update_collection(collection_id, erase_report=report)
