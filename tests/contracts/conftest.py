"""What the port contracts share: a catalog on each database adapter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facesearch.storage.catalog import Catalog
from tests.support.catalogs import FIRESTORE, open_catalog


@pytest.fixture(params=["sqlite", FIRESTORE])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """The adapters that live in a database with collections (not the in-memory one)."""
    with open_catalog(request.param, request, tmp_path) as opened:
        yield opened
