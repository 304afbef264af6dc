"""The replay guard's contract on both adapters: SQLite and Firestore (emulator).

A nonce is claimed once per key id, even by racing threads; Firestore documents
carry only the key id and the TTL field, never the nonce itself.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from facesearch.storage.gcp.nonces import FirestoreNonceStore
from facesearch.storage.local.nonces import SqliteNonceStore
from facesearch.storage.nonces import NonceStore
from tests.support import emulators


def _firestore(project: str) -> Any:
    return importlib.import_module("google.cloud.firestore").Client(project=project)


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.integration)])
def nonces(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NonceStore]:
    if request.param == "sqlite":
        yield SqliteNonceStore(tmp_path / "n.sqlite3")
        return
    emulator: emulators.Emulator = request.getfixturevalue("firestore_emulator")
    project: str = request.getfixturevalue("gcp_project")
    yield FirestoreNonceStore(_firestore(project))
    emulators.reset_firestore(emulator, project)


def test_a_nonce_is_claimed_once_per_key(nonces: NonceStore) -> None:
    expires = time.time() + 301
    assert nonces.claim("k1", "n" * 24, expires)
    assert not nonces.claim("k1", "n" * 24, expires)
    assert nonces.claim("k2", "n" * 24, expires)  # per key id


def test_racing_claims_have_exactly_one_winner(nonces: NonceStore) -> None:
    expires = time.time() + 301
    start = threading.Barrier(6)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def claim() -> None:
        start.wait()
        won = nonces.claim("k1", "race-" + "r" * 20, expires)
        with lock:
            outcomes.append(won)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False] * 5 + [True]


def test_sqlite_file_is_shared_between_instances(tmp_path: Path) -> None:
    a = SqliteNonceStore(tmp_path / "n.sqlite3")
    b = SqliteNonceStore(tmp_path / "n.sqlite3")
    later = time.time() + 10.0
    assert a.claim("ka", "n" * 20, later)
    assert not b.claim("ka", "n" * 20, later)
    assert (tmp_path / "n.sqlite3").stat().st_mode & 0o077 == 0  # private: security state


@pytest.mark.integration
def test_firestore_documents_hold_only_the_key_id_and_ttl(
    firestore_emulator: emulators.Emulator, gcp_project: str
) -> None:
    store = FirestoreNonceStore(_firestore(gcp_project))
    assert store.claim("k1", "n" * 24, time.time() + 301)
    (doc,) = list(_firestore(gcp_project).collection("nonces").stream())
    data = doc.to_dict()
    assert isinstance(data["expires_at"], datetime)  # the TTL policy's field
    assert set(data) == {"key_id", "expires_at"}  # never the nonce itself
    emulators.reset_firestore(firestore_emulator, gcp_project)
