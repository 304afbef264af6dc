"""A catalog on each database adapter, for the port contracts."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from facesearch.storage.catalog import Catalog
from facesearch.storage.gcp.catalog import FirestoreCatalog
from facesearch.storage.local.catalog import SqliteCatalog
from tests.support import emulators

#: the Firestore adapter, on the emulator (an integration test)
FIRESTORE = pytest.param("firestore", marks=pytest.mark.integration)


@contextmanager
def open_catalog(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    """A fresh catalog on ``sqlite`` or ``firestore`` (the emulator is reset afterwards)."""
    if kind == "sqlite":
        yield SqliteCatalog(tmp_path / "m.sqlite3")
        return
    emulator: emulators.Emulator = request.getfixturevalue("firestore_emulator")
    project: str = request.getfixturevalue("gcp_project")
    client = importlib.import_module("google.cloud.firestore").Client(project=project)
    yield FirestoreCatalog(client)
    emulators.reset_firestore(emulator, project)
