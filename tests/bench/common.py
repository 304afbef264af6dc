"""Helpers shared by the benchmarks: result files, RSS, the face_recognition baseline."""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "bench-results"
PHOTOS_DIR = ROOT / "tests" / "data" / "photos"
DEV_SET_ENV = "FACESEARCH_DEV_SET"


def dev_set() -> Path | None:
    """The labelled faces-dev folder: $FACESEARCH_DEV_SET, else ``shared/datasets/faces-dev``
    beside the checkout (or beside the folder holding a git worktree)."""
    import os

    if os.environ.get(DEV_SET_ENV):
        return Path(os.environ[DEV_SET_ENV])
    for base in (ROOT.parent, ROOT.parent.parent):
        candidate = base / "shared" / "datasets" / "faces-dev"
        if candidate.is_dir():
            return candidate
    return None


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic"}


def peak_rss_mb() -> float:
    """Peak resident set size of this process's own memory, in MiB.

    Linux's ``VmHWM`` (the high-water mark of this address space) where it exists:
    ``ru_maxrss`` survives ``execve``, so a benchmark child started by a parent that held
    a large index would report the parent's peak as its own.
    """
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict[str, Any]:
    import os

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def write_result(name: str, summary: dict[str, Any], details: dict[str, Any] | None = None) -> Path:
    """Write bench-results/<name>.json and print the one-line JSON summary (always last)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"summary": summary, "details": details or {}, "machine": machine()}
    path.write_text(json.dumps(payload, indent=2, default=_jsonable))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"wrote {shown}", file=sys.stderr)
    print(json.dumps(summary, default=_jsonable))
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


class FaceRecognitionBaseline:
    """The `face_recognition` package (dlib HOG detector + dlib ResNet), as users run it.

    Uses the package's own public functions with their defaults (HOG, upsample 1,
    the 5-point "small" landmark model, one jitter), so the comparison is with
    what its users actually get, not with a re-implementation.
    """

    name = "face_recognition 1.3.0 (dlib HOG + ResNet)"
    default_tolerance = 0.6  # its documented distance threshold

    def __init__(self) -> None:
        import face_recognition  # installed by `make setup` (no-deps; uses dlib-bin)

        self._fr = face_recognition

    @staticmethod
    def available() -> tuple[bool, str]:
        try:
            import face_recognition  # noqa: F401
        except Exception as exc:  # ImportError, or dlib failing to load
            return False, f"face_recognition not importable: {exc}"
        return True, ""

    def load(self, path: Path) -> np.ndarray:
        return np.asarray(self._fr.load_image_file(str(path)))

    def locate(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        return list(self._fr.face_locations(image))

    def encode(
        self, image: np.ndarray, locations: list[tuple[int, int, int, int]]
    ) -> list[np.ndarray]:
        return [np.asarray(v) for v in self._fr.face_encodings(image, locations)]
