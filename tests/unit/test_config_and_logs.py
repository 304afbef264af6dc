"""Settings validation and the JSON log format Cloud Logging ingests."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from facesearch.config import Settings, load_settings
from facesearch.errors import ConfigError
from facesearch.logs import JsonFormatter, log_fields

README = Path(__file__).resolve().parents[2] / "README.md"


def test_env_vars_are_read_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_EMBED_BATCH_SIZE", "8")
    assert load_settings().embed_batch_size == 8
    monkeypatch.setenv("FACESEARCH_EMBED_BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match="FACESEARCH_EMBED_BATCH_SIZE"):
        load_settings()


def test_explicit_argument_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_MIN_FACE_PX", "30")
    assert load_settings(min_face_px=50).min_face_px == 50


def test_json_log_line_has_severity_message_and_fields() -> None:
    record = logging.LogRecord(
        "facesearch.test", logging.WARNING, __file__, 1, "hi %s", ("x",), None
    )
    record.fields = log_fields(image_id="img-1")["fields"]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "hi x"
    assert entry["image_id"] == "img-1"


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"`(FACESEARCH_[A-Z0-9_]+)`", README.read_text()))
    expected = {f"FACESEARCH_{name.upper()}" for name in Settings.model_fields}
    missing = sorted(expected - documented)
    assert not missing, f"README configuration table lacks: {missing}"


def test_readme_configuration_table_is_the_generated_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from facesearch.cli import main

    assert main(["config", "--markdown"]) == 0
    table = capsys.readouterr().out.strip()
    assert table in README.read_text(), (
        "README's configuration table is stale: paste `facesearch config --markdown`"
    )
