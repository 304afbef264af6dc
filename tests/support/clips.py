"""A small real-face clip for video tests: two people from the test photos, a hard cut.

640x360 at 25 fps, 4 s: Obama for 2 s (drifting right), a cut, Biden for 2 s. At 2
samples per second the tracks are ``[(0, 1960)]`` and ``[(2000, 3960)]`` (both sides of
the cut and the last frame are sampled), exact. Cheap to encode and to process (about
ten sampled frames), so ingest, API and emulator tests can afford it.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from facesearch.vision.pipeline import FacePipeline
from tests.data.video_corpus import RGB, encode_bytes, pattern

WIDTH, HEIGHT, FACE_PX = 640, 360, 110
#: the photos the clip's people come from, and photos to search with: another photo of
#: Obama; Biden has only the one photo in tests/data, so his probe is that photo
#: (uncut, unscaled, without the clip's background and compression)
PEOPLE = {"obama": "obama/obama_1.jpg", "biden": "biden/biden_1.jpg"}
PROBES = {"obama": "obama/obama_2.jpg", "biden": "biden/biden_1.jpg"}
SPANS = {"obama": [(0, 1960)], "biden": [(2000, 3960)]}


def portraits(photos_dir: Path, pipeline: FacePipeline) -> dict[str, RGB]:
    """Head-and-shoulders cut-outs with a FACE_PX-high face, from the real test photos."""
    out = {}
    for who, name in PEOPLE.items():
        rgb = pipeline.decode((photos_dir / "labelled" / name).read_bytes()).rgb
        (detection, *_) = pipeline.detect(rgb)
        x1, y1, x2, y2 = detection.box
        w, h = x2 - x1, y2 - y1
        crop = rgb[
            max(0, int(y1 - h)) : int(y2 + 0.8 * h), max(0, int(x1 - 0.8 * w)) : int(x2 + 0.8 * w)
        ]
        scale = FACE_PX / h
        out[who] = cv2.resize(crop, None, fx=scale, fy=scale)
    return out


def compose(portrait: RGB, x: int, t_ms: int, seed: int) -> RGB:
    frame = pattern(WIDTH, HEIGHT, seed, shift=t_ms // 40)
    h, w = portrait.shape[:2]
    frame[(HEIGHT - h) // 2 : (HEIGHT - h) // 2 + h, x : x + w] = portrait
    return frame


def two_people_frames(people: dict[str, RGB]) -> list[tuple[int, RGB]]:
    """4 s at 25 fps: Obama 2 s, a hard cut, Biden 2 s."""
    frames = []
    for t in range(0, 4000, 40):
        if t < 2000:
            frames.append((t, compose(people["obama"], 120 + t // 40, t, 1)))
        else:
            frames.append((t, compose(people["biden"], 300, t, 2)))
    return frames


def two_people_mp4(photos_dir: Path, pipeline: FacePipeline) -> bytes:
    return encode_bytes(two_people_frames(portraits(photos_dir, pipeline)), gop=25)


def probe_photo(photos_dir: Path, who: str) -> bytes:
    return (photos_dir / "labelled" / PROBES[who]).read_bytes()
