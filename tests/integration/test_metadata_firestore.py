"""The metadata contract against Google's Firestore emulator (official client)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from facesearch.storage.gcp.metadata import FirestoreMetadataStore
from tests.integration import emulators
from tests.unit.test_metadata_contract import MetadataContract

pytestmark = pytest.mark.integration


class TestFirestoreMetadata(MetadataContract):
    @pytest.fixture
    def store(
        self, firestore_emulator: emulators.Emulator, gcp_project: str
    ) -> Iterator[FirestoreMetadataStore]:
        store = FirestoreMetadataStore(
            importlib.import_module("google.cloud.firestore").Client(project=gcp_project)
        )
        yield store
        emulators.reset_firestore(firestore_emulator, gcp_project)
