"""VideoSettings: validation, and the documented table matches the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from facesearch.section import describe
from facesearch.video.settings import VideoSettings

DOC = Path(__file__).resolve().parents[3] / "docs" / "video.md"


def test_frozen_and_strict() -> None:
    settings = VideoSettings()
    with pytest.raises(ValidationError):
        settings.fps = 5.0  # type: ignore[misc]
    with pytest.raises(ValidationError):
        VideoSettings(fsp=2.0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        VideoSettings(fps=0)
    with pytest.raises(ValidationError, match="track_reid_similarity"):
        VideoSettings(track_link_similarity=0.95, track_reid_similarity=0.9)


def test_codecs_are_normalised_and_interval_follows_fps() -> None:
    assert VideoSettings(codecs=(" H264", "VP9 ", "")).codecs == ("h264", "vp9")
    assert VideoSettings(fps=4.0).interval_s == 0.25


def test_docs_table_lists_every_setting_with_its_default() -> None:
    text = DOC.read_text()
    for name, field in VideoSettings.model_fields.items():
        default = field.default
        shown = list(default) if isinstance(default, tuple) else default
        row = f"| `FACESEARCH_VIDEO_{name.upper()}` | `{shown}` | {describe(VideoSettings, name)} |"
        assert row in text, f"docs/video.md: update the row of {name}"
