"""The dedupe ledger's contract on both adapters: SQLite and Firestore (emulator).

The point of the ledger is that concurrent duplicates of one notification
cannot both win; that is checked with real threads racing on each adapter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facesearch.storage.gcp.ledger import FirestoreEventLedger
from facesearch.storage.ledger import EventLedger
from facesearch.storage.local.ledger import SqliteEventLedger


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.integration)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLedger]:
    if request.param == "sqlite":
        yield SqliteEventLedger(tmp_path / "events.sqlite3")
        return
    request.getfixturevalue("firestore_emulator")
    project = request.getfixturevalue("gcp_project")
    from google.cloud import firestore

    yield FirestoreEventLedger(firestore.Client(project=project))


def test_claim_get_put_release(ledger: EventLedger) -> None:
    later = time.time() + 3600
    assert ledger.get("k1") is None
    assert ledger.claim("k1", {"public_id": "a/b", "version": "1"}, later)
    assert not ledger.claim("k1", {"public_id": "a/b", "version": "1"}, later)
    assert ledger.get("k1") == {"public_id": "a/b", "version": "1"}
    ledger.put("k1", {"public_id": "a/b", "version": "1", "deleted": "1"}, later)
    assert (ledger.get("k1") or {}).get("deleted") == "1"
    ledger.release("k1")
    assert ledger.get("k1") is None and ledger.claim("k1", {}, later)
    ledger.release("never-claimed")  # missing is fine


def test_expired_claims_do_not_count(ledger: EventLedger) -> None:
    assert ledger.claim("old", {"version": "1"}, time.time() - 1)
    assert ledger.get("old") is None


def test_concurrent_duplicates_have_exactly_one_winner(ledger: EventLedger) -> None:
    later = time.time() + 3600
    start = threading.Barrier(8)
    wins: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        start.wait()
        won = ledger.claim("raced", {"version": "7"}, later)
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(wins) == [False] * 7 + [True]
