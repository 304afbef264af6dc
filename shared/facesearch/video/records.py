"""Chunk results and tracks as JSON-safe dicts, so they can travel between instances.

A chunk's instance and the finisher are different processes (often different
machines): the chunk result is written somewhere (the blob store: a chunk with
a dozen tracklets carries a dozen face crops, more than a Firestore document
holds) and read back by the finisher. Embeddings travel as base64 float32
bytes (exact), crops as PNG (lossless, about half the raw size). Every
record carries a schema version; an unknown version is refused, not guessed.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final

import cv2
import numpy as np

from facesearch.errors import InvalidVideo
from facesearch.video.types import (
    Chunk,
    ChunkResult,
    Observation,
    Span,
    Track,
    TrackFace,
)
from facesearch.vision.types import FloatArray, ImageArray, Quality

SCHEMA: Final = 1


def _array(values: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(values, dtype=np.float32)
    return {"shape": list(data.shape), "f32": base64.b64encode(data.tobytes()).decode("ascii")}


def _from_array(record: Mapping[str, Any]) -> FloatArray:
    raw = base64.b64decode(record["f32"])
    out: FloatArray = np.frombuffer(raw, dtype=np.float32).reshape(record["shape"]).copy()
    return out


def _png(image: ImageArray) -> str:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - PNG encoding of a uint8 image does not fail
        raise ValueError("could not encode the face crop")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


def _from_png(text: str) -> ImageArray:
    data = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidVideo("a stored face crop is not a PNG")
    out: ImageArray = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return out


def track_face_to_dict(face: TrackFace) -> dict[str, Any]:
    return {
        "video_id": face.video_id,
        "track_id": face.track_id,
        "t_ms": face.t_ms,
        "box": list(face.box),
        "landmarks": np.asarray(face.landmarks, dtype=float).tolist(),
        "det_score": face.det_score,
        "quality": {**asdict(face.quality), "reasons": list(face.quality.reasons)},
        "liveness": face.liveness,
        "embedding": _array(face.embedding),
        "crop_png": _png(face.crop),
    }


def track_face_from_dict(record: Mapping[str, Any]) -> TrackFace:
    quality = dict(record["quality"])
    quality["reasons"] = tuple(quality.get("reasons", ()))
    return TrackFace(
        video_id=str(record["video_id"]),
        track_id=str(record["track_id"]),
        t_ms=int(record["t_ms"]),
        box=_box(record["box"]),
        landmarks=np.asarray(record["landmarks"], dtype=np.float32),
        det_score=float(record["det_score"]),
        quality=Quality(**quality),
        liveness=None if record["liveness"] is None else float(record["liveness"]),
        embedding=_from_array(record["embedding"]),
        crop=_from_png(record["crop_png"]),
    )


def _box(values: Any) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)


def track_to_dict(track: Track, *, observations: bool = True) -> dict[str, Any]:
    """A track; ``observations=False`` leaves out the per-frame boxes (spans stay)."""
    out: dict[str, Any] = {
        "video_id": track.video_id,
        "track_id": track.track_id,
        "hits": track.hits,
        "spans": [[s.start_ms, s.end_ms] for s in track.spans],
        "embedding_sum": _array(track.embedding_sum),
        "mean_embedding": _array(track.mean_embedding),
        "best": track_face_to_dict(track.best),
    }
    if observations:
        out["observations"] = [[o.t_ms, *o.box, o.score, int(o.cut)] for o in track.observations]
    return out


def track_from_dict(record: Mapping[str, Any]) -> Track:
    if "observations" not in record:
        raise InvalidVideo("a track record without observations cannot be stitched")
    return Track(
        video_id=str(record["video_id"]),
        track_id=str(record["track_id"]),
        observations=tuple(
            Observation(t_ms=int(t), box=_box((x1, y1, x2, y2)), score=float(s), cut=bool(c))
            for t, x1, y1, x2, y2, s, c in record["observations"]
        ),
        embedding_sum=_from_array(record["embedding_sum"]),
        best=track_face_from_dict(record["best"]),
        spans=tuple(Span(int(a), int(b)) for a, b in record["spans"]),
    )


def chunk_result_to_dict(result: ChunkResult) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "video_id": result.video_id,
        "plan_id": result.plan_id,
        "chunk": asdict(result.chunk),
        "tracks": [track_to_dict(t) for t in result.tracks],
        "samples": result.samples,
        "frames_decoded": result.frames_decoded,
        "scene_cuts": result.scene_cuts,
        "first_sample_ms": result.first_sample_ms,
        "last_sample_ms": result.last_sample_ms,
        "model": result.model,
        "timings_ms": dict(result.timings_ms),
    }


def chunk_result_from_dict(record: Mapping[str, Any]) -> ChunkResult:
    if record.get("schema") != SCHEMA:
        raise InvalidVideo(f"unknown chunk result schema {record.get('schema')!r}")
    return ChunkResult(
        video_id=str(record["video_id"]),
        plan_id=str(record["plan_id"]),
        chunk=Chunk(**record["chunk"]),
        tracks=tuple(track_from_dict(t) for t in record["tracks"]),
        samples=int(record["samples"]),
        frames_decoded=int(record["frames_decoded"]),
        scene_cuts=int(record["scene_cuts"]),
        first_sample_ms=record["first_sample_ms"],
        last_sample_ms=record["last_sample_ms"],
        model=str(record["model"]),
        timings_ms={str(k): float(v) for k, v in record["timings_ms"].items()},
    )
