"""Wire formats of the pipeline's topics (JSON bodies, string attributes).

``face-embeddings``  ingest -> indexer: one image's faces, a chunk at a time.
``face-deletions``   API / tools -> indexer: face ids to drop from the index.
``face-events``      indexer -> anyone: ``face_added`` / ``face_removed`` after commit.

Bodies carry a version ``v``; a body we cannot parse is *poison*
(:class:`BadMessage`): the consumer acknowledges and logs it instead of letting
Pub/Sub redeliver it forever.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
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
            "v": VERSION,
            "collection": self.collection_id,
            "image_id": self.image_id,
            "model": self.model,
            "source_time": self.source_time,
            "dims": int(self.vectors.shape[1]) if len(self.vectors) else 0,
            "faces": [
                {"face_id": f, "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()}
                for f, v in zip(self.face_ids, self.vectors, strict=True)
            ],
        }
        return Message(
            json.dumps(body, separators=(",", ":")).encode(),
            {
                "kind": KIND_EMBEDDINGS,
                "collection": self.collection_id,
                "image_id": self.image_id,
                "model": self.model,
            },
        )

    @classmethod
    def decode(cls, message: Message) -> EmbeddingsMessage:
        body = _json(message)
        try:
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
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise BadMessage(f"malformed embeddings message: {exc!r}") from exc


@dataclass(frozen=True)
class DeletionsMessage:
    face_ids: list[str]
    reason: str = ""
    collection_id: str = DEFAULT_COLLECTION

    def encode(self) -> Message:
        body = {
            "v": VERSION,
            "collection": self.collection_id,
            "face_ids": list(self.face_ids),
            "reason": self.reason,
        }
        attributes = {"kind": KIND_DELETIONS, "collection": self.collection_id}
        return Message(json.dumps(body).encode(), attributes)

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
            "v": VERSION,
            "collection": self.collection_id,
            "event": self.event,
            "face_ids": self.face_ids,
            "model": self.model,
            "manifest_version": self.manifest_version,
        }
        attributes = {"kind": KIND_EVENT, "event": self.event, "collection": self.collection_id}
        return Message(json.dumps(body).encode(), attributes)

    @classmethod
    def decode(cls, message: Message) -> FaceEvent:
        body = _json(message)
        try:
            return cls(
                event=str(body["event"]),
                face_ids=[str(i) for i in body["face_ids"]],
                model=body.get("model"),
                manifest_version=body.get("manifest_version"),
                collection_id=_collection(body),
            )
        except (KeyError, TypeError) as exc:
            raise BadMessage(f"malformed face event: {exc!r}") from exc


@dataclass(frozen=True)
class ControlMessage:
    """Maintenance work for the indexer, one bounded step per message (Pub/Sub push):
    ``erase`` a collection, or the ``retention`` sweep (of one collection, or of all
    collections with a retention when ``collection_id`` is None)."""

    action: str  # erase | retention
    collection_id: str | None = None

    def encode(self) -> Message:
        body = {"v": VERSION, "action": self.action, "collection": self.collection_id}
        attributes = {"kind": KIND_CONTROL, "action": self.action}
        return Message(json.dumps(body).encode(), attributes)

    @classmethod
    def decode(cls, message: Message) -> ControlMessage:
        body = _json(message)
        action = body.get("action")
        if action not in ("erase", "retention"):
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
