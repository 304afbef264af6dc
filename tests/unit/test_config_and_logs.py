"""Settings validation and the JSON log format Cloud Logging ingests."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from facesearch.config import env_var, flat_names, load_settings
from facesearch.errors import ConfigError
from facesearch.logs import JsonFormatter, log_fields

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_env_vars_are_read_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_EMBED_BATCH_SIZE", "8")
    assert load_settings().vision.embed_batch_size == 8
    monkeypatch.setenv("FACESEARCH_EMBED_BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match="FACESEARCH_EMBED_BATCH_SIZE"):
        load_settings()


def test_sections_keep_the_flat_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_INDEX_DTYPE", "f32")
    monkeypatch.setenv("facesearch_quality_min_contrast", "3.5")  # case-insensitive, as before
    monkeypatch.setenv("FACESEARCH_FETCH_ALLOWED_HOSTS", '["img.example.com"]')
    settings = load_settings()
    assert settings.index.dtype == "f32"
    assert settings.quality.min_contrast == 3.5
    assert settings.fetch.allowed_hosts == ["img.example.com"]
    assert env_var("index", "dtype") == "FACESEARCH_INDEX_DTYPE"
    assert env_var("vision", "min_face_px") == "FACESEARCH_MIN_FACE_PX"
    monkeypatch.setenv("FACESEARCH_FETCH_ALLOWED_HOSTS", "[not json")
    with pytest.raises(ConfigError, match="FACESEARCH_FETCH_ALLOWED_HOSTS"):
        load_settings()
    monkeypatch.delenv("FACESEARCH_FETCH_ALLOWED_HOSTS")
    monkeypatch.setenv("FACESEARCH_QUALITY_MAX_YAW_DEG", "400")
    with pytest.raises(ConfigError, match="FACESEARCH_QUALITY_MAX_YAW_DEG"):
        load_settings()


def test_explicit_argument_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_MIN_FACE_PX", "30")
    monkeypatch.setenv("FACESEARCH_DETECT_MAX_SIDE_PX", "900")
    settings = load_settings(min_face_px=50)
    assert settings.vision.min_face_px == 50
    assert settings.vision.detect_max_side_px == 900  # the rest of the section from the env


def test_overrides_are_validated_and_unknown_names_refused() -> None:
    settings = load_settings(index_connectivity=8)
    changed = settings.with_overrides(index_dtype="i8", backend="gcp")
    assert (changed.index.dtype, changed.index.connectivity, changed.backend) == ("i8", 8, "gcp")
    assert settings.index.dtype == "f16"  # the original is untouched (frozen)
    with pytest.raises(ConfigError, match="FACESEARCH_INDEX_DTYPE"):
        settings.with_overrides(index_dtype="f64")
    with pytest.raises(ConfigError, match="FACESEARCH_MIN_FACE_PIXELS"):
        load_settings(min_face_pixels=3)  # a typo is an error, not a silent default


def test_every_flat_name_is_unique_and_maps_back() -> None:
    names = flat_names()
    for flat, (section, field) in names.items():
        assert env_var(section, field) == "FACESEARCH_" + flat.upper()


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
    expected = {f"FACESEARCH_{name.upper()}" for name in flat_names()}
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


def _library_sources() -> dict[Path, str]:
    roots = [ROOT / "shared" / "facesearch", ROOT / "functions"]
    return {p: p.read_text() for root in roots for p in root.rglob("*.py")}


def test_every_setting_is_read_somewhere() -> None:
    """A knob nobody reads is a lie in the README: each field is accessed outside its
    declaration (``.field`` in some other module of the library or the functions)."""
    sources = _library_sources()
    config = ROOT / "shared" / "facesearch" / "config.py"
    unread = []
    for flat, (section, field) in flat_names().items():
        pattern = re.compile(rf"\.{field}\b")
        owner = config if section is None else None
        readers = [
            path
            for path, text in sources.items()
            if path != owner and pattern.search(_without_declarations(text, field))
        ]
        if not readers:
            unread.append(f"FACESEARCH_{flat.upper()}")
    assert not unread, f"settings no code reads: {unread}"


def _without_declarations(text: str, field: str) -> str:
    """Drop ``field: type = Field(...)`` lines so a declaration does not count as a read."""
    return re.sub(rf"^\s*{field}\s*:.*$", "", text, flags=re.M)


def test_every_variable_terraform_sets_is_a_setting() -> None:
    known = {f"FACESEARCH_{flat.upper()}" for flat in flat_names()}
    terraform = ROOT / "infra" / "terraform"
    set_by_terraform = {
        name
        for path in terraform.rglob("*.tf")
        for name in re.findall(r"\b(FACESEARCH_[A-Z0-9_]+)\s*=", path.read_text())
    }
    assert set_by_terraform, "no FACESEARCH_ variables found in the Terraform (moved?)"
    unknown = sorted(set_by_terraform - known)
    assert not unknown, f"Terraform sets variables Settings does not have: {unknown}"
