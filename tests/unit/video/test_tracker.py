"""Tracker rules on synthetic faces: continuity, re-identification, cannot-link, confirmation."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from facesearch.video.settings import VideoSettings
from facesearch.video.tracker import Tracker, box_iou, chunk_tracks, link_tracks
from facesearch.video.types import Observation, Track
from facesearch.vision.types import Face
from tests.unit.video.synthetic import box_at, face, identity_vector, jittered

SETTINGS = VideoSettings()
A, B = identity_vector(1), identity_vector(2)


def run(
    frames: Sequence[Sequence[Face]],
    cuts: Sequence[int] = (),
    settings: VideoSettings = SETTINGS,
) -> list[Track]:
    """Tracker + linking (as process_chunk does) + confirmation (as the stitcher does)."""
    tracker = Tracker(settings=settings, video_id="v", id_prefix="c")
    for index, faces in enumerate(frames):
        tracker.update(index * 500, faces, cut=index in cuts)
    local = chunk_tracks(tracker.finish(), video_id="v", id_prefix="c", settings=settings)
    return [t for t in local if t.hits >= settings.track_confirm_hits]


def at_cosine(vector: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    """A unit vector whose cosine with ``vector`` is exactly ``cosine``."""
    other = identity_vector(seed)
    other = other - float(other @ vector) * vector
    other /= np.linalg.norm(other)
    return cosine * vector + np.sqrt(1 - cosine**2) * other


def owner(track: Track, truth: dict[int, dict[float, str]]) -> set[str]:
    """Identities behind a track's observations (truth: sample time -> box x -> identity)."""
    return {truth[o.t_ms][round(o.box[0])] for o in track.observations}


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == 50 / 150
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_two_people_moving_stay_apart() -> None:
    frames = [
        [
            face(box_at(100 + 10 * i), jittered(A, i)),
            face(box_at(400 - 10 * i), jittered(B, 50 + i)),
        ]
        for i in range(10)
    ]
    tracks = run(frames)
    assert len(tracks) == 2
    assert sorted(t.hits for t in tracks) == [10, 10]
    for track in tracks:
        assert float(track.mean_embedding @ A) > 0.9 or float(track.mean_embedding @ B) > 0.9


def test_swap_places_without_cut_does_not_swap_identities() -> None:
    """Overlap says 'same track', the embedding says 'different person': embedding wins."""
    truth: dict[int, dict[float, str]] = {}
    frames = []
    for i in range(8):
        xa, xb = (100, 300) if i < 4 else (300, 100)
        frames.append([face(box_at(xa), jittered(A, i)), face(box_at(xb), jittered(B, 90 + i))])
        truth[i * 500] = {xa: "A", xb: "B"}
    tracks = run(frames)
    assert len(tracks) == 2
    assert all(len(owner(t, truth)) == 1 for t in tracks)


def test_cut_to_another_person_in_the_same_place_starts_a_new_track() -> None:
    """A look-alike between the two thresholds: linked by overlap, never by similarity alone."""
    settings = VideoSettings(track_link_similarity=0.80, track_reid_similarity=0.95)
    lookalike = at_cosine(A, 0.88, seed=7)  # ~0.85 between jittered frames
    frames = [[face(box_at(200), jittered(A, i))] for i in range(4)]
    frames += [[face(box_at(200), jittered(lookalike, 20 + i))] for i in range(4)]
    assert len(run(frames, cuts=[4], settings=settings)) == 2  # the cut removes the overlap cue
    assert len(run(frames, settings=settings)) == 1  # without it, overlap + loose similarity
    elsewhere = [f if i < 4 else [face(box_at(600), f[0].embedding)] for i, f in enumerate(frames)]
    assert len(run(elsewhere, settings=settings)) == 2  # no overlap: similarity alone is too low


def test_fast_motion_is_carried_by_reidentification() -> None:
    frames = [[face(box_at(100 + 300 * i, size=60), jittered(A, i))] for i in range(5)]
    tracks = run(frames)
    assert len(tracks) == 1 and tracks[0].hits == 5


def test_single_false_detection_is_not_confirmed() -> None:
    noise = identity_vector(77)
    frames: list[list[Face]] = [[face(box_at(100), jittered(A, i))] for i in range(6)]
    frames[3].append(face(box_at(500), noise))
    tracks = run(frames)
    assert len(tracks) == 1 and tracks[0].hits == 6


def test_missed_detections_do_not_split_a_track_or_its_span() -> None:
    frames = [[face(box_at(200), jittered(A, i))] if i not in (3, 4) else [] for i in range(8)]
    tracks = run(frames)
    assert len(tracks) == 1
    assert [(s.start_ms, s.end_ms) for s in tracks[0].spans] == [(0, 3500)]


def test_exit_and_reentry_is_one_track_with_two_spans() -> None:
    frames = [[face(box_at(200), jittered(A, i))] if i < 4 or i >= 12 else [] for i in range(16)]
    frames = [[*f, face(box_at(600), jittered(B, 100 + i))] for i, f in enumerate(frames)]
    tracks = run(frames)
    assert len(tracks) == 2
    person_a = next(t for t in tracks if float(t.mean_embedding @ A) > 0.9)
    assert [(s.start_ms, s.end_ms) for s in person_a.spans] == [(0, 1500), (6000, 7500)]


def test_two_faces_in_one_frame_are_never_merged() -> None:
    """Identical twins (same embedding) side by side stay two tracks (cannot-link)."""
    frames = [
        [face(box_at(100), jittered(A, i)), face(box_at(400), jittered(A, 500 + i))]
        for i in range(6)
    ]
    tracks = run(frames)
    assert len(tracks) == 2
    times = [{o.t_ms for o in t.observations} for t in tracks]
    assert times[0] == times[1]


def test_best_face_prefers_acceptable_then_quality() -> None:
    frames = [
        [face(box_at(200), jittered(A, 0), quality=0.3)],
        [face(box_at(200), jittered(A, 1), quality=0.9, acceptable=False)],
        [face(box_at(200), jittered(A, 2), quality=0.6)],
        [face(box_at(200), jittered(A, 3), quality=0.5)],
    ]
    (track,) = run(frames)
    assert track.best.t_ms == 1000
    assert track.best.track_id == track.track_id and track.best.video_id == "v"
    assert abs(float(np.linalg.norm(track.mean_embedding)) - 1.0) < 1e-5


def test_mean_embedding_is_the_normalised_mean() -> None:
    vectors = [jittered(A, i, amount=0.02) for i in range(5)]
    (track,) = run([[face(box_at(200), v)] for v in vectors])
    expected = np.sum(vectors, axis=0)
    expected /= np.linalg.norm(expected)
    assert np.allclose(track.mean_embedding, expected, atol=1e-5)


def test_linking_scales_to_a_long_video() -> None:
    """3000 tracklets (300 people, each seen 10 separate times): linked in seconds."""
    from facesearch.video.tracker import make_track, track_face

    tracks = []
    for person in range(300):
        vector = identity_vector(person)
        for visit in range(10):
            t = (visit * 300 + person) * 10_000  # visits far apart: only re-identification joins
            f = face(box_at(100), jittered(vector, person * 10 + visit))
            assert f.embedding is not None
            best = track_face(f, video_id="v", track_id="", t_ms=t)
            observations = [
                Observation(t_ms=t + k * 500, box=best.box, score=best.det_score) for k in range(3)
            ]
            tracks.append(
                make_track(
                    "v",
                    f"c-t{len(tracks)}",
                    observations=observations,
                    embedding_sum=f.embedding * 3,
                    best=best,
                    settings=SETTINGS,
                )
            )
    start = time.perf_counter()
    groups = link_tracks(tracks, SETTINGS)
    assert time.perf_counter() - start < 10
    assert len(groups) == 300
    assert all(len(group) == 10 for group in groups)
