"""The embedded crash hole (issue 18): a `facesearch ingest` killed with SIGKILL between
index commits must not leave faces that are recorded but never indexed.

The killed process ingests a few photos (each marked ``done`` with its face records) and
dies before its in-process indexer commits them. A later run over the same folder finds
every image done; the test then compares the metadata store (the source of truth) with
the index, in both directions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facesearch.cli import main
from facesearch.config import load_settings
from facesearch.local import EmbeddedSystem
from facesearch.storage.metadata import ImageStatus, iter_faces
from tests.support.faults import EMBEDDED_KILLER

ROOT = Path(__file__).resolve().parents[3]

PHOTOS = (
    "labelled/obama/obama_1.jpg",
    "labelled/biden/biden_1.jpg",
    "labelled/obama/obama_3.jpg",
    "group/faceapi_sample2.jpg",
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("crash-photos")
    for rel in PHOTOS:
        shutil.copy(photos_dir / rel, out / Path(rel).name)
    return out


def killed_run(data_dir: Path, folder: Path, after_done: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared") + os.pathsep + str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", EMBEDDED_KILLER, str(data_dir), str(folder), str(after_done)],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode(errors="replace")[-2000:]


def indexed_vs_recorded(data_dir: Path) -> tuple[set[str], set[str]]:
    system = EmbeddedSystem(load_settings(data_dir=data_dir))
    done = {
        i.image_id for i in system.metadata.list_images(status=ImageStatus.DONE, limit=1000).items
    }
    recorded = {f.face_id for f in iter_faces(system.metadata) if f.image_id in done}
    return recorded, set(system.reader().face_ids())


@pytest.mark.slow
def test_a_killed_ingest_leaves_no_recorded_face_unindexed(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "state"
    killed_run(data_dir, folder, after_done=2)

    assert main(["ingest", str(folder), "--data-dir", str(data_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == len(PHOTOS)
    assert summary["duplicates"] == 2  # the killed run had finished two images

    recorded, indexed = indexed_vs_recorded(data_dir)
    assert recorded, "the photos have faces"
    assert recorded - indexed == set(), "faces recorded but not searchable"
    assert indexed - recorded == set(), "index entries without a record"


def doctor(data_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["doctor", "--data-dir", str(data_dir), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_doctor_finds_both_directions_and_repairs_them(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "state"
    assert main(["ingest", str(folder), "--data-dir", str(data_dir), "--json"]) == 0
    capsys.readouterr()
    assert doctor(data_dir, capsys)[0] == 0

    # damage the index behind the metadata store's back, both ways
    system = EmbeddedSystem(load_settings(data_dir=data_dir))
    recorded, indexed = indexed_vs_recorded(data_dir)
    lost = sorted(recorded)[0]
    system.writer.delete([lost])
    model = system.writer.read_manifest()[0].model  # type: ignore[union-attr]
    system.writer.add(["0" * 32 + "-7"], np.ones((1, 128), dtype=np.float32), model)

    code, report = doctor(data_dir, capsys)
    assert code == 1
    (found,) = report["collections"]
    assert (found["missing"], found["orphans"]) == (1, 1)
    assert found["missing_sample"] == [lost] and found["orphans_sample"] == ["0" * 32 + "-7"]

    code, report = doctor(data_dir, capsys, "--repair")
    assert code == 0, report
    assert report["collections"][0]["repaired"]["embeddings_queued"] == 1
    recorded, indexed = indexed_vs_recorded(data_dir)
    assert recorded == indexed


@pytest.mark.slow
def test_reingest_repairs_a_face_that_was_recorded_but_not_indexed(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data dir damaged before the fix (face done, never indexed): ingest it again."""
    data_dir = tmp_path / "state"
    assert main(["ingest", str(folder), "--data-dir", str(data_dir), "--json"]) == 0
    recorded, _ = indexed_vs_recorded(data_dir)
    EmbeddedSystem(load_settings(data_dir=data_dir)).writer.delete(sorted(recorded)[:2])
    assert main(["ingest", str(folder), "--data-dir", str(data_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n}\n")[-1] or "{}") is not None
    recorded, indexed = indexed_vs_recorded(data_dir)
    assert recorded == indexed
