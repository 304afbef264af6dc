"""``manifest.json``: the single mutable object of an index, and its validation.

Everything else in the bucket is immutable (segments are written once under a
fresh name), so the manifest's object generation is the one serialisation
point between writers: read it, compute the next manifest, write it back with
``if_generation_match`` (see :mod:`facesearch.index.writer`).

The manifest carries a sha256 of its own canonical body. It is an integrity
check, not a signature: it turns a hand edit, a truncated upload or a bit flip
into a clear :class:`IndexCorrupt` instead of a silently different index.
Keys are written as 16-digit hex strings so tools that read JSON numbers as
doubles (jq, JavaScript) cannot round them.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from facesearch.errors import IndexCorrupt, ModelMismatch

FORMAT_VERSION: Literal[1] = 1
MANIFEST_NAME = "manifest.json"
SEGMENTS_PREFIX = "segments/"
Dtype = Literal["f32", "f16", "i8"]
_SEGMENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,80}$")


def _parse_hex_key(value: object) -> int:
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{16}", value):
        return int(value, 16)
    raise ValueError(f"key must be 16 lowercase hex digits, got {value!r}")


HexKey = Annotated[
    int,
    BeforeValidator(_parse_hex_key),
    PlainSerializer(lambda key: f"{key:016x}", return_type=str),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRef(_Frozen):
    """The embedding model an index was built with; mixing models is refused."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)

    @classmethod
    def parse(cls, value: ModelRef | str) -> ModelRef:
        """Accept a ModelRef or ``"name@version"``."""
        if isinstance(value, ModelRef):
            return value
        name, sep, version = str(value).rpartition("@")
        if not sep or not name or not version:
            raise ValueError(f"model must look like 'name@version', got {value!r}")
        return cls(name=name, version=version)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class SegmentEntry(_Frozen):
    """One immutable segment: a USearch file plus its face-id sidecar."""

    id: str
    count: int = Field(ge=1)
    index_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    index_bytes: int = Field(ge=1)
    ids_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    ids_bytes: int = Field(ge=1)
    #: keys of this segment that are deleted (per segment: a re-add lands elsewhere)
    tombstones: tuple[HexKey, ...] = ()
    created_at: float

    @model_validator(mode="after")
    def _check(self) -> SegmentEntry:
        if not _SEGMENT_ID.match(self.id):
            raise ValueError(f"bad segment id {self.id!r}")
        if list(self.tombstones) != sorted(set(self.tombstones)):
            raise ValueError(f"segment {self.id}: tombstones not sorted/unique")
        if len(self.tombstones) > self.count:
            raise ValueError(f"segment {self.id}: more tombstones than vectors")
        return self

    @property
    def index_name(self) -> str:
        return segment_object_names(self.id)[0]

    @property
    def ids_name(self) -> str:
        return segment_object_names(self.id)[1]

    @property
    def live(self) -> int:
        return self.count - len(self.tombstones)


class RetiredSegment(_Frozen):
    """A segment replaced by compaction; its objects are deleted after the GC grace period."""

    id: str
    retired_at: float


class Manifest(_Frozen):
    format: Literal[1] = FORMAT_VERSION
    dims: int = Field(ge=1, le=65536)
    dtype: Dtype
    metric: Literal["cos"] = "cos"
    model: ModelRef
    #: highest collision probe ever used (see facesearch.index.keys)
    max_probe: int = Field(default=0, ge=0)
    #: +1 on every swap; lets humans and logs tell manifests apart
    version: int = Field(default=0, ge=0)
    updated_at: float = 0.0
    segments: tuple[SegmentEntry, ...] = ()
    retired: tuple[RetiredSegment, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> Manifest:
        ids = [s.id for s in self.segments] + [r.id for r in self.retired]
        if len(ids) != len(set(ids)):
            raise ValueError("segment ids repeat across segments/retired")
        return self

    # --- derived -------------------------------------------------------------------

    @property
    def vector_count(self) -> int:
        return sum(s.count for s in self.segments)

    @property
    def live_count(self) -> int:
        return sum(s.live for s in self.segments)

    @property
    def tombstone_count(self) -> int:
        return sum(len(s.tombstones) for s in self.segments)

    def segment(self, segment_id: str) -> SegmentEntry | None:
        return next((s for s in self.segments if s.id == segment_id), None)

    def check_model(self, model: ModelRef, dims: int | None = None) -> None:
        """Refuse to mix embedding models (or dimension counts) in one index."""
        if model != self.model:
            raise ModelMismatch(
                f"index holds embeddings of model {self.model}, refusing {model}: to switch "
                "models, re-ingest into a new index (FACESEARCH_INDEX_URL), or keep the "
                "index's model (FACESEARCH_EMBEDDER)"
            )
        if dims is not None and dims != self.dims:
            raise ModelMismatch(f"index has {self.dims}-d vectors, got {dims}-d from {model}")

    # --- (de)serialisation ----------------------------------------------------------

    def to_bytes(self) -> bytes:
        body = self.model_dump(mode="json")
        return json.dumps({**body, "checksum": _checksum(body)}, sort_keys=True, indent=1).encode(
            "utf-8"
        )

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = MANIFEST_NAME) -> Manifest:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorrupt(f"{source}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise IndexCorrupt(f"{source}: expected a JSON object")
        stored = raw.pop("checksum", None)
        if raw.get("format") != FORMAT_VERSION:
            raise IndexCorrupt(
                f"{source}: unsupported manifest format {raw.get('format')!r} "
                f"(this build reads {FORMAT_VERSION})"
            )
        if stored != _checksum(raw):
            raise IndexCorrupt(
                f"{source}: checksum mismatch (edited by hand, truncated or corrupted); "
                "restore it from a backup or rebuild the index"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise IndexCorrupt(f"{source}: invalid manifest: {exc}") from exc


def segment_object_names(segment_id: str) -> tuple[str, str]:
    """Bucket object names of a segment: (usearch index, face-id sidecar)."""
    return f"{SEGMENTS_PREFIX}{segment_id}.usearch", f"{SEGMENTS_PREFIX}{segment_id}.ids"


def segment_id_of(object_name: str) -> str | None:
    """Inverse of :func:`segment_object_names` (None for foreign objects)."""
    if not object_name.startswith(SEGMENTS_PREFIX):
        return None
    stem, dot, ext = object_name[len(SEGMENTS_PREFIX) :].rpartition(".")
    return stem if dot and ext in ("usearch", "ids") and _SEGMENT_ID.match(stem) else None


def _checksum(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return "sha256:" + hashlib.sha256(canonical).hexdigest()
