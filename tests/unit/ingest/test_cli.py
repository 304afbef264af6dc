"""Embedded mode end to end: `facesearch ingest` a folder, `facesearch search` a photo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facesearch.cli import main
from tests.data.image_corpus import build_corpus


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> Path:
    """A small folder: two Obama photos, Biden, a group photo, junk and a bad image."""
    folder = tmp_path_factory.mktemp("photos")
    for rel in (
        "labelled/obama/obama_1.jpg",
        "labelled/obama/obama_3.jpg",
        "labelled/biden/biden_1.jpg",
        "group/faceapi_sample2.jpg",
    ):
        shutil.copy(photos_dir / rel, folder / Path(rel).name)
    corpus = {c.name: c for c in build_corpus(include_huge=False)}
    (folder / "truncated.jpg").write_bytes(corpus["truncated_jpeg"].data)
    (folder / "notes.txt").write_text("not an image, not image-named: not even listed")
    return folder


def test_ingest_then_search(
    collection: Path, tmp_path: Path, photos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "state"
    assert main(["ingest", str(collection), "--data-dir", str(data_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 5 and summary["done"] == 4
    assert summary["rejected"] == {"invalid-image": [str(collection / "truncated.jpg")]}
    assert summary["faces"] >= 4 and summary["faces_per_s"] > 0
    assert summary["dead_letters"] == 0

    # ingesting the same folder again changes nothing
    assert main(["ingest", str(collection), "--data-dir", str(data_dir), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["duplicates"] == 4 and again["collection"] == summary["collection"]

    query = photos_dir / "labelled/obama/obama_2.jpg"  # not in the collection
    assert main(["search", str(query), "--data-dir", str(data_dir), "-k", "3", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    (face,) = found["faces"]
    best = face["matches"][0]
    assert Path(best["source"]).name in {"obama_1.jpg", "obama_3.jpg"}
    assert best["similarity"] > 0.92

    assert main(["search", str(query), "--data-dir", str(data_dir)]) == 0
    text = capsys.readouterr().out
    assert "similarity" in text and "obama_" in text


def test_ingest_table_and_bad_usage(
    collection: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = collection / "biden_1.jpg"
    code = main(["ingest", str(one), "--data-dir", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "faces/s" in out and "ingested" in out
    assert main(["ingest", str(tmp_path / "missing"), "--data-dir", str(tmp_path)]) == 2
    bad = collection / "truncated.jpg"
    assert main(["search", str(bad), "--data-dir", str(tmp_path)]) == 2
    strict = main(["ingest", str(bad), "--data-dir", str(tmp_path), "--strict", "--no-progress"])
    assert strict == 1
