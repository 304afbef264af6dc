"""``facesearch index stats | verify | compact`` through argparse, on a local index."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch.config import get_settings
from facesearch.index.cli import add_index_commands
from facesearch.index.params import IndexParams
from facesearch.index.writer import IndexWriter, read_manifest
from facesearch.storage.local.blob import LocalBlobStore


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FACESEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACESEARCH_INDEX_AUTO_COMPACT", "false")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def index_url(tmp_path: Path) -> str:
    store = LocalBlobStore(tmp_path / "bucket")
    params = IndexParams(dtype="f16", build_threads=1, auto_compact=False)
    writer = IndexWriter(store, cache_dir=tmp_path / "wc", params=params)
    rng = np.random.default_rng(0)
    for batch in range(3):
        face_ids = [f"b{batch}-{i}" for i in range(50)]
        writer.add(face_ids, rng.standard_normal((50, 32)).astype(np.float32), "dlib@1")
    writer.delete(["b0-1", "b0-2"])
    return store.url


def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="facesearch")
    add_index_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    return args.handler(args, out), out.getvalue()


def test_stats_text_and_json(index_url: str) -> None:
    code, text = run("index", "stats", "--url", index_url)
    assert code == 0
    assert "dlib@1" in text and "dtype f16" in text
    assert "148 live in 3 segments (150 vectors, 2 deleted = 1.3%)" in text
    code, raw = run("index", "stats", "--json", "--url", index_url)
    data = json.loads(raw)
    assert (data["live"], data["vectors"], data["deleted"], len(data["segments"])) == (
        148,
        150,
        2,
        3,
    )


def test_stats_of_empty_index(tmp_path: Path) -> None:
    code, text = run("index", "stats", "--url", str(tmp_path / "nothing"))
    assert code == 0 and "empty" in text


def test_verify_healthy_then_corrupt(index_url: str, tmp_path: Path) -> None:
    code, text = run("index", "verify", "--deep", "--url", index_url)
    assert code == 0, text
    assert "self-search top-1 1.000" in text and "index is healthy" in text
    store = LocalBlobStore(tmp_path / "bucket")
    manifest, _ = read_manifest(store)
    assert manifest is not None
    name = manifest.segments[1].index_name
    store.write(name, store.read(name)[0][:-1])
    code, text = run("index", "verify", "--url", index_url)
    assert code == 1
    assert f"FAIL  segment {manifest.segments[1].id}" in text and "index has problems" in text


def test_compact_full_then_stats(index_url: str) -> None:
    code, text = run("index", "compact", "--full", "--grace-s", "0", "--url", index_url)
    assert code == 0, text
    assert "segments 3 -> 1; deleted vectors dropped: 2" in text
    assert "gc: 6 objects deleted" in text
    _, raw = run("index", "stats", "--json", "--url", index_url)
    data = json.loads(raw)
    assert (data["live"], data["deleted"], len(data["segments"]), data["retired_objects"]) == (
        148,
        0,
        1,
        0,
    )


def test_readable_error_for_bad_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("index", "stats", "--url", "s3://elsewhere/x")
    assert code == 2
    assert "unsupported blob store URL" in capsys.readouterr().err
