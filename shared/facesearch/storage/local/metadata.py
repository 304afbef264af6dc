"""SQLite adapter of the metadata port: the embedded mode's source of truth.

One file, WAL journal (readers do not block the writer, and the CLI can read
while an ingest runs in another process), one connection guarded by a lock
(the store is shared by request threads). Records are stored as JSON next to
the few columns that listings filter and sort on; the embedding is a BLOB.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from facesearch.errors import Conflict, NotFound, TransientError
from facesearch.storage.local.sqlite import private_file
from facesearch.storage.metadata import (
    FaceRecord,
    ImageRecord,
    ImageStatus,
    Page,
    PersonRecord,
    StoreCounts,
    check_id,
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_person_id,
    now,
    stamped,
)
from facesearch.storage.records import (
    face_from_dict,
    face_to_dict,
    image_from_dict,
    image_to_dict,
    person_from_dict,
    person_to_dict,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    image_id TEXT PRIMARY KEY, status TEXT NOT NULL, updated_at REAL NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_status ON images (status, updated_at DESC, image_id DESC);
CREATE TABLE IF NOT EXISTS faces (
    face_id TEXT PRIMARY KEY, image_id TEXT NOT NULL, face_index INTEGER NOT NULL,
    person_id TEXT, created_at REAL NOT NULL, embedding BLOB NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_image ON faces (image_id, face_index, face_id);
CREATE INDEX IF NOT EXISTS faces_person ON faces (person_id, created_at DESC, face_id DESC);
CREATE TABLE IF NOT EXISTS persons (person_id TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


class SqliteMetadataStore:
    """Metadata in one SQLite file (``:memory:`` works too, for tests)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        private_file(self.path)  # embeddings are biometric data: 0600 in a 0700 folder
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, timeout=30.0, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteMetadataStore({self.path})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction (serialises writers across processes too)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # locked past the timeout
                raise TransientError(f"metadata store busy: {exc}") from exc
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._db.execute(sql, params))
            except sqlite3.OperationalError as exc:
                raise TransientError(f"metadata store busy: {exc}") from exc

    # --- images -----------------------------------------------------------------------

    def put_image(self, record: ImageRecord) -> ImageRecord:
        check_id("image", record.image_id)
        with self._tx() as db:
            row = db.execute(
                "SELECT data FROM images WHERE image_id = ?", (record.image_id,)
            ).fetchone()
            created = json.loads(row["data"])["created_at"] if row else None
            record = stamped(record, created)
            db.execute(
                "INSERT OR REPLACE INTO images (image_id, status, updated_at, data) "
                "VALUES (?, ?, ?, ?)",
                (
                    record.image_id,
                    str(record.status),
                    record.updated_at,
                    json.dumps(image_to_dict(record)),
                ),
            )
        return record

    def get_image(self, image_id: str) -> ImageRecord | None:
        rows = self._query("SELECT data FROM images WHERE image_id = ?", (image_id,))
        return image_from_dict(json.loads(rows[0]["data"])) if rows else None

    def list_images(
        self, *, status: ImageStatus | None = None, cursor: str | None = None, limit: int = 100
    ) -> Page[ImageRecord]:
        limit = clamp_limit(limit)
        if status is None:
            after = decode_cursor("images", cursor, 1) if cursor else None
            rows = self._query(
                "SELECT data FROM images WHERE (? IS NULL OR image_id > ?) "
                "ORDER BY image_id LIMIT ?",
                (None if after is None else after[0], None if after is None else after[0], limit),
            )
            items = [image_from_dict(json.loads(r["data"])) for r in rows]
            next_values: list[Any] = [items[-1].image_id] if items else []
            kind = "images"
        else:
            kind = f"images:{status}"
            if cursor:
                t, iid = decode_cursor(kind, cursor, 2)
                rows = self._query(
                    "SELECT data FROM images WHERE status = ? AND "
                    "(updated_at < ? OR (updated_at = ? AND image_id < ?)) "
                    "ORDER BY updated_at DESC, image_id DESC LIMIT ?",
                    (str(status), t, t, iid, limit),
                )
            else:
                rows = self._query(
                    "SELECT data FROM images WHERE status = ? "
                    "ORDER BY updated_at DESC, image_id DESC LIMIT ?",
                    (str(status), limit),
                )
            items = [image_from_dict(json.loads(r["data"])) for r in rows]
            next_values = [items[-1].updated_at, items[-1].image_id] if items else []
        return Page(items, encode_cursor(kind, next_values) if len(items) == limit else None)

    def delete_image(self, image_id: str) -> list[str]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT face_id FROM faces WHERE image_id = ? ORDER BY face_index", (image_id,)
            ).fetchall()
            db.execute("DELETE FROM faces WHERE image_id = ?", (image_id,))
            db.execute("DELETE FROM images WHERE image_id = ?", (image_id,))
        return [r["face_id"] for r in rows]

    # --- faces ------------------------------------------------------------------------

    def put_faces(self, image_id: str, faces: Sequence[FaceRecord]) -> None:
        check_id("image", image_id)
        for face in faces:
            check_id("face", face.face_id)
            if face.image_id != image_id:
                raise ValueError(f"face {face.face_id} belongs to {face.image_id}, not {image_id}")
        with self._tx() as db:
            existing = {
                r["face_id"]: r
                for r in db.execute(
                    "SELECT face_id, person_id, created_at FROM faces WHERE image_id = ?",
                    (image_id,),
                )
            }
            keep = {f.face_id for f in faces}
            for face_id in set(existing) - keep:
                db.execute("DELETE FROM faces WHERE face_id = ?", (face_id,))
            for face in faces:
                old = existing.get(face.face_id)
                if old is None:  # maybe a face id of another image (should never happen)
                    old = db.execute(
                        "SELECT face_id, person_id, created_at FROM faces WHERE face_id = ?",
                        (face.face_id,),
                    ).fetchone()
                record = stamped(face, old["created_at"] if old else None)
                if old is not None and record.person_id is None:
                    record = replace(record, person_id=old["person_id"])
                self._write_face(db, record)

    @staticmethod
    def _write_face(db: sqlite3.Connection, record: FaceRecord) -> None:
        data = face_to_dict(record)
        del data["embedding"]
        db.execute(
            "INSERT OR REPLACE INTO faces (face_id, image_id, face_index, person_id, created_at,"
            " embedding, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.face_id,
                record.image_id,
                record.face_index,
                record.person_id,
                record.created_at,
                record.embedding,
                json.dumps(data),
            ),
        )

    @staticmethod
    def _face(row: sqlite3.Row) -> FaceRecord:
        data = json.loads(row["data"])
        data["embedding"] = bytes(row["embedding"])
        data["person_id"] = row["person_id"]
        return face_from_dict(data)

    def get_face(self, face_id: str) -> FaceRecord | None:
        rows = self._query("SELECT * FROM faces WHERE face_id = ?", (face_id,))
        return self._face(rows[0]) if rows else None

    def get_faces(self, face_ids: Sequence[str]) -> dict[str, FaceRecord]:
        out: dict[str, FaceRecord] = {}
        ids = list(dict.fromkeys(face_ids))
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._query(f"SELECT * FROM faces WHERE face_id IN ({marks})", chunk):
                face = self._face(row)
                out[face.face_id] = face
        return out

    def list_faces(
        self,
        *,
        person_id: str | None = None,
        image_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[FaceRecord]:
        limit = clamp_limit(limit)
        if person_id is not None and image_id is not None:
            raise ValueError("filter faces by person_id or by image_id, not both")
        if person_id is not None:
            kind = f"faces:person:{person_id}"
            sql = "SELECT * FROM faces WHERE person_id = ?"
            params: list[Any] = [person_id]
            if cursor:
                t, fid = decode_cursor(kind, cursor, 2)
                sql += " AND (created_at < ? OR (created_at = ? AND face_id < ?))"
                params += [t, t, fid]
            sql += " ORDER BY created_at DESC, face_id DESC LIMIT ?"
        elif image_id is not None:
            kind = f"faces:image:{image_id}"
            sql = "SELECT * FROM faces WHERE image_id = ?"
            params = [image_id]
            if cursor:
                index, fid = decode_cursor(kind, cursor, 2)
                sql += " AND (face_index > ? OR (face_index = ? AND face_id > ?))"
                params += [index, index, fid]
            sql += " ORDER BY face_index, face_id LIMIT ?"
        else:
            kind = "faces"
            sql = "SELECT * FROM faces"
            params = []
            if cursor:
                (fid,) = decode_cursor(kind, cursor, 1)
                sql += " WHERE face_id > ?"
                params.append(fid)
            sql += " ORDER BY face_id LIMIT ?"
        items = [self._face(r) for r in self._query(sql, [*params, limit])]
        next_cursor = None
        if len(items) == limit:
            last = items[-1]
            values: list[Any] = (
                [last.created_at, last.face_id]
                if person_id is not None
                else [last.face_index, last.face_id]
                if image_id is not None
                else [last.face_id]
            )
            next_cursor = encode_cursor(kind, values)
        return Page(items, next_cursor)

    def set_face_person(self, face_id: str, person_id: str | None) -> FaceRecord:
        with self._tx() as db:
            row = db.execute("SELECT * FROM faces WHERE face_id = ?", (face_id,)).fetchone()
            if row is None:
                raise NotFound(f"face {face_id} does not exist")
            if (
                person_id is not None
                and not db.execute(
                    "SELECT 1 FROM persons WHERE person_id = ?", (person_id,)
                ).fetchone()
            ):
                raise NotFound(f"person {person_id} does not exist")
            record = replace(self._face(row), person_id=person_id, updated_at=now())
            self._write_face(db, record)
        return record

    # --- persons ----------------------------------------------------------------------

    def create_person(
        self,
        name: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        person_id: str | None = None,
    ) -> PersonRecord:
        person_id = check_id("person", person_id or new_person_id())
        t = now()
        record = PersonRecord(person_id, name, dict(metadata or {}), t, t)
        with self._tx() as db:
            try:
                db.execute(
                    "INSERT INTO persons (person_id, data) VALUES (?, ?)",
                    (person_id, json.dumps(person_to_dict(record))),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"person {person_id} already exists") from exc
        return record

    def get_person(self, person_id: str) -> PersonRecord | None:
        rows = self._query("SELECT data FROM persons WHERE person_id = ?", (person_id,))
        return person_from_dict(json.loads(rows[0]["data"])) if rows else None

    def update_person(
        self,
        person_id: str,
        *,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> PersonRecord:
        with self._tx() as db:
            row = db.execute(
                "SELECT data FROM persons WHERE person_id = ?", (person_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"person {person_id} does not exist")
            record = person_from_dict(json.loads(row["data"]))
            record = replace(
                record,
                name=record.name if name is None else name,
                metadata=record.metadata if metadata is None else dict(metadata),
                updated_at=now(),
            )
            db.execute(
                "UPDATE persons SET data = ? WHERE person_id = ?",
                (json.dumps(person_to_dict(record)), person_id),
            )
        return record

    def list_persons(self, *, cursor: str | None = None, limit: int = 100) -> Page[PersonRecord]:
        limit = clamp_limit(limit)
        after = decode_cursor("persons", cursor, 1)[0] if cursor else ""
        rows = self._query(
            "SELECT data FROM persons WHERE person_id > ? ORDER BY person_id LIMIT ?",
            (after, limit),
        )
        items = [person_from_dict(json.loads(r["data"])) for r in rows]
        next_cursor = (
            encode_cursor("persons", [items[-1].person_id]) if len(items) == limit else None
        )
        return Page(items, next_cursor)

    def delete_person(self, person_id: str) -> list[str]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM faces WHERE person_id = ? ORDER BY face_id", (person_id,)
            ).fetchall()
            t = now()
            for row in rows:
                self._write_face(db, replace(self._face(row), person_id=None, updated_at=t))
            db.execute("DELETE FROM persons WHERE person_id = ?", (person_id,))
        return [r["face_id"] for r in rows]

    # --- stats ------------------------------------------------------------------------

    def counts(self) -> StoreCounts:
        by_status = {
            r["status"]: int(r["n"])
            for r in self._query("SELECT status, COUNT(*) AS n FROM images GROUP BY status")
        }
        faces = int(self._query("SELECT COUNT(*) AS n FROM faces")[0]["n"])
        persons = int(self._query("SELECT COUNT(*) AS n FROM persons")[0]["n"])
        return StoreCounts(
            images=sum(by_status.values()),
            faces=faces,
            persons=persons,
            images_by_status={str(s): by_status.get(str(s), 0) for s in ImageStatus},
        )
