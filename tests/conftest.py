"""Shared fixtures: real photos fetched by `make setup`, settings for tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `tests.data...` importable when run from anywhere
    sys.path.insert(0, str(ROOT))

PHOTOS_DIR = ROOT / "tests" / "data" / "photos"

#: emulator fixtures (GCS, Pub/Sub, Firestore) for integration and contract tests
pytest_plugins = ["tests.support.emulator_fixtures"]


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    if not (PHOTOS_DIR / "labelled").is_dir():
        pytest.fail(f"{PHOTOS_DIR} is missing: run `make setup` (tests/data/fetch_photos.py)")
    return PHOTOS_DIR
