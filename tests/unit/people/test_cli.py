"""``facesearch persons ...`` on the embedded store: ingest clusters, the commands read
and correct what the API would, recluster keeps ids and names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesearch.cli import main
from facesearch.config import load_settings
from facesearch.local import EmbeddedSystem
from tests.support.api import COLLECTION, PROBE


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ingest_clusters_and_the_commands_correct_and_undo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "state"
    system = EmbeddedSystem(load_settings(backend="local", data_dir=data))
    system.ingest_files(
        [COLLECTION["obama-1"], COLLECTION["obama-2"], PROBE, COLLECTION["biden-1"]]
    )
    system.flush()
    d = ("--data-dir", str(data))

    page = _json(capsys, "persons", "list", *d)
    assert isinstance(page, dict)
    persons = page["items"]
    assert persons, "the embedded ingest clustered faces into persons"
    obama = max(persons, key=lambda p: p["faces"])
    pid = obama["person_id"]
    images = _json(capsys, "persons", "images", pid, *d)
    assert isinstance(images, dict)
    # the three Obama photos are one person; Biden is not in it
    assert obama["faces"] == 3 and len(images["items"]) == 3

    named = _json(capsys, "persons", "name", pid, "Barack", *d)
    assert isinstance(named, dict) and named["name"] == "Barack"
    log = _json(capsys, "persons", "log", *d)
    assert isinstance(log, dict)
    entry = log["items"][0]
    assert entry["kind"] == "name" and entry["new_name"] == "Barack"

    report = _json(capsys, "persons", "recluster", *d)
    assert isinstance(report, dict) and report["faces"] == 4
    shown = _json(capsys, "persons", "show", pid, *d)
    assert isinstance(shown, dict) and shown["name"] == "Barack"  # id and name kept

    undone = _json(capsys, "persons", "undo", entry["correction_id"], *d)
    assert isinstance(undone, dict) and undone["undoes"] == entry["correction_id"]
    shown = _json(capsys, "persons", "show", pid, *d)
    assert isinstance(shown, dict) and shown["name"] is None

    assert main(["persons", "show", "nobody", *d]) == 2
    assert "not-found" in capsys.readouterr().err
