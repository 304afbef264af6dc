"""SQLite adapter of the metadata port: the embedded mode's source of truth.

One file, WAL journal (readers do not block the writer, and the CLI can read
while an ingest runs in another process), one connection guarded by a lock
(the store is shared by request threads). Records are stored as JSON next to
the few columns that listings filter and sort on; the embedding is a BLOB.

Every row carries its collection id, part of every primary key: a scoped
:class:`SqliteMetadataStore` puts ``collection_id = ?`` into every statement, so
no read or write of one collection can touch another's. Writes check in the same
transaction that their collection is active (:class:`CollectionClosed` otherwise).
The file, its schema (and the migration of files from before collections) and the
collection records are in :mod:`.catalog`.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from facesearch.storage.local.catalog import SqliteDb, sql_json
from facesearch.storage.local.videos import SqliteVideos
from facesearch.storage.metadata import (
    DEFAULT_COLLECTION,
    FaceRecord,
    ImageRecord,
    ImageStatus,
    Purged,
    StoreCounts,
    check_collection_id,
    check_face_set,
    check_id,
    now,
    stamped,
)
from facesearch.storage.paging import Page, clamp_limit, decode_cursor, page_of
from facesearch.storage.records import (
    face_from_dict,
    face_to_dict,
    image_from_dict,
    image_to_dict,
)
from facesearch.storage.videos import VideoRecord

#: the records with a status, upserted alike
R = TypeVar("R", ImageRecord, VideoRecord)
#: erase order: faces first, so no face outlives its image or video record
_PURGE_ORDER = (
    ("faces", "face_id"),
    ("tracks", "track_id"),
    ("images", "image_id"),
    ("video_chunks", "chunk_id"),
    ("videos", "video_id"),
)


class SqliteMetadataStore(SqliteVideos):
    """One collection's images, faces and videos in a SQLite file (``:memory:`` too); its
    persons are the people store's (:mod:`.people`). The video methods are in
    :mod:`.videos`."""

    def __init__(
        self, target: Path | str | SqliteDb, collection_id: str = DEFAULT_COLLECTION
    ) -> None:
        self._sql = target if isinstance(target, SqliteDb) else SqliteDb(target)
        self._cid = check_collection_id(collection_id)
        self.path = self._sql.path

    @property
    def collection_id(self) -> str:
        return self._cid

    def __repr__(self) -> str:
        return f"SqliteMetadataStore({self.path}, {self._cid})"

    def close(self) -> None:
        self._sql.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """A transaction that first checks the collection still takes writes."""
        return self._sql.write(self._cid)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._sql.query(sql, params)

    def _put_stamped(
        self, table: str, key: str, record: R, to_dict: Callable[[R], dict[str, Any]]
    ) -> R:
        """Upsert an image or video record (``key``: its id column): keep its stored
        ``created_at``, stamp the rest, in a transaction that checks the collection."""
        record_id = getattr(record, key)
        with self._write() as db:
            row = db.execute(
                f"SELECT data FROM {table} WHERE collection_id = ? AND {key} = ?",
                (self._cid, record_id),
            ).fetchone()
            created = json.loads(row["data"])["created_at"] if row else None
            record = stamped(record, created, self._cid)
            db.execute(
                f"INSERT OR REPLACE INTO {table} (collection_id, {key}, status, updated_at, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    self._cid,
                    record_id,
                    str(record.status),
                    record.updated_at,
                    sql_json(to_dict(record)),
                ),
            )
        return record

    # --- images -----------------------------------------------------------------------

    def put_image(self, record: ImageRecord) -> ImageRecord:
        check_id("image", record.image_id)
        return self._put_stamped("images", "image_id", record, image_to_dict)

    def get_image(self, image_id: str) -> ImageRecord | None:
        rows = self._query(
            "SELECT data FROM images WHERE collection_id = ? AND image_id = ?",
            (self._cid, image_id),
        )
        return image_from_dict(json.loads(rows[0]["data"])) if rows else None

    def existing_images(self, image_ids: Sequence[str]) -> set[str]:
        rows = self._sql.rows_by_ids("images", "image_id", self._cid, image_ids, "image_id")
        return {row["image_id"] for row in rows}

    def list_images(
        self, *, status: ImageStatus | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[ImageRecord]:
        limit = clamp_limit(limit)
        if status is None:
            kind = "images"
            after = decode_cursor(kind, cursor, 1)[0] if cursor else ""
            rows = self._query(
                "SELECT data FROM images WHERE collection_id = ? AND image_id > ? "
                "ORDER BY image_id LIMIT ?",
                (self._cid, after, limit),
            )
            items = [image_from_dict(json.loads(r["data"])) for r in rows]
            return page_of(items, limit, kind, lambda last: [last.image_id])
        else:
            kind = f"images:{status}"
            sql = "SELECT data FROM images WHERE collection_id = ? AND status = ?"
            params: list[Any] = [self._cid, str(status)]
            if cursor:
                t, iid = decode_cursor(kind, cursor, 2)
                sql += " AND (updated_at < ? OR (updated_at = ? AND image_id < ?))"
                params += [t, t, iid]
            rows = self._query(
                sql + " ORDER BY updated_at DESC, image_id DESC LIMIT ?", [*params, limit]
            )
            items = [image_from_dict(json.loads(r["data"])) for r in rows]
            return page_of(items, limit, kind, lambda last: [last.updated_at, last.image_id])

    def images_created_before(self, before: float, *, limit: int = 100) -> list[ImageRecord]:
        rows = self._query(
            "SELECT data FROM images WHERE collection_id = ?"
            " AND json_extract(data, '$.created_at') < ? ORDER BY image_id LIMIT ?",
            (self._cid, before, clamp_limit(limit)),
        )
        return [image_from_dict(json.loads(r["data"])) for r in rows]

    def delete_image(self, image_id: str) -> list[str]:
        with self._sql.tx() as db:  # deleting is always allowed (erase deletes too)
            rows = db.execute(
                "SELECT face_id FROM faces WHERE collection_id = ? AND image_id = ? "
                "ORDER BY face_index",
                (self._cid, image_id),
            ).fetchall()
            db.execute(
                "DELETE FROM faces WHERE collection_id = ? AND image_id = ?", (self._cid, image_id)
            )
            db.execute(
                "DELETE FROM images WHERE collection_id = ? AND image_id = ?",
                (self._cid, image_id),
            )
        return [r["face_id"] for r in rows]

    # --- faces ------------------------------------------------------------------------

    def put_faces(self, image_id: str, faces: Sequence[FaceRecord]) -> None:
        check_face_set(image_id, faces)
        with self._sql.write(self._cid) as db:
            existing = {
                r["face_id"]: r
                for r in db.execute(
                    "SELECT face_id, created_at FROM faces "
                    "WHERE collection_id = ? AND image_id = ?",
                    (self._cid, image_id),
                )
            }
            keep = {f.face_id for f in faces}
            for face_id in set(existing) - keep:
                db.execute(
                    "DELETE FROM faces WHERE collection_id = ? AND face_id = ?",
                    (self._cid, face_id),
                )
            for face in faces:
                old = existing.get(face.face_id)
                if old is None:  # maybe a face id of another image (should never happen)
                    old = db.execute(
                        "SELECT face_id, created_at FROM faces "
                        "WHERE collection_id = ? AND face_id = ?",
                        (self._cid, face.face_id),
                    ).fetchone()
                self._write_face(db, stamped(face, old["created_at"] if old else None, self._cid))

    def _write_face(self, db: sqlite3.Connection, record: FaceRecord) -> None:
        data = face_to_dict(record)
        del data["embedding"]
        # other models' embeddings ride in the JSON (base64); the own one is the BLOB column
        data["embeddings"] = {
            model: base64.b64encode(raw).decode() for model, raw in record.embeddings.items()
        }
        db.execute(
            "INSERT OR REPLACE INTO faces (collection_id, face_id, image_id, face_index,"
            " created_at, embedding, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self._cid,
                record.face_id,
                record.image_id,
                record.face_index,
                record.created_at,
                record.embedding,
                sql_json(data),
            ),
        )

    @staticmethod
    def _face(row: sqlite3.Row) -> FaceRecord:
        data = json.loads(row["data"])
        data["embedding"] = bytes(row["embedding"])
        data["embeddings"] = {
            model: base64.b64decode(text) for model, text in (data.get("embeddings") or {}).items()
        }
        data["collection_id"] = row["collection_id"]
        return face_from_dict(data)

    def get_face(self, face_id: str) -> FaceRecord | None:
        rows = self._query(
            "SELECT * FROM faces WHERE collection_id = ? AND face_id = ?", (self._cid, face_id)
        )
        return self._face(rows[0]) if rows else None

    def get_faces(self, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        rows = self._sql.rows_by_ids("faces", "face_id", self._cid, face_ids)
        faces = (self._face(row) for row in rows)
        return {face.face_id: face for face in faces}

    def list_faces(
        self, *, image_id: str | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[FaceRecord]:
        limit = clamp_limit(limit)
        sql = "SELECT * FROM faces WHERE collection_id = ?"
        params: list[Any] = [self._cid]
        if image_id is not None:
            kind = f"faces:image:{image_id}"
            sql += " AND image_id = ?"
            params.append(image_id)
            if cursor:
                index, fid = decode_cursor(kind, cursor, 2)
                sql += " AND (face_index > ? OR (face_index = ? AND face_id > ?))"
                params += [index, index, fid]
            sql += " ORDER BY face_index, face_id LIMIT ?"
        else:
            kind = "faces"
            if cursor:
                (fid,) = decode_cursor(kind, cursor, 1)
                sql += " AND face_id > ?"
                params.append(fid)
            sql += " ORDER BY face_id LIMIT ?"
        items = [self._face(r) for r in self._query(sql, [*params, limit])]
        if image_id is None:
            return page_of(items, limit, kind, lambda last: [last.face_id])
        return page_of(items, limit, kind, lambda last: [last.face_index, last.face_id])

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> int:
        updated = 0
        t = now()
        with self._write() as db:
            for face_id, raw in vectors.items():
                row = db.execute(
                    "SELECT * FROM faces WHERE collection_id = ? AND face_id = ?",
                    (self._cid, face_id),
                ).fetchone()
                if row is None:
                    continue  # forgotten meanwhile
                record = self._face(row).with_embedding(model, bytes(raw))
                self._write_face(db, replace(record, updated_at=t))
                updated += 1
        return updated

    # --- stats and erase ----------------------------------------------------------------

    def counts(self) -> StoreCounts:
        by_status = {
            r["status"]: int(r["n"])
            for r in self._query(
                "SELECT status, COUNT(*) AS n FROM images WHERE collection_id = ? GROUP BY status",
                (self._cid,),
            )
        }
        return StoreCounts(
            images=sum(by_status.values()),
            faces=self._count("faces"),
            images_by_status={str(s): by_status.get(str(s), 0) for s in ImageStatus},
            videos=self._count("videos"),
            tracks=self._count("tracks"),
        )

    def _count(self, table: str) -> int:
        sql = f"SELECT COUNT(*) AS n FROM {table} WHERE collection_id = ?"
        return int(self._query(sql, (self._cid,))[0]["n"])

    def purge(self, *, limit: int = 500) -> Purged:
        removed: dict[str, int] = {}
        with self._sql.tx() as db:
            left = limit
            for table, key in _PURGE_ORDER:
                cursor = db.execute(
                    f"DELETE FROM {table} WHERE collection_id = ? AND {key} IN "
                    f"(SELECT {key} FROM {table} WHERE collection_id = ? LIMIT ?)",
                    (self._cid, self._cid, max(left, 0)),
                )
                removed[table] = cursor.rowcount
                left -= cursor.rowcount
            remaining = sum(
                db.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE collection_id = ?", (self._cid,)
                ).fetchone()[0]
                for table, _ in _PURGE_ORDER
            )
        return Purged.of(removed, done=remaining == 0)
