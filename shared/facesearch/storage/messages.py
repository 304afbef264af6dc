"""Wire formats of the pipeline's topics (JSON bodies, string attributes).

``face-embeddings``  ingest -> indexer: one image's faces, a chunk at a time.
``face-deletions``   API / tools -> indexer: face ids to drop from the index.
``face-events``      indexer -> anyone: ``face_added`` / ``face_removed`` after commit;
                     ingest -> anyone: ``video_done`` / ``video_failed`` (:class:`VideoEvent`).
``ingest-requests``  ingest -> ingest: one step of a video, a chunk or the finish
                     (:class:`VideoTask`); other ingest requests: facesearch.ingest.sources.

Bodies carry a version ``v``; a body we cannot parse is *poison*
(:class:`BadMessage`): the consumer acknowledges and logs it instead of letting
Pub/Sub redeliver it forever.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from facesearch import jsonsafe
from facesearch.errors import BadMessage
from facesearch.storage.bus import Message
from facesearch.storage.metadata import DEFAULT_COLLECTION, check_collection_id

VERSION = 1
KIND_EMBEDDINGS = "embeddings"
KIND_DELETIONS = "deletions"
KIND_EVENT = "face-event"
KIND_CONTROL = "control"
KIND_VIDEO_TASK = "video-task"
KIND_VIDEO_EVENT = "video-event"
#: where a video task reads the video: an uploaded object, a copy the planner staged in
#: the crops store (fetched URLs), or a local file (embedded mode only)
VIDEO_SOURCE_KINDS = frozenset({"gcs", "blob", "file"})


@dataclass(frozen=True)
class EmbeddingsMessage:
    image_id: str
    model: str
    face_ids: list[str]
    vectors: npt.NDArray[np.float32]  # (n, dims)
    #: when the source object was created (epoch s): lets the indexer log upload->searchable
    source_time: float | None = None
    collection_id: str = DEFAULT_COLLECTION

    def encode(self) -> Message:
        body = {
            "image_id": self.image_id,
            "model": self.model,
            "source_time": self.source_time,
            "dims": int(self.vectors.shape[1]) if len(self.vectors) else 0,
            "faces": [
                {"face_id": f, "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()}
                for f, v in zip(self.face_ids, self.vectors, strict=True)
            ],
        }
        attributes = {"image_id": self.image_id, "model": self.model}
        return _message(KIND_EMBEDDINGS, self.collection_id, body, attributes, compact=True)

    @classmethod
    def decode(cls, message: Message) -> EmbeddingsMessage:
        body = _json(message)
        with _fields_of("embeddings message"):
            faces = body["faces"]
            dims = int(body["dims"])
            vectors = np.zeros((len(faces), dims), dtype=np.float32)
            for row, face in enumerate(faces):
                raw = base64.b64decode(face["embedding"], validate=True)
                vectors[row] = np.frombuffer(raw, dtype="<f4")
            face_ids = [str(face["face_id"]) for face in faces]
            source_time = body.get("source_time")
            return cls(
                image_id=str(body["image_id"]),
                model=str(body["model"]),
                face_ids=face_ids,
                vectors=vectors,
                source_time=None if source_time is None else float(source_time),
                collection_id=_collection(body),
            )


@dataclass(frozen=True)
class DeletionsMessage:
    face_ids: list[str]
    reason: str = ""
    collection_id: str = DEFAULT_COLLECTION

    def encode(self) -> Message:
        body = {"face_ids": list(self.face_ids), "reason": self.reason}
        return _message(KIND_DELETIONS, self.collection_id, body)

    @classmethod
    def decode(cls, message: Message) -> DeletionsMessage:
        body = _json(message)
        ids = body.get("face_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise BadMessage("deletions message needs a list of face ids")
        return cls(
            face_ids=ids, reason=str(body.get("reason") or ""), collection_id=_collection(body)
        )


@dataclass(frozen=True)
class FaceEvent:
    event: str  # face_added | face_removed
    face_ids: list[str]
    model: str | None = None
    manifest_version: int | None = None
    collection_id: str = DEFAULT_COLLECTION

    def encode(self) -> Message:
        body = {
            "event": self.event,
            "face_ids": self.face_ids,
            "model": self.model,
            "manifest_version": self.manifest_version,
        }
        return _message(KIND_EVENT, self.collection_id, body, {"event": self.event})

    @classmethod
    def decode(cls, message: Message) -> FaceEvent:
        body = _json(message)
        with _fields_of("face event"):
            return cls(
                event=str(body["event"]),
                face_ids=[str(i) for i in body["face_ids"]],
                model=body.get("model"),
                manifest_version=body.get("manifest_version"),
                collection_id=_collection(body),
            )


@dataclass(frozen=True)
class ControlMessage:
    """Maintenance work for the indexer, one bounded step per message (Pub/Sub push):
    ``erase`` a collection, the ``retention`` sweep (of one collection, or of all
    collections with a retention when ``collection_id`` is None), or the ``sweep`` that
    re-queues images stuck in ``processing`` (one collection, or all)."""

    action: str  # erase | retention | sweep
    collection_id: str | None = None

    def encode(self) -> Message:
        body = {"v": VERSION, "action": self.action, "collection": self.collection_id}
        attributes = {"kind": KIND_CONTROL, "action": self.action}
        return Message(json.dumps(body).encode(), attributes)

    @classmethod
    def decode(cls, message: Message) -> ControlMessage:
        body = _json(message)
        action = body.get("action")
        if action not in ("erase", "retention", "sweep"):
            raise BadMessage(f"unknown control action {action!r}")
        collection = body.get("collection")
        if collection is None and action == "erase":
            raise BadMessage("an erase names its collection")
        return cls(action, None if collection is None else _collection(body))


def push_message(data: Any) -> Message:
    """The message of a Pub/Sub push request body (``{"message": {"data": base64, ...}}``)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
        raise BadMessage("push without a Pub/Sub message")
    raw = data["message"]
    try:
        body = base64.b64decode(raw.get("data") or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadMessage("Pub/Sub message data is not base64") from exc
    attributes = {str(k): str(v) for k, v in (raw.get("attributes") or {}).items()}
    return Message(body, attributes, str(raw.get("messageId") or raw.get("message_id") or ""))


@dataclass(frozen=True)
class VideoTask:
    """One step of a video on ``ingest-requests``: process chunk ``chunk``, or ``finish``.

    Body ``{"v": 1, "collection", "video": {"step", "video_id", "plan_id", "chunk",
    "source": {"kind": "gcs", "bucket", "name", "generation"} | {"kind": "blob", "name"}
    | {"kind": "file", "path"}}}``; attributes ``kind=video-task``, ``step``, ``video_id``.
    Ids are the planner's, so a redelivered step names the same chunk (idempotent).
    """

    step: str  # chunk | finish
    video_id: str
    plan_id: str
    source: dict[str, Any]
    chunk: int | None = None
    collection_id: str = DEFAULT_COLLECTION

    def encode(self) -> Message:
        video: dict[str, Any] = {
            "step": self.step,
            "video_id": self.video_id,
            "plan_id": self.plan_id,
            "source": dict(self.source),
        }
        if self.chunk is not None:
            video["chunk"] = self.chunk
        attributes = {"step": self.step, "video_id": self.video_id}
        return _message(
            KIND_VIDEO_TASK, self.collection_id, {"video": video}, attributes, compact=True
        )

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> VideoTask:
        video = body.get("video")
        if not isinstance(video, dict):
            raise BadMessage("video task without a video object")
        step, source, chunk = video.get("step"), video.get("source"), video.get("chunk")
        ids = [video.get("video_id"), video.get("plan_id")]
        if step not in ("chunk", "finish") or not all(isinstance(i, str) and i for i in ids):
            raise BadMessage("video task needs step (chunk|finish), video_id and plan_id")
        if not isinstance(source, dict) or source.get("kind") not in VIDEO_SOURCE_KINDS:
            raise BadMessage("video task: unknown video source")
        if step == "chunk" and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0):
            raise BadMessage("video chunk task needs a chunk index")
        return cls(
            step=str(step),
            video_id=str(ids[0]),
            plan_id=str(ids[1]),
            source=dict(source),
            chunk=chunk if step == "chunk" else None,
            collection_id=_collection(body),
        )


@dataclass(frozen=True)
class VideoEvent:
    """``video_done`` / ``video_failed`` on ``face-events``, once a video is finished.

    Shaped like :class:`FaceEvent` (``event``, ``face_ids``: the track faces, already
    announced one by one as ``face_added`` by the indexer) plus the video's fields, so a
    consumer that switches on ``event`` ignores it unless it wants it; attribute
    ``kind=video-event``. At least once.
    """

    event: str  # video_done | video_failed
    video_id: str
    face_ids: list[str]
    tracks: int = 0
    duration_ms: int | None = None
    error_code: str | None = None
    model: str | None = None
    collection_id: str = DEFAULT_COLLECTION

    def encode(self) -> Message:
        body = {
            "event": self.event,
            "video_id": self.video_id,
            "face_ids": list(self.face_ids),
            "tracks": self.tracks,
            "duration_ms": self.duration_ms,
            "error_code": self.error_code,
            "model": self.model,
            "manifest_version": None,
        }
        attributes = {"event": self.event, "video_id": self.video_id}
        return _message(KIND_VIDEO_EVENT, self.collection_id, body, attributes)

    @classmethod
    def decode(cls, message: Message) -> VideoEvent:
        body = _json(message)
        with _fields_of("video event"):
            return cls(
                event=str(body["event"]),
                video_id=str(body["video_id"]),
                face_ids=[str(i) for i in body["face_ids"]],
                tracks=int(body.get("tracks") or 0),
                duration_ms=body.get("duration_ms"),
                error_code=body.get("error_code"),
                model=body.get("model"),
                collection_id=_collection(body),
            )


def _message(
    kind: str,
    collection_id: str,
    fields: Mapping[str, Any],
    attributes: Mapping[str, str] | None = None,
    *,
    compact: bool = False,
) -> Message:
    """The envelope every collection-scoped message shares: body ``{"v", "collection",
    ...fields}`` and attributes ``kind``, ``collection`` (plus the message's own, which
    subscription filters and logs read without parsing the body). ``compact``: no spaces
    in the JSON (the large messages: embeddings, video tasks)."""
    body = {"v": VERSION, "collection": collection_id, **fields}
    separators = (",", ":") if compact else None
    return Message(
        json.dumps(body, separators=separators).encode(),
        {"kind": kind, **(attributes or {}), "collection": collection_id},
    )


@contextmanager
def _fields_of(what: str) -> Iterator[None]:
    """Reading a decoded body's fields: one missing or of the wrong type is the message's
    fault (:class:`BadMessage`, dead-lettered), not the consumer's crash."""
    try:
        yield
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise BadMessage(f"malformed {what}: {exc!r}") from exc


def _collection(body: dict[str, Any]) -> str:
    """The message's collection; messages from before collections belong to ``default``."""
    value = body.get("collection", DEFAULT_COLLECTION)
    try:
        return check_collection_id(value)
    except ValueError as exc:
        raise BadMessage(str(exc)) from exc


def _json(message: Message) -> dict[str, Any]:
    body = jsonsafe.loads_object(
        message.data, error=BadMessage, what=f"message {message.message_id or '?'}"
    )
    if body.get("v") != VERSION:
        raise BadMessage(f"message {message.message_id or '?'}: unknown schema version")
    return body


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [items[:0]]
