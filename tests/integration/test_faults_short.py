"""``python -m tests.bench.faults --short`` as part of the suite: 20 uploads on the
emulators with the real function processes while one fault of every kind is injected
(kill -9 of ingest and indexer, emulator restarts, GCS 429/503/slow, duplicated and
reordered deliveries), plus the embedded crash case. Nothing may be lost, duplicated or
orphaned."""

from __future__ import annotations

import pytest

from tests.bench.faults import KINDS, main


@pytest.mark.integration
@pytest.mark.slow
def test_short_fault_run_loses_nothing() -> None:
    summary = main(["--short"])
    assert summary["faults_by_kind"] == {kind: 1 for kind in sorted(KINDS)}
    assert summary["uploads"] == 20
    assert summary["lost"] == 0, summary["lost_examples"]
    assert summary["duplicated"] == 0 and summary["orphans"] == 0
    assert summary["searchable"] + summary["failed_with_reason"] == summary["uploads"]
    assert summary["failed_with_reason"] == summary["bad_uploads"]
    assert summary["manifest_loads"] and summary["reconciliation_ok"]
    assert summary["embedded"]["killed_runs"] == 1 and summary["embedded"]["reconciliation_ok"]
