"""Firestore adapter of the people store (:class:`facesearch.people.ports.PeopleStore`).

Per face collection, beside its ``images`` and ``faces`` (top level for ``default``,
``collections/c/...`` otherwise): ``person_faces/{face_id}``, ``persons/{person_id}``,
``face_tombstones/{face_id}`` and ``corrections/{correction_id}``. Each document is
:func:`facesearch.storage.records.people_document`: ``version``, the fields queries
filter on (``image_id``, ``person_id``; ``merged_into``), the embedding as bytes and
the rest as JSON text (Firestore refuses nested arrays). The queries need no composite
index: equality on one field ordered by document id.

``apply`` is one transaction: it reads the collection's document (an erasing
collection takes no writes, :class:`CollectionClosed`) and every expected document
(missing, or an old manual person without a ``version``, reads as 0), raises
:class:`StaleRead` on a mismatch, else writes each record with ``version + 1`` —
at most 500 writes, Firestore's limit, which the change-set contract guarantees.
Firestore's own contention retry re-runs the function, which re-reads the
versions; a mismatch is never retried here (the caller re-decides), and contention
that outlasts the client's attempts is a :class:`StaleRead` too: another writer
holds what this decision read, so re-reading is exactly what helps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from google.api_core import exceptions as gexc

from facesearch.errors import StaleRead
from facesearch.people.legacy import LegacyPerson
from facesearch.people.ports import ID_FIELDS, ChangeSet, Kind, PeoplePurged
from facesearch.people.types import ClusterFace, Correction
from facesearch.storage.gcp.firestore import firestore, snapshot_data, transient
from facesearch.storage.gcp.metadata import COLLECTIONS, check_open, collection_path
from facesearch.storage.metadata import DEFAULT_COLLECTION, check_collection_id
from facesearch.storage.paging import Page, decode_cursor, page_of
from facesearch.storage.people import Equal, PeopleStoreBase, clamp_page
from facesearch.storage.records import people_document, people_record

_NAME = "__name__"
#: documents per batched read / delete
_BATCH = 300
#: values per ``in`` filter (Firestore's limit is 30)
_IN = 30
#: transaction attempts on contention before the caller re-reads and re-decides (the client
#: backs off up to seconds between attempts; a re-decision is cheaper than waiting longer)
_TX_ATTEMPTS = 3
#: kind -> Firestore collection name
COLLECTION_NAMES: dict[Kind, str] = {
    Kind.FACE: "person_faces",
    Kind.PERSON: "persons",
    Kind.TOMBSTONE: "face_tombstones",
    Kind.CORRECTION: "corrections",
}


class FirestorePeopleStore(PeopleStoreBase):
    """One collection's people records in Firestore, on the instance's one client."""

    def __init__(self, client: Any, collection_id: str = DEFAULT_COLLECTION) -> None:
        self.client = client
        self._cid = check_collection_id(collection_id)
        prefix = collection_path(self._cid)
        self._refs = {
            kind: client.collection(f"{prefix}{n}") for kind, n in COLLECTION_NAMES.items()
        }
        self._record = client.collection(COLLECTIONS).document(self._cid)
        self._faces_of_metadata = client.collection(f"{prefix}faces")

    @property
    def collection_id(self) -> str:
        return self._cid

    def __repr__(self) -> str:
        return f"FirestorePeopleStore({self.client.project}, {self._cid})"

    # --- reads -------------------------------------------------------------------------

    @transient
    def _get(self, kind: Kind, ids: Iterable[str]) -> dict[str, Any]:
        wanted = list(dict.fromkeys(ids))
        out: dict[str, Any] = {}
        for start in range(0, len(wanted), _BATCH):
            refs = [self._refs[kind].document(i) for i in wanted[start : start + _BATCH]]
            for snap in self.client.get_all(refs):
                if snap.exists:
                    out[snap.id] = people_record(kind, snapshot_data(snap))
        return out

    @transient
    def faces_of_images(self, image_ids: Iterable[str]) -> list[ClusterFace]:
        wanted = sorted(set(image_ids))
        out: list[ClusterFace] = []
        for start in range(0, len(wanted), _IN):
            in_images = firestore.FieldFilter("image_id", "in", wanted[start : start + _IN])
            query = self._refs[Kind.FACE].where(filter=in_images)
            out += [people_record(Kind.FACE, snapshot_data(s)) for s in query.stream()]
        return sorted(out, key=lambda f: f.face_id)

    def _where(self, kind: Kind, equal: Equal | None) -> Any:
        """The kind's documents, filtered on ``field == value`` (a None value: null)."""
        if equal is None:
            return self._refs[kind]
        return self._refs[kind].where(filter=firestore.FieldFilter(equal[0], "==", equal[1]))

    @transient
    def _page(
        self, kind: Kind, listing: str, equal: Equal | None, *, cursor: str | None, limit: int
    ) -> Page[Any]:
        query = self._where(kind, equal).order_by(_NAME)
        if cursor is not None:
            after = str(decode_cursor(listing, cursor, 1)[0])
            query = query.start_after({_NAME: self._refs[kind].document(after)})
        items = [people_record(kind, snapshot_data(s)) for s in query.limit(limit).stream()]
        return page_of(items, limit, listing, lambda last: [getattr(last, ID_FIELDS[kind])])

    @transient
    def list_corrections(self, *, before: str | None = None, limit: int = 100) -> list[Correction]:
        query = self._refs[Kind.CORRECTION].order_by(
            "correction_id", direction=firestore.Query.DESCENDING
        )
        if before is not None:
            query = query.where(filter=firestore.FieldFilter("correction_id", "<", before))
        return [
            people_record(Kind.CORRECTION, snapshot_data(s))
            for s in query.limit(clamp_page(limit)).stream()
        ]

    # --- the one write path ------------------------------------------------------------------

    @transient
    def apply(self, changes: ChangeSet) -> None:
        changes.validate()
        keys = list(changes.expect)
        refs = [self._refs[kind].document(ident) for kind, ident in keys]

        def run(tx: Any) -> None:
            check_open(self._record, self._cid, tx)
            found = {
                snap.reference.path: int(snapshot_data(snap).get("version") or 0)
                for snap in self.client.get_all(refs, transaction=tx)
                if snap.exists
            }
            for key, ref in zip(keys, refs, strict=True):
                changes.check_version(key, found.get(ref.path, 0))
            for kind, ident in changes.deletes():
                tx.delete(self._refs[kind].document(ident))
            for (kind, ident), record, version in changes.writes():
                tx.set(self._refs[kind].document(ident), people_document(kind, record, version))

        try:
            firestore.transactional(run)(self.client.transaction(max_attempts=_TX_ATTEMPTS))
        except gexc.Aborted as exc:
            raise StaleRead(f"{changes.reason or 'apply'}: contended ({exc})") from exc
        except ValueError as exc:  # the client's "failed to commit transaction in N attempts"
            if isinstance(exc.__cause__, gexc.Aborted):
                raise StaleRead(f"{changes.reason or 'apply'}: contended ({exc})") from exc
            raise

    # --- counts and erase ------------------------------------------------------------------------

    @transient
    def _count(self, kind: Kind, equal: Equal | None = None) -> int:
        return int(self._where(kind, equal).count().get()[0][0].value)

    @transient
    def purge(self, *, limit: int = 500) -> PeoplePurged:
        removed = 0
        for ref in self._refs.values():
            left = limit - removed
            if left <= 0:
                break
            ids = [s.id for s in ref.select([]).limit(left).stream()]
            for start in range(0, len(ids), _BATCH):
                batch = self.client.batch()
                for doc_id in ids[start : start + _BATCH]:
                    batch.delete(ref.document(doc_id))
                batch.commit()
            removed += len(ids)
        done = all(not list(ref.select([]).limit(1).stream()) for ref in self._refs.values())
        return PeoplePurged(removed, done)

    # --- persons and labels from before clustering -----------------------------------------------

    @transient
    def legacy(self) -> tuple[list[LegacyPerson], dict[str, str]]:
        """The manual persons (documents without a ``version``) and the labels still on
        face documents (``person_id``), for :func:`facesearch.people.legacy.absorb`."""
        persons = [
            LegacyPerson.of(snap.id, data)
            for snap, data in self._snapshots(self._refs[Kind.PERSON])
            if "version" not in data
        ]
        labelled = self._faces_of_metadata.where(
            filter=firestore.FieldFilter("person_id", "!=", None)
        )
        labels = {snap.id: str(data["person_id"]) for snap, data in self._snapshots(labelled)}
        return persons, labels

    @transient
    def clear_legacy_labels(self, face_ids: Iterable[str]) -> None:
        """Remove the old ``person_id`` field from face documents once absorbed."""
        ids = sorted(set(face_ids))
        for start in range(0, len(ids), _BATCH):
            batch = self.client.batch()
            for face_id in ids[start : start + _BATCH]:
                ref = self._faces_of_metadata.document(face_id)
                batch.update(ref, {"person_id": firestore.DELETE_FIELD})
            batch.commit()

    @staticmethod
    def _snapshots(query: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
        for snap in query.stream():
            yield snap, snapshot_data(snap)
