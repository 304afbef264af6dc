"""End to end on a real-face clip: real models, chunks, stitching, rotation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facesearch.config import load_settings
from facesearch.video.chunks import plan_chunks, stitch
from facesearch.video.probe import probe
from facesearch.video.process import process_chunk, process_video, video_pipeline
from facesearch.video.settings import VideoSettings
from facesearch.video.types import VideoResult
from facesearch.vision.pipeline import FacePipeline
from tests.data.video_corpus import pattern, write_video

WIDTH, HEIGHT, FACE_PX = 640, 360, 110


@pytest.fixture(scope="module")
def base_pipeline() -> FacePipeline:
    return FacePipeline(load_settings(onnx_threads=1))


@pytest.fixture(scope="module")
def portraits(photos_dir: Path, base_pipeline: FacePipeline) -> dict[str, np.ndarray]:
    """Head-and-shoulders cut-outs with a FACE_PX-high face, from the real test photos."""
    out = {}
    for name in ("obama/obama_1.jpg", "biden/biden_1.jpg"):
        rgb = base_pipeline.decode((photos_dir / "labelled" / name).read_bytes()).rgb
        (detection, *_) = base_pipeline.detect(rgb)
        x1, y1, x2, y2 = detection.box
        w, h = x2 - x1, y2 - y1
        crop = rgb[
            max(0, int(y1 - h)) : int(y2 + 0.8 * h), max(0, int(x1 - 0.8 * w)) : int(x2 + 0.8 * w)
        ]
        scale = FACE_PX / h
        out[name.split("/")[0]] = cv2.resize(crop, None, fx=scale, fy=scale)
    return out


def compose(portrait: np.ndarray, x: int, t_ms: int, seed: int) -> np.ndarray:
    frame = pattern(WIDTH, HEIGHT, seed, shift=t_ms // 40)
    h, w = portrait.shape[:2]
    frame[(HEIGHT - h) // 2 : (HEIGHT - h) // 2 + h, x : x + w] = portrait
    return frame


@pytest.fixture(scope="module")
def clip_frames(portraits: dict[str, np.ndarray]) -> list[tuple[int, np.ndarray]]:
    """4 s at 25 fps: Obama 2 s, a hard cut, Biden 2 s (samples 0, 520 ... 1960, 2000 ... 3960)."""
    frames = []
    for t in range(0, 4000, 40):
        if t < 2000:
            frames.append((t, compose(portraits["obama"], 120 + t // 40, t, 1)))
        else:
            frames.append((t, compose(portraits["biden"], 300, t, 2)))
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, clip_frames: list) -> Path:
    path = tmp_path_factory.mktemp("e2e") / "clip.mp4"
    write_video(path, clip_frames, gop=25)
    return path


@pytest.fixture(scope="module")
def rotated_clip(tmp_path_factory: pytest.TempPathFactory, clip_frames: list) -> Path:
    path = tmp_path_factory.mktemp("e2e") / "rotated.mp4"
    write_video(
        path, [(t, np.ascontiguousarray(np.rot90(f, -1))) for t, f in clip_frames], rotation=90
    )
    return path


def spans(result: VideoResult) -> list[list[tuple[int, int]]]:
    return [[(s.start_ms, s.end_ms) for s in t.spans] for t in result.tracks]


def test_two_people_two_tracks(clip: Path, base_pipeline: FacePipeline, photos_dir: Path) -> None:
    settings = VideoSettings()
    pipeline = video_pipeline(base_pipeline, settings)
    result = process_video(clip, "vid", pipeline=pipeline, settings=settings)
    assert spans(result) == [[(0, 1960)], [(2000, 3960)]]
    assert [t.track_id for t in result.tracks] == ["vid-t0", "vid-t1"]
    assert result.samples == 10 and result.scene_cuts == 1  # 8 on the grid, 2 shot ends
    still = base_pipeline.process((photos_dir / "labelled/obama/obama_1.jpg").read_bytes())
    obama, biden = result.tracks
    assert float(obama.mean_embedding @ still.faces[0].embedding) > 0.9
    assert float(biden.mean_embedding @ still.faces[0].embedding) < 0.9
    for track in result.tracks:
        best = track.best
        assert (best.video_id, best.track_id) == ("vid", track.track_id)
        assert best.crop.shape[2] == 3 and best.crop.dtype == np.uint8
        assert abs(float(np.linalg.norm(best.embedding)) - 1.0) < 1e-4
        assert best.t_ms in {o.t_ms for o in track.observations}
        assert min(best.box[2] - best.box[0], best.box[3] - best.box[1]) > 60
    assert result.model == base_pipeline.embedder.model_id


def test_chunks_give_the_same_tracks(clip: Path, base_pipeline: FacePipeline) -> None:
    settings = VideoSettings(chunk_s=1.0)
    pipeline = video_pipeline(base_pipeline, settings)
    plan = plan_chunks("vid", probe(clip, settings), settings)
    assert plan.total == 4
    results = [
        process_chunk(clip, plan, chunk, pipeline=pipeline, settings=settings)
        for chunk in reversed(plan.chunks)  # instances finish in any order
    ]
    assert sum(r.samples for r in results) == 10
    assert all(set(r.timings_ms) == {"decode", "detect", "embed", "track"} for r in results)
    stitched = stitch(plan, results, settings)
    assert spans(stitched) == [[(0, 1960)], [(2000, 3960)]]


def test_rotated_video_is_turned_upright(rotated_clip: Path, base_pipeline: FacePipeline) -> None:
    settings = VideoSettings()
    pipeline = video_pipeline(base_pipeline, settings)
    result = process_video(rotated_clip, "rot", pipeline=pipeline, settings=settings)
    assert spans(result) == [[(0, 1960)], [(2000, 3960)]]
    box = result.tracks[0].best.box
    assert box[2] <= WIDTH and box[3] <= HEIGHT  # upright frame coordinates


def test_video_pipeline_shares_models_but_not_the_detector(base_pipeline: FacePipeline) -> None:
    pipeline = video_pipeline(base_pipeline, VideoSettings(min_face_px=48))
    assert pipeline.embedder is base_pipeline.embedder
    assert pipeline.liveness is base_pipeline.liveness
    assert pipeline.detector.min_face_px == 48
