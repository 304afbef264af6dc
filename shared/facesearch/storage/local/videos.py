"""SQLite half of the metadata port for videos: videos, chunk markers, tracks.

A mixin of :class:`facesearch.storage.local.metadata.SqliteMetadataStore` (same file,
connection, collection scoping and closed-collection check); the tables are in
:mod:`.catalog`'s schema (version 3). Track faces are ordinary rows of ``faces``
(``image_id`` = the video id).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from facesearch.storage.local.catalog import SqliteDb, sql_json
from facesearch.storage.metadata import FaceRecord, check_id, stamped
from facesearch.storage.paging import Page, clamp_limit, decode_cursor, page_of
from facesearch.storage.records import (
    track_from_dict,
    track_to_dict,
    video_from_dict,
    video_to_dict,
)
from facesearch.storage.videos import ChunkState, TrackRecord, VideoRecord, check_tracks


class SqliteVideos:
    """Video methods of the SQLite metadata store (mixed into it)."""

    if TYPE_CHECKING:  # provided by SqliteMetadataStore
        _sql: SqliteDb
        _cid: str

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...
        def _write_face(self, db: sqlite3.Connection, record: FaceRecord) -> None: ...
        def _put_stamped(
            self,
            table: str,
            key: str,
            record: VideoRecord,
            to_dict: Callable[[VideoRecord], dict[str, Any]],
        ) -> VideoRecord: ...

    # --- videos ---------------------------------------------------------------------------

    def put_video(self, record: VideoRecord) -> VideoRecord:
        check_id("video", record.video_id)
        return self._put_stamped("videos", "video_id", record, video_to_dict)

    def get_video(self, video_id: str) -> VideoRecord | None:
        rows = self._query(
            "SELECT data FROM videos WHERE collection_id = ? AND video_id = ?",
            (self._cid, video_id),
        )
        return video_from_dict(json.loads(rows[0]["data"])) if rows else None

    def videos_created_before(self, before: float, *, limit: int = 100) -> list[VideoRecord]:
        rows = self._query(
            "SELECT data FROM videos WHERE collection_id = ?"
            " AND json_extract(data, '$.created_at') < ? ORDER BY video_id LIMIT ?",
            (self._cid, before, clamp_limit(limit)),
        )
        return [video_from_dict(json.loads(r["data"])) for r in rows]

    # --- chunk markers ----------------------------------------------------------------------

    def start_chunk(self, video_id: str, plan_id: str, chunk_index: int) -> ChunkState:
        chunk_id = _chunk_id(video_id, plan_id, chunk_index)
        with self._write() as db:
            row = db.execute(
                "SELECT attempts, done FROM video_chunks WHERE collection_id = ? AND chunk_id = ?",
                (self._cid, chunk_id),
            ).fetchone()
            if row is not None and row["done"]:
                return ChunkState(attempts=int(row["attempts"]), done=True)
            attempts = (int(row["attempts"]) if row else 0) + 1
            db.execute(
                "INSERT OR REPLACE INTO video_chunks (collection_id, chunk_id, video_id, plan_id,"
                " chunk_index, attempts, done) VALUES (?, ?, ?, ?, ?, ?, 0)",
                (self._cid, chunk_id, video_id, plan_id, chunk_index, attempts),
            )
        return ChunkState(attempts=attempts, done=False)

    def finish_chunk(self, video_id: str, plan_id: str, chunk_index: int) -> int:
        chunk_id = _chunk_id(video_id, plan_id, chunk_index)
        with self._write() as db:
            db.execute(
                "INSERT INTO video_chunks (collection_id, chunk_id, video_id, plan_id,"
                " chunk_index, attempts, done) VALUES (?, ?, ?, ?, ?, 1, 1)"
                " ON CONFLICT (collection_id, chunk_id) DO UPDATE SET done = 1",
                (self._cid, chunk_id, video_id, plan_id, chunk_index),
            )
            return _done(db, self._cid, plan_id)

    def chunks_done(self, video_id: str, plan_id: str) -> int:
        rows = self._query(_DONE_SQL, (self._cid, plan_id))
        return int(rows[0][0])

    def claim_finish(self, video_id: str, plan_id: str) -> bool:
        with self._write() as db:
            row = db.execute(
                "SELECT data FROM videos WHERE collection_id = ? AND video_id = ?",
                (self._cid, video_id),
            ).fetchone()
            if row is None:
                return False
            record = video_from_dict(json.loads(row["data"]))
            if record.plan_id != plan_id or record.finish_claimed == plan_id:
                return False
            db.execute(
                "UPDATE videos SET data = ? WHERE collection_id = ? AND video_id = ?",
                (
                    sql_json(video_to_dict(replace(record, finish_claimed=plan_id))),
                    self._cid,
                    video_id,
                ),
            )
        return True

    # --- tracks -----------------------------------------------------------------------------

    def put_tracks(
        self, video_id: str, tracks: Sequence[TrackRecord], faces: Sequence[FaceRecord]
    ) -> None:
        check_tracks(video_id, tracks, faces)
        with self._write() as db:
            old_tracks = {
                r["track_id"]: json.loads(r["data"])["created_at"]
                for r in db.execute(
                    "SELECT track_id, data FROM tracks WHERE collection_id = ? AND video_id = ?",
                    (self._cid, video_id),
                )
            }
            old_faces = {
                r["face_id"]: r
                for r in db.execute(
                    "SELECT face_id, created_at FROM faces"
                    " WHERE collection_id = ? AND image_id = ?",
                    (self._cid, video_id),
                )
            }
            for gone in set(old_tracks) - {t.track_id for t in tracks}:
                db.execute(
                    "DELETE FROM tracks WHERE collection_id = ? AND track_id = ?", (self._cid, gone)
                )
            for gone in set(old_faces) - {f.face_id for f in faces}:
                db.execute(
                    "DELETE FROM faces WHERE collection_id = ? AND face_id = ?", (self._cid, gone)
                )
            for track in tracks:
                record = stamped(track, old_tracks.get(track.track_id), self._cid)
                data = track_to_dict(record)
                del data["mean_embedding"]
                db.execute(
                    "INSERT OR REPLACE INTO tracks (collection_id, track_id, video_id, track_index,"
                    " mean_embedding, data) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        self._cid,
                        record.track_id,
                        video_id,
                        record.track_index,
                        record.mean_embedding,
                        sql_json(data),
                    ),
                )
            for face in faces:
                old = old_faces.get(face.face_id)
                self._write_face(db, stamped(face, old["created_at"] if old else None, self._cid))

    @staticmethod
    def _track(row: sqlite3.Row) -> TrackRecord:
        data = json.loads(row["data"])
        data["mean_embedding"] = bytes(row["mean_embedding"])
        return track_from_dict(data)

    def list_tracks(
        self, video_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Page[TrackRecord]:
        limit = clamp_limit(limit)
        kind = f"tracks:{video_id}"
        sql = "SELECT * FROM tracks WHERE collection_id = ? AND video_id = ?"
        params: list[Any] = [self._cid, video_id]
        if cursor:
            index, tid = decode_cursor(kind, cursor, 2)
            sql += " AND (track_index > ? OR (track_index = ? AND track_id > ?))"
            params += [index, index, tid]
        rows = self._query(sql + " ORDER BY track_index, track_id LIMIT ?", [*params, limit])
        items = [self._track(r) for r in rows]
        return page_of(items, limit, kind, lambda last: [last.track_index, last.track_id])

    def get_tracks(self, track_ids: Sequence[str]) -> dict[str, TrackRecord]:
        rows = self._sql.rows_by_ids("tracks", "track_id", self._cid, track_ids)
        tracks = (self._track(row) for row in rows)
        return {track.track_id: track for track in tracks}

    def delete_video(self, video_id: str) -> list[str]:
        with self._sql.tx() as db:  # deleting is always allowed (erase deletes too)
            rows = db.execute(
                "SELECT face_id FROM faces WHERE collection_id = ? AND image_id = ?"
                " ORDER BY face_index, face_id",
                (self._cid, video_id),
            ).fetchall()
            for table, column in (
                ("faces", "image_id"),
                ("tracks", "video_id"),
                ("video_chunks", "video_id"),
                ("videos", "video_id"),
            ):
                db.execute(
                    f"DELETE FROM {table} WHERE collection_id = ? AND {column} = ?",
                    (self._cid, video_id),
                )
        return [r["face_id"] for r in rows]


def _chunk_id(video_id: str, plan_id: str, chunk_index: int) -> str:
    """The planner's chunk id (facesearch.video.chunks.chunk_id_for)."""
    check_id("video", video_id)
    return f"{video_id}-{plan_id}-{int(chunk_index)}"


_DONE_SQL = "SELECT COUNT(*) FROM video_chunks WHERE collection_id = ? AND plan_id = ? AND done = 1"


def _done(db: sqlite3.Connection, collection_id: str, plan_id: str) -> int:
    return int(db.execute(_DONE_SQL, (collection_id, plan_id)).fetchone()[0])
