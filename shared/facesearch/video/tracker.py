"""Faces of consecutive sampled frames → tracks; tracks → merged tracks.

Two rules decide whether a detection continues a track (and, in the stitcher,
whether two tracks are one person):

- *continuity*: the track was seen at most ``track_max_missed`` grid intervals ago, no
  scene cut lies in between, the boxes overlap (IoU >= ``track_min_iou``) and the
  embeddings agree loosely (cosine >= ``track_link_similarity``). Position does
  most of the work; the loose embedding check stops a box from jumping to a
  different person who steps into the same place.
- *re-identification*: the embeddings agree strictly (cosine >=
  ``track_reid_similarity``), whatever the position or time. This carries a track
  across fast motion, a cut, an exit and re-entry, or a chunk boundary.

Hard constraint for every merge: two tracks seen in the *same* sampled frame are
two people, never one (a "cannot-link"), however similar they look. Candidate
pairs are taken greedily, best score first (continuity before re-identification);
at these sizes (a few faces per frame) greedy equals the optimal assignment in
practice and keeps the code simple and deterministic.

A track is reported once it has ``track_confirm_hits`` detections, counted after
stitching: a chunk hands on all its tracklets, because a lone detection may belong
to a track that another chunk holds.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from facesearch.video.settings import VideoSettings
from facesearch.video.spans import max_gap_ms, spans_from_times
from facesearch.video.types import Box, Observation, Track, TrackFace
from facesearch.vision.types import Face, FloatArray

_SIMILARITY_BLOCK = 1024  # rows of the track-similarity matrix computed at once


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (0 for degenerate ones)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _quality_key(face: TrackFace) -> tuple[bool, float, float]:
    """Best face first: passes the quality policy, then quality score, then detector score."""
    return (face.quality.acceptable, face.quality.score, face.det_score)


def _box(face: Face) -> Box:
    x1, y1, x2, y2 = (float(v) for v in face.detection.box)
    return (x1, y1, x2, y2)


def track_face(face: Face, *, video_id: str, track_id: str, t_ms: int) -> TrackFace:
    """The parts of a pipeline ``Face`` a track keeps (the pipeline always fills them)."""
    if face.embedding is None or face.crop is None or face.quality is None:
        raise ValueError("a tracked face needs embedding, crop and quality")
    return TrackFace(
        video_id=video_id,
        track_id=track_id,
        t_ms=t_ms,
        box=_box(face),
        landmarks=face.detection.landmarks,
        det_score=float(face.detection.score),
        quality=face.quality,
        liveness=face.liveness,
        embedding=face.embedding,
        crop=face.crop,
    )


@dataclass
class _Building:
    """A track while the tracker still extends it."""

    number: int
    observations: list[Observation]
    embedding_sum: FloatArray
    last_embedding: FloatArray
    best: TrackFace

    def mean(self) -> FloatArray:
        out: FloatArray = self.embedding_sum / max(float(np.linalg.norm(self.embedding_sum)), 1e-12)
        return out


@dataclass
class Tracker:
    """Online tracker over the sampled frames of one chunk (call ``update`` in time order)."""

    settings: VideoSettings
    video_id: str
    id_prefix: str  # local track ids are f"{id_prefix}-t{n}"
    _active: list[_Building] = field(default_factory=list)
    _done: list[_Building] = field(default_factory=list)

    def update(self, t_ms: int, faces: Sequence[Face], *, cut: bool = False) -> None:
        """Assign the faces of one sampled frame to tracks (new ones for the unmatched)."""
        # the same time window as the spans and the stitcher's continuity rule, so a track
        # continues (or not) the same way inside a chunk and across a chunk boundary
        patience_ms = max_gap_ms(self.settings.fps, self.settings.track_max_missed)
        still = [b for b in self._active if t_ms - b.observations[-1].t_ms <= patience_ms]
        self._done.extend(b for b in self._active if t_ms - b.observations[-1].t_ms > patience_ms)
        self._active = still
        usable = [f for f in faces if f.embedding is not None]
        pairs: list[tuple[float, int, int]] = []
        knobs = self.settings
        for ti, building in enumerate(self._active):
            mean = building.mean()
            for fi, face in enumerate(usable):
                assert face.embedding is not None
                vector = face.embedding
                sim = max(float(vector @ building.last_embedding), float(vector @ mean))
                iou = 0.0 if cut else box_iou(building.observations[-1].box, _box(face))
                continuous = iou >= knobs.track_min_iou and sim >= knobs.track_link_similarity
                if continuous or sim >= knobs.track_reid_similarity:
                    pairs.append((sim + iou + (1.0 if continuous else 0.0), ti, fi))
        taken_tracks: set[int] = set()
        taken_faces: set[int] = set()
        for _, ti, fi in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
            if ti in taken_tracks or fi in taken_faces:
                continue
            taken_tracks.add(ti)
            taken_faces.add(fi)
            self._extend(self._active[ti], usable[fi], t_ms, cut)
        for fi, face in enumerate(usable):
            if fi not in taken_faces:
                self._start(face, t_ms, cut)

    def _start(self, face: Face, t_ms: int, cut: bool) -> None:
        assert face.embedding is not None
        number = len(self._active) + len(self._done)
        best = track_face(face, video_id=self.video_id, track_id="", t_ms=t_ms)
        self._active.append(
            _Building(
                number=number,
                observations=[_observation(face, t_ms, cut)],
                embedding_sum=face.embedding.astype(np.float32).copy(),
                last_embedding=face.embedding,
                best=best,
            )
        )

    def _extend(self, building: _Building, face: Face, t_ms: int, cut: bool) -> None:
        assert face.embedding is not None
        building.observations.append(_observation(face, t_ms, cut))
        building.embedding_sum = building.embedding_sum + face.embedding
        building.last_embedding = face.embedding
        candidate = track_face(face, video_id=self.video_id, track_id="", t_ms=t_ms)
        if _quality_key(candidate) > _quality_key(building.best):
            building.best = candidate

    def finish(self) -> list[Track]:
        """Every tracklet, confirmed or not, in start order.

        Confirmation waits until tracklets are linked (``link_tracks``): a single
        detection that re-identifies into a long track belongs to it, and that must
        not depend on where a chunk boundary happened to fall.
        """
        everything = sorted(self._done + self._active, key=lambda b: b.number)
        return [
            make_track(
                self.video_id,
                f"{self.id_prefix}-t{building.number}",
                observations=building.observations,
                embedding_sum=building.embedding_sum,
                best=building.best,
                settings=self.settings,
            )
            for building in everything
        ]


def _observation(face: Face, t_ms: int, cut: bool) -> Observation:
    return Observation(t_ms=t_ms, box=_box(face), score=float(face.detection.score), cut=cut)


def make_track(
    video_id: str,
    track_id: str,
    *,
    observations: Iterable[Observation],
    embedding_sum: FloatArray,
    best: TrackFace,
    settings: VideoSettings,
) -> Track:
    ordered = tuple(sorted(observations, key=lambda o: o.t_ms))
    gap = max_gap_ms(settings.fps, settings.track_max_missed)
    return Track(
        video_id=video_id,
        track_id=track_id,
        observations=ordered,
        embedding_sum=np.asarray(embedding_sum, dtype=np.float32),
        best=replace(best, video_id=video_id, track_id=track_id),
        spans=spans_from_times((o.t_ms for o in ordered), gap),
    )


def link_tracks(tracks: Sequence[Track], settings: VideoSettings) -> list[list[int]]:
    """Groups of indices into ``tracks`` that are one person (each group sorted, time-disjoint).

    Used inside a chunk (re-identification after cuts and exits) and by the
    stitcher across chunks (continuity over the boundary, then re-identification).
    """
    count = len(tracks)
    if count == 0:
        return []
    means = np.stack([t.mean_embedding for t in tracks])
    gap = max_gap_ms(settings.fps, settings.track_max_missed)
    pairs: list[tuple[float, int, int, bool]] = []
    # continuity: b starts within the gap after a ends (sorted starts: no all-pairs scan)
    order = sorted(range(count), key=lambda k: tracks[k].first.t_ms)
    starts = [tracks[k].first.t_ms for k in order]
    for i, a in enumerate(tracks):
        low = bisect.bisect_right(starts, a.last.t_ms)
        high = bisect.bisect_right(starts, a.last.t_ms + gap)
        for j in order[low:high]:
            b = tracks[j]
            if b.first.cut:
                continue
            sim = float(means[i] @ means[j])
            iou = box_iou(a.last.box, b.first.box)
            if iou >= settings.track_min_iou and sim >= settings.track_link_similarity:
                pairs.append((2.0 + sim + iou, i, j, True))
    # re-identification: all pairs above the threshold, a block of rows at a time so memory
    # stays O(block x count) however many tracklets a long video has
    for first in range(0, count, _SIMILARITY_BLOCK):
        block = means[first : first + _SIMILARITY_BLOCK] @ means.T
        for row, col in zip(*np.nonzero(block >= settings.track_reid_similarity), strict=True):
            i, j = first + int(row), int(col)
            if i < j:
                pairs.append((float(block[row, col]), i, j, False))
    parent = list(range(count))
    members: dict[int, list[int]] = {i: [i] for i in range(count)}
    times: dict[int, set[int]] = {i: {o.t_ms for o in tracks[i].observations} for i in range(count)}
    sums: dict[int, FloatArray] = {i: tracks[i].embedding_sum.copy() for i in range(count)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, i, j, continuity in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        ri, rj = root(i), root(j)
        if ri == rj or times[ri] & times[rj]:
            continue  # already one group, or seen together in a frame: two people
        if not continuity:
            left = sums[ri] / max(float(np.linalg.norm(sums[ri])), 1e-12)
            right = sums[rj] / max(float(np.linalg.norm(sums[rj])), 1e-12)
            if float(left @ right) < settings.track_reid_similarity:
                continue  # the groups as a whole have drifted apart
        keep, drop = min(ri, rj), max(ri, rj)
        parent[drop] = keep
        members[keep] = sorted(members[keep] + members.pop(drop))
        times[keep] |= times.pop(drop)
        sums[keep] = sums[keep] + sums.pop(drop)
    return sorted(members.values())


def merge_group(
    tracks: Sequence[Track], video_id: str, track_id: str, settings: VideoSettings
) -> Track:
    """One track from several (observations united, embeddings summed, best face kept)."""
    observations = [o for t in tracks for o in t.observations]
    embedding_sum = np.sum([t.embedding_sum for t in tracks], axis=0)
    best = max((t.best for t in tracks), key=_quality_key)
    return make_track(
        video_id,
        track_id,
        observations=observations,
        embedding_sum=embedding_sum,
        best=best,
        settings=settings,
    )


def chunk_tracks(
    local: Sequence[Track], *, video_id: str, id_prefix: str, settings: VideoSettings
) -> tuple[Track, ...]:
    """A chunk's tracklets, linked within the chunk but not yet confirmed.

    Confirmation (``track_confirm_hits``) is left to the stitcher: a lone detection
    may re-identify with a track in another chunk, and whether it counts must not
    depend on where the chunk boundaries fell (the chunked result equals the
    whole-video result; property-tested).
    """
    return tuple(
        merge_group([local[i] for i in group], video_id, f"{id_prefix}-t{n}", settings)
        for n, group in enumerate(link_tracks(local, settings))
    )
