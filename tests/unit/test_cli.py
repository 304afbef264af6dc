"""The `facesearch` command: outputs, exit codes and error messages users see."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from facesearch.cli import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("detect", "match", "models"):
        assert command in out


def test_detect_json_and_annotated_output(
    photos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_image = tmp_path / "annotated.jpg"
    image = photos_dir / "group/insightface_t1.jpg"
    assert main(["detect", str(image), "--json", "--out", str(out_image)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["faces"]) == 6
    assert all(len(face["landmarks"]) == 5 for face in report["faces"])
    annotated = cv2.imread(str(out_image))
    original = cv2.imread(str(image))
    assert annotated is not None and annotated.shape == original.shape
    assert (annotated != original).any()  # boxes were drawn


def test_detect_table(photos_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(photos_dir / "labelled/biden/biden_1.jpg")]) == 0
    out = capsys.readouterr().out
    assert "1 face(s)" in out and "liveness" in out and "timings (ms)" in out


def test_match_same_and_different(photos_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obama1 = str(photos_dir / "labelled/obama/obama_1.jpg")
    obama2 = str(photos_dir / "labelled/obama/obama_2.jpg")
    biden = str(photos_dir / "labelled/biden/biden_1.jpg")
    assert main(["match", obama1, obama2, "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["same_person"] is True
    assert main(["match", obama1, biden, "--json"]) == 1
    different = json.loads(capsys.readouterr().out)
    assert different["same_person"] is False
    assert same["similarity"] > different["similarity"]


def test_match_group_photo_needs_a_choice(
    photos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = str(photos_dir / "group/insightface_t1.jpg")
    obama = str(photos_dir / "labelled/obama/obama_1.jpg")
    assert main(["match", group, obama]) == 2
    assert "6 faces" in capsys.readouterr().err
    assert main(["match", group, obama, "--face-a", "0"]) in (0, 1)


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    assert main(["detect", str(text)]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["detect", str(tmp_path / "missing.jpg")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_models_verify(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "verify"]) == 0
    assert "match their pinned sha256" in capsys.readouterr().out
