"""SQLite adapter of the people store (:class:`facesearch.people.ports.PeopleStore`).

Four tables of the embedded mode's one file (:mod:`.catalog` holds the schema):
``person_faces``, ``persons``, ``face_tombstones`` and ``corrections``, each row a
collection id, a record id, its ``version``, the columns queries filter on and the
record as JSON (:func:`facesearch.storage.records.people_document`, the shape the
Firestore adapter stores too). ``apply`` is one ``BEGIN IMMEDIATE`` transaction: it
checks the collection takes writes, compares the version of every expected record
(absent = 0), then writes — so two processes sharing the file (``facesearch serve``
and ``facesearch ingest``) serialise exactly as two Cloud Run instances do on
Firestore.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from facesearch.errors import CollectionClosed, NotFound
from facesearch.logs import log_fields
from facesearch.people.ports import ID_FIELDS, ChangeSet, Kind, PeoplePurged
from facesearch.people.types import ClusterFace, Correction
from facesearch.storage.local.catalog import LEGACY_TABLES, SqliteDb
from facesearch.storage.metadata import DEFAULT_COLLECTION, check_collection_id
from facesearch.storage.paging import Page, decode_cursor, page_of
from facesearch.storage.people import Equal, PeopleStoreBase, clamp_page
from facesearch.storage.records import people_document, people_record

logger = logging.getLogger(__name__)

#: ids per ``IN (...)`` (SQLite's bound-parameter limit is 999 on old builds)
_CHUNK = 500
#: kind -> (table, id column)
TABLES: dict[Kind, tuple[str, str]] = {
    Kind.FACE: ("person_faces", ID_FIELDS[Kind.FACE]),
    Kind.PERSON: ("persons", ID_FIELDS[Kind.PERSON]),
    Kind.TOMBSTONE: ("face_tombstones", ID_FIELDS[Kind.TOMBSTONE]),
    Kind.CORRECTION: ("corrections", ID_FIELDS[Kind.CORRECTION]),
}


def _where(equal: Equal | None) -> tuple[str, list[Any]]:
    """A listing's filter as SQL: ``AND field = ?`` (``IS NULL`` for None)."""
    if equal is None:
        return "", []
    field, value = equal
    if value is None:
        return f"AND {field} IS NULL", []
    return f"AND {field} = ?", [value]


class SqlitePeopleStore(PeopleStoreBase):
    """One collection's people records in the embedded SQLite file."""

    def __init__(self, db: SqliteDb, collection_id: str = DEFAULT_COLLECTION) -> None:
        self._sql = db
        self._cid = check_collection_id(collection_id)

    @property
    def collection_id(self) -> str:
        return self._cid

    def __repr__(self) -> str:
        return f"SqlitePeopleStore({self._sql.path}, {self._cid})"

    # --- reads -------------------------------------------------------------------------

    def _select(self, kind: Kind, where: str = "", params: Sequence[Any] = ()) -> list[Any]:
        table, _ = TABLES[kind]
        rows = self._sql.query(
            f"SELECT * FROM {table} WHERE collection_id = ? {where}", [self._cid, *params]
        )
        return [people_record(kind, dict(row)) for row in rows]

    def _get(self, kind: Kind, ids: Iterable[str]) -> dict[str, Any]:
        _, key = TABLES[kind]
        wanted = list(dict.fromkeys(ids))
        out: dict[str, Any] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for record in self._select(kind, f"AND {key} IN ({marks})", chunk):
                out[getattr(record, key)] = record
        return out

    def faces_of_images(self, image_ids: Iterable[str]) -> list[ClusterFace]:
        wanted = sorted(set(image_ids))
        out: list[ClusterFace] = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            out += self._select(Kind.FACE, f"AND image_id IN ({marks})", chunk)
        return sorted(out, key=lambda f: f.face_id)

    def _page(
        self, kind: Kind, listing: str, equal: Equal | None, *, cursor: str | None, limit: int
    ) -> Page[Any]:
        _, key = TABLES[kind]
        where, params = _where(equal)
        if cursor is not None:
            where += f" AND {key} > ?"
            params = [*params, str(decode_cursor(listing, cursor, 1)[0])]
        items = self._select(kind, f"{where} ORDER BY {key} LIMIT ?", [*params, limit])
        return page_of(items, limit, listing, lambda last: [getattr(last, key)])

    def list_corrections(self, *, before: str | None = None, limit: int = 100) -> list[Correction]:
        where, params = "", []
        if before is not None:
            where, params = "AND correction_id < ?", [before]
        return self._select(
            Kind.CORRECTION,
            f"{where} ORDER BY correction_id DESC LIMIT ?",
            [*params, clamp_page(limit)],
        )

    # --- the one write path ------------------------------------------------------------------

    def apply(self, changes: ChangeSet) -> None:
        changes.validate()
        with self._sql.write(self._cid) as db:
            for key in changes.expect:
                changes.check_version(key, self._version(db, *key))
            for kind, ident in changes.deletes():
                self._delete(db, kind, ident)
            for (kind, ident), record, version in changes.writes():
                self._put(db, kind, ident, people_document(kind, record, version))

    def _version(self, db: sqlite3.Connection, kind: Kind, ident: str) -> int:
        table, key = TABLES[kind]
        row = db.execute(
            f"SELECT version FROM {table} WHERE collection_id = ? AND {key} = ?",
            (self._cid, ident),
        ).fetchone()
        return 0 if row is None else int(row["version"])

    def _delete(self, db: sqlite3.Connection, kind: Kind, ident: str) -> None:
        table, key = TABLES[kind]
        db.execute(f"DELETE FROM {table} WHERE collection_id = ? AND {key} = ?", (self._cid, ident))

    def _put(
        self, db: sqlite3.Connection, kind: Kind, ident: str, document: Mapping[str, Any]
    ) -> None:
        table, key = TABLES[kind]
        row = {key: ident, **document}
        columns = ",".join(["collection_id", *row])
        marks = ",".join("?" * (len(row) + 1))
        db.execute(
            f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({marks})",
            [self._cid, *row.values()],
        )

    # --- counts and erase ------------------------------------------------------------------------

    def _count(self, kind: Kind, equal: Equal | None = None) -> int:
        table, _ = TABLES[kind]
        where, params = _where(equal)
        sql = f"SELECT COUNT(*) AS n FROM {table} WHERE collection_id = ? {where}"
        return int(self._sql.query(sql, (self._cid, *params))[0]["n"])

    def purge(self, *, limit: int = 500) -> PeoplePurged:
        removed = 0
        with self._sql.tx() as db:  # deleting is always allowed (this is the erase)
            for table, key in TABLES.values():
                cursor = db.execute(
                    f"DELETE FROM {table} WHERE collection_id = ? AND {key} IN "
                    f"(SELECT {key} FROM {table} WHERE collection_id = ? LIMIT ?)",
                    (self._cid, self._cid, max(limit - removed, 0)),
                )
                removed += cursor.rowcount
        return PeoplePurged(removed, self.counts().records == 0)


def absorb_legacy(db: SqliteDb) -> None:
    """Turn a schema-2 file's manual persons and labels into people records, then drop the
    legacy tables (:mod:`facesearch.people.legacy`). Runs once, right after the migration;
    uses the default settings (a re-cluster recomputes statistics with the configured ones).
    """
    from facesearch.people.adapters import face_input
    from facesearch.people.legacy import LegacyPerson, absorb
    from facesearch.people.settings import PeopleSettings
    from facesearch.storage.local.metadata import SqliteMetadataStore

    persons: dict[str, list[LegacyPerson]] = {}
    for row in db.query("SELECT collection_id, person_id, data FROM legacy_persons"):
        data = json.loads(row["data"])
        persons.setdefault(row["collection_id"], []).append(LegacyPerson.of(row["person_id"], data))
    labels: dict[str, dict[str, str]] = {}
    for row in db.query("SELECT collection_id, face_id, person_id FROM legacy_labels"):
        labels.setdefault(row["collection_id"], {})[row["face_id"]] = row["person_id"]
    for collection_id in sorted(set(persons) | set(labels)):
        wanted = labels.get(collection_id, {})
        records = SqliteMetadataStore(db, collection_id).get_faces(sorted(wanted))
        try:
            absorb(
                SqlitePeopleStore(db, collection_id),
                persons.get(collection_id, []),
                wanted,
                {face_id: face_input(record) for face_id, record in records.items()},
                PeopleSettings(),
            )
        except (CollectionClosed, NotFound) as exc:  # being erased, or gone: nothing to keep
            logger.warning(
                "legacy persons of a closed collection dropped",
                extra=log_fields(collection=collection_id, error=str(exc)),
            )
    with db.tx() as conn:
        for table in LEGACY_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
