"""The metadata contract against Google's Firestore emulator (official client)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from facesearch.storage.metadata_firestore import FirestoreMetadataStore
from tests.integration import emulators
from tests.unit.test_metadata_contract import MetadataContract

pytestmark = pytest.mark.integration


class TestFirestoreMetadata(MetadataContract):
    @pytest.fixture
    def store(
        self, firestore_emulator: emulators.Emulator, gcp_project: str
    ) -> Iterator[FirestoreMetadataStore]:
        store = FirestoreMetadataStore(project=gcp_project)
        yield store
        emulators.reset_firestore(firestore_emulator, gcp_project)
