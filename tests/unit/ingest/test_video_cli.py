"""Embedded mode with a video: `facesearch ingest clip.mp4`, `facesearch video show ID`,
`facesearch search` answering with moments; also in a collection of its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesearch.cli import main
from facesearch.config import load_settings
from facesearch.vision.pipeline import FacePipeline
from tests.support.clips import SPANS, probe_photo, two_people_mp4


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, photos_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("clips") / "party.mp4"
    path.write_bytes(two_people_mp4(photos_dir, FacePipeline(load_settings())))
    return path


def test_ingest_show_and_search_a_video(
    clip: Path, tmp_path: Path, photos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "state")]
    assert main(["ingest", str(clip), *data, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["videos"], summary["done"], summary["faces"]) == (1, 1, 2)
    (video_id,) = summary["video_ids"]
    assert summary["collection"]["videos"] == 1 and summary["dead_letters"] == 0

    assert main(["video", "show", video_id, *data]) == 0
    text = capsys.readouterr().out
    assert f"video {video_id} (party.mp4): done" in text
    assert "chunks 1/1, 2 track(s)" in text
    assert "on screen 0.0-2.0 s" in text and "on screen 2.0-4.0 s" in text

    assert main(["video", "show", video_id, *data, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [[(m["start_ms"], m["end_ms"]) for m in t["moments"]] for t in shown["tracks"]] == [
        SPANS["obama"],
        SPANS["biden"],
    ]
    assert main(["video", "show", "no-such-video", *data]) == 1
    assert "not found" in capsys.readouterr().err

    probe = tmp_path / "probe.jpg"
    probe.write_bytes(probe_photo(photos_dir, "obama"))
    assert main(["search", str(probe), *data, "--json"]) == 0
    (face,) = json.loads(capsys.readouterr().out)["faces"]
    best = face["matches"][0]
    assert best["face_id"] == f"{video_id}-t0" and best["moments_ms"] == [[0, 1960]]
    assert Path(best["source"]).name == "party.mp4"
    assert main(["search", str(probe), *data]) == 0
    assert "party.mp4 @ 0.0-2.0 s" in capsys.readouterr().out

    # ingesting it again is a no-op; in another collection it is another video
    assert main(["ingest", str(clip), *data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["duplicates"] == 1
    assert main(["collections", "create", "event", *data]) == 0
    capsys.readouterr()
    assert main(["ingest", str(clip), *data, "--collection", "event", "--json"]) == 0
    (other,) = json.loads(capsys.readouterr().out)["video_ids"]
    assert other != video_id
    assert main(["video", "show", other, *data, "--collection", "event"]) == 0
    assert "2 track(s)" in capsys.readouterr().out
    assert main(["video", "show", other, *data]) == 1  # not in the default collection
