"""Result and plan types of the video pipeline (frozen: they travel between instances).

Times are integer milliseconds from the start of the video (the stream's first
timestamp is 0). A ``Span`` runs from the first to the last *sampled* frame in
which a face was seen, so it is exact to the sampled frames, not to every frame.
Boxes are ``(x1, y1, x2, y2)`` pixels of the upright (rotation-applied) frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facesearch.vision.types import FloatArray, ImageArray, Quality

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says, read before any frame is decoded."""

    container: str  # sniffed family: mp4, mov, matroska, webm, avi, mpegts
    format_name: str  # FFmpeg's demuxer name(s)
    codec: str  # FFmpeg's canonical codec name of the picture track (h264, vp9, av1...)
    decoder: str  # the FFmpeg decoder that will decode it (e.g. libdav1d for av1)
    width: int  # coded frame size, before rotation
    height: int
    duration_s: float | None  # None: the header does not say (e.g. some MPEG-TS)
    frame_rate: float | None  # average rate the header declares (VFR videos vary)
    frames: int | None  # frame count if declared
    size_bytes: int
    bit_rate: int | None
    has_audio: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, order=True)
class Span:
    """A time interval ``[start_ms, end_ms]`` (both ends are sampled-frame times)."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms:
            raise ValueError(f"span ends before it starts: {self.start_ms} > {self.end_ms}")

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Chunk:
    """One unit of parallel work: frames with ``start_ms <= t < end_ms``.

    ``end_ms`` is None for the last chunk, which reads on to the end of the stream
    (a header may understate the duration; the decoder still enforces the cap).
    """

    index: int
    chunk_id: str  # stable: same video + plan -> same id, so redelivery is idempotent
    start_ms: int
    end_ms: int | None


@dataclass(frozen=True)
class ChunkPlan:
    """How one video is split; every field is derived deterministically from its inputs."""

    video_id: str
    plan_id: str  # hash of the inputs that change results (duration, fps, chunk length)
    fps: float
    chunk_ms: int
    duration_ms: int | None
    chunks: tuple[Chunk, ...]

    @property
    def total(self) -> int:
        return len(self.chunks)

    def chunk(self, chunk_id: str) -> Chunk:
        for chunk in self.chunks:
            if chunk.chunk_id == chunk_id:
                return chunk
        raise KeyError(chunk_id)


@dataclass(frozen=True)
class Observation:
    """One detection of a tracked face in one sampled frame."""

    t_ms: int
    box: Box
    score: float  # detector confidence
    cut: bool = False  # the frame starts a new shot (no motion continuity before it)


@dataclass(frozen=True, eq=False)
class TrackFace:
    """The best-quality face of a track: what the index stores for it."""

    video_id: str
    track_id: str
    t_ms: int
    box: Box
    landmarks: FloatArray  # (5, 2) pixels of the upright frame
    det_score: float
    quality: Quality
    liveness: float | None
    embedding: FloatArray  # L2-normalised
    crop: ImageArray  # aligned RGB face at the embedder's input size


@dataclass(frozen=True, eq=False)
class Track:
    """One person's appearances in one video (after stitching), or in one chunk (before)."""

    video_id: str
    track_id: str
    observations: tuple[Observation, ...]  # time order, one per sampled frame
    embedding_sum: FloatArray  # sum of the L2-normalised embeddings of all observations
    best: TrackFace
    spans: tuple[Span, ...]

    @property
    def hits(self) -> int:
        return len(self.observations)

    @property
    def mean_embedding(self) -> FloatArray:
        """L2-normalised mean of the track's embeddings (what re-identification compares)."""
        norm = float(np.linalg.norm(self.embedding_sum))
        out: FloatArray = (self.embedding_sum / max(norm, 1e-12)).astype(np.float32)
        return out

    @property
    def first(self) -> Observation:
        return self.observations[0]

    @property
    def last(self) -> Observation:
        return self.observations[-1]


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """What one instance reports for one chunk; the finisher stitches these."""

    video_id: str
    plan_id: str
    chunk: Chunk
    tracks: tuple[Track, ...]  # linked within the chunk; the stitcher confirms them
    samples: int  # frames sampled (grid + scene cuts)
    frames_decoded: int
    scene_cuts: int
    first_sample_ms: int | None
    last_sample_ms: int | None
    model: str  # embedder model id: results of different models never mix
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class VideoResult:
    """The finished video: stitched tracks with final ids, ordered by first appearance."""

    video_id: str
    plan_id: str
    tracks: tuple[Track, ...]
    samples: int
    frames_decoded: int
    scene_cuts: int
    model: str
    timings_ms: dict[str, float] = field(default_factory=dict)  # chunk stages summed + stitch


@dataclass(frozen=True)
class Progress:
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def complete(self) -> bool:
        return self.done >= self.total
