"""The embedded mode's SQLite file: connection, schema and its migration, the catalog.

One file holds every collection (a ``collection_id`` column in every primary key);
:class:`SqliteDb` owns the one connection, its lock and the schema, migrating files
from before collections (schema 1) in place into the ``default`` collection; schema 3
added the video tables, which files of schema 2 get when they are next opened.
:class:`SqliteCatalog` keeps the collection records and hands out scoped stores
(:class:`facesearch.storage.local.metadata.SqliteMetadataStore`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from facesearch.errors import CollectionClosed, Conflict, NotFound, TransientError
from facesearch.storage.catalog import CollectionChange, CollectionRecord, CollectionStatus
from facesearch.storage.local.sqlite import private_file
from facesearch.storage.metadata import DEFAULT_COLLECTION, check_collection_id, now
from facesearch.storage.paging import Page, clamp_limit, decode_cursor, page_of
from facesearch.storage.records import (
    collection_from_dict,
    collection_to_dict,
    current_collection,
    stored_collection,
    updated_collection,
)

if TYPE_CHECKING:
    from facesearch.storage.local.metadata import SqliteMetadataStore
    from facesearch.storage.local.people import SqlitePeopleStore

#: 2: collections; 3: videos (tracks, chunk markers) and, separately, people (persons out of
#: the face records, into their own tables); 4: both. Migrations key on the tables and
#: columns a file has, not on this number, so a file of either schema 3 opens.
SCHEMA_VERSION = 4
#: ids per ``IN (...)`` lookup (SQLite's bound-parameter limit is 999 in old builds)
_IN_BATCH = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY, status TEXT NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    collection_id TEXT NOT NULL, image_id TEXT NOT NULL, status TEXT NOT NULL,
    updated_at REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (collection_id, image_id)
);
CREATE INDEX IF NOT EXISTS images_status
    ON images (collection_id, status, updated_at DESC, image_id DESC);
CREATE TABLE IF NOT EXISTS faces (
    collection_id TEXT NOT NULL, face_id TEXT NOT NULL, image_id TEXT NOT NULL,
    face_index INTEGER NOT NULL, created_at REAL NOT NULL,
    embedding BLOB NOT NULL, data TEXT NOT NULL, PRIMARY KEY (collection_id, face_id)
);
CREATE INDEX IF NOT EXISTS faces_image ON faces (collection_id, image_id, face_index, face_id);
CREATE TABLE IF NOT EXISTS person_faces (
    collection_id TEXT NOT NULL, face_id TEXT NOT NULL, version INTEGER NOT NULL,
    image_id TEXT NOT NULL, person_id TEXT, embedding BLOB NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (collection_id, face_id)
);
CREATE INDEX IF NOT EXISTS person_faces_image ON person_faces (collection_id, image_id, face_id);
CREATE INDEX IF NOT EXISTS person_faces_person
    ON person_faces (collection_id, person_id, face_id);
CREATE TABLE IF NOT EXISTS persons (
    collection_id TEXT NOT NULL, person_id TEXT NOT NULL, version INTEGER NOT NULL,
    merged_into TEXT, data TEXT NOT NULL, PRIMARY KEY (collection_id, person_id)
);
CREATE INDEX IF NOT EXISTS persons_roots ON persons (collection_id, merged_into, person_id);
CREATE TABLE IF NOT EXISTS face_tombstones (
    collection_id TEXT NOT NULL, face_id TEXT NOT NULL, version INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (collection_id, face_id)
);
CREATE TABLE IF NOT EXISTS corrections (
    collection_id TEXT NOT NULL, correction_id TEXT NOT NULL, version INTEGER NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (collection_id, correction_id)
);
CREATE TABLE IF NOT EXISTS videos (
    collection_id TEXT NOT NULL, video_id TEXT NOT NULL, status TEXT NOT NULL,
    updated_at REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (collection_id, video_id)
);
CREATE TABLE IF NOT EXISTS tracks (
    collection_id TEXT NOT NULL, track_id TEXT NOT NULL, video_id TEXT NOT NULL,
    track_index INTEGER NOT NULL, mean_embedding BLOB NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (collection_id, track_id)
);
CREATE INDEX IF NOT EXISTS tracks_video ON tracks (collection_id, video_id, track_index, track_id);
CREATE TABLE IF NOT EXISTS video_chunks (
    collection_id TEXT NOT NULL, chunk_id TEXT NOT NULL, video_id TEXT NOT NULL,
    plan_id TEXT NOT NULL, chunk_index INTEGER NOT NULL, attempts INTEGER NOT NULL,
    done INTEGER NOT NULL, PRIMARY KEY (collection_id, chunk_id)
);
CREATE INDEX IF NOT EXISTS video_chunks_plan ON video_chunks (collection_id, plan_id, done);
"""
#: schema 2, frozen: the target of the schema-1 migration (3 builds on it)
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY, status TEXT NOT NULL, data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    collection_id TEXT NOT NULL, image_id TEXT NOT NULL, status TEXT NOT NULL,
    updated_at REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (collection_id, image_id)
);
CREATE TABLE IF NOT EXISTS faces (
    collection_id TEXT NOT NULL, face_id TEXT NOT NULL, image_id TEXT NOT NULL,
    face_index INTEGER NOT NULL, person_id TEXT, created_at REAL NOT NULL,
    embedding BLOB NOT NULL, data TEXT NOT NULL, PRIMARY KEY (collection_id, face_id)
);
CREATE TABLE IF NOT EXISTS persons (
    collection_id TEXT NOT NULL, person_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (collection_id, person_id)
);
"""
#: the videos, tracks and video_chunks tables only get added: ``_SCHEMA`` creates them
#: schema 1 (no collections) -> 2: every row moves into the default collection
_MIGRATE_1_TO_2 = f"""
DROP INDEX IF EXISTS images_status;
DROP INDEX IF EXISTS faces_image;
DROP INDEX IF EXISTS faces_person;
ALTER TABLE images RENAME TO images_v1;
ALTER TABLE faces RENAME TO faces_v1;
ALTER TABLE persons RENAME TO persons_v1;
{_SCHEMA_2}
INSERT INTO images SELECT '{DEFAULT_COLLECTION}', image_id, status, updated_at, data FROM images_v1;
INSERT INTO faces SELECT '{DEFAULT_COLLECTION}', face_id, image_id, face_index, person_id,
    created_at, embedding, data FROM faces_v1;
INSERT INTO persons SELECT '{DEFAULT_COLLECTION}', person_id, data FROM persons_v1;
DROP TABLE images_v1;
DROP TABLE faces_v1;
DROP TABLE persons_v1;
"""
#: schema 2 (manual persons, labels on faces) -> 3 (people): the old persons and labels are
#: set aside, then absorbed as user-assigned people records (:func:`absorb_legacy`)
_MIGRATE_2_TO_3 = """
CREATE TABLE legacy_labels (
    collection_id TEXT NOT NULL, face_id TEXT NOT NULL, person_id TEXT NOT NULL,
    PRIMARY KEY (collection_id, face_id)
);
INSERT INTO legacy_labels SELECT collection_id, face_id, person_id FROM faces
    WHERE person_id IS NOT NULL;
DROP INDEX IF EXISTS faces_person;
ALTER TABLE faces DROP COLUMN person_id;
ALTER TABLE persons RENAME TO legacy_persons;
"""
LEGACY_TABLES = ("legacy_labels", "legacy_persons")


class SqliteDb:
    """The file, its writer connection and lock, and the schema (migrated when older).

    Reads outside a transaction use a connection per thread instead of the writer's
    lock: in WAL mode readers never block each other or the writer, so concurrent
    searches do not queue behind one lock for their metadata (issue 16). A read in a
    thread that holds the write transaction uses the writer's connection (it must see
    its own uncommitted rows). ``:memory:`` files have one connection only.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        private_file(self.path)  # embeddings are biometric data: 0600 in a 0700 folder
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(
            self.path, check_same_thread=False, timeout=30.0, isolation_level=None
        )
        self.conn.row_factory = sqlite3.Row
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()  # not ``lock``: a reader must not wait for it
        self._closed = False
        with self.lock:
            if self.path != ":memory:":
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            with self.tx() as db:
                self._migrate(db)
            self._absorb_legacy()

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "images" in tables:
            columns = {r[1] for r in db.execute("PRAGMA table_info(images)")}
            if "collection_id" not in columns:
                _script(db, _MIGRATE_1_TO_2)
            if "person_id" in {r[1] for r in db.execute("PRAGMA table_info(faces)")}:
                _script(db, _MIGRATE_2_TO_3)
        _script(db, _SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _absorb_legacy(self) -> None:
        """Manual persons and labels of a schema-2 file become people records (once)."""
        tables = {r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables & set(LEGACY_TABLES):
            return
        from facesearch.storage.local.people import absorb_legacy

        absorb_legacy(self)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction (serialises writers across processes too)."""
        with self.lock:
            depth = getattr(self._local, "writing", 0)
            self._local.writing = depth + 1
            try:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:  # locked past the timeout
                    raise TransientError(f"metadata store busy: {exc}") from exc
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            finally:
                self._local.writing = depth

    @contextmanager
    def write(self, collection_id: str) -> Iterator[sqlite3.Connection]:
        """A transaction that first checks the collection still takes writes."""
        with self.tx() as db:
            status = collection_status(db, collection_id)
            if status is None:
                raise NotFound(f"collection {collection_id} does not exist")
            if status is not CollectionStatus.ACTIVE:
                raise CollectionClosed(
                    f"collection {collection_id} is {status}: nothing is written"
                )
            yield db

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        reader = self._reader()
        try:
            if reader is None:
                with self.lock:
                    return list(self.conn.execute(sql, params))
            return list(reader.execute(sql, params))
        except sqlite3.OperationalError as exc:
            raise TransientError(f"metadata store busy: {exc}") from exc

    def rows_by_ids(
        self, table: str, key: str, collection_id: str, ids: Sequence[str], columns: str = "*"
    ) -> list[sqlite3.Row]:
        """The rows of one collection whose ``key`` is one of ``ids`` (each once), in
        batches that stay under SQLite's bound-parameter limit: the stores' batch lookups."""
        unique = list(dict.fromkeys(ids))
        rows: list[sqlite3.Row] = []
        for start in range(0, len(unique), _IN_BATCH):
            batch = unique[start : start + _IN_BATCH]
            marks = ",".join("?" * len(batch))
            rows += self.query(
                f"SELECT {columns} FROM {table} WHERE collection_id = ? AND {key} IN ({marks})",
                [collection_id, *batch],
            )
        return rows

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's read connection (None: use the writer's, under its lock)."""
        writing: int = getattr(self._local, "writing", 0)
        if self.path == ":memory:" or writing > 0 or self._closed:
            return None
        reader: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = sqlite3.connect(
                self.path, check_same_thread=False, timeout=30.0, isolation_level=None
            )
            reader.row_factory = sqlite3.Row
            self._local.reader = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    def close(self) -> None:
        with self.lock:
            self._closed = True
            with self._readers_lock:
                for reader in self._readers:
                    reader.close()
                self._readers.clear()
            self.conn.close()


def collection_status(db: sqlite3.Connection, collection_id: str) -> CollectionStatus | None:
    row = db.execute(
        "SELECT status FROM collections WHERE collection_id = ?", (collection_id,)
    ).fetchone()
    if row is None:
        return CollectionStatus.ACTIVE if collection_id == DEFAULT_COLLECTION else None
    return CollectionStatus(row["status"])


class SqliteCatalog:
    """The collections table, and a scoped store per collection on the same connection."""

    def __init__(self, target: Path | str | SqliteDb) -> None:
        self.db = target if isinstance(target, SqliteDb) else SqliteDb(target)

    def __repr__(self) -> str:
        return f"SqliteCatalog({self.db.path})"

    def store(self, collection_id: str) -> SqliteMetadataStore:
        from facesearch.storage.local.metadata import SqliteMetadataStore

        return SqliteMetadataStore(self.db, check_collection_id(collection_id))

    def people(self, collection_id: str) -> SqlitePeopleStore:
        from facesearch.storage.local.people import SqlitePeopleStore

        return SqlitePeopleStore(self.db, check_collection_id(collection_id))

    def create_collection(self, record: CollectionRecord) -> CollectionRecord:
        check_collection_id(record.collection_id)
        t = now()
        record = replace(record, created_at=t, updated_at=t)
        with self.db.tx() as db:
            try:
                db.execute(
                    "INSERT INTO collections (collection_id, status, data) VALUES (?, ?, ?)",
                    (
                        record.collection_id,
                        str(record.status),
                        sql_json(collection_to_dict(record)),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"collection {record.collection_id} already exists") from exc
        return record

    def get_collection(self, collection_id: str) -> CollectionRecord | None:
        rows = self.db.query(
            "SELECT data FROM collections WHERE collection_id = ?", (collection_id,)
        )
        return stored_collection(collection_id, json.loads(rows[0]["data"]) if rows else None)

    def list_collections(
        self, *, cursor: str | None = None, limit: int = 100
    ) -> Page[CollectionRecord]:
        limit = clamp_limit(limit)
        after = decode_cursor("collections", cursor, 1)[0] if cursor else ""
        rows = self.db.query(
            "SELECT data FROM collections WHERE collection_id > ? ORDER BY collection_id LIMIT ?",
            (after, limit),
        )
        items = [collection_from_dict(json.loads(r["data"])) for r in rows]
        return page_of(items, limit, "collections", lambda last: [last.collection_id])

    def update_collection(
        self, collection_id: str, **change: Unpack[CollectionChange]
    ) -> CollectionRecord:
        with self.db.tx() as db:
            row = db.execute(
                "SELECT data FROM collections WHERE collection_id = ?", (collection_id,)
            ).fetchone()
            stored = json.loads(row["data"]) if row is not None else None
            current = current_collection(collection_id, stored)
            record = updated_collection(current, change)
            db.execute(
                "INSERT OR REPLACE INTO collections (collection_id, status, data) VALUES (?, ?, ?)",
                (collection_id, str(record.status), sql_json(collection_to_dict(record))),
            )
        return record


def _script(db: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def sql_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))
