"""The composition root: which adapter each backend builds, and that it builds it once."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesearch.backends import backend_for, open_blob_store
from facesearch.config import load_settings
from facesearch.errors import ConfigError
from facesearch.storage.local.blob import LocalBlobStore
from facesearch.storage.local.bus import InProcessBus


def test_url_factory(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(tmp_path / "p"), LocalBlobStore)
    local = open_blob_store(f"file://{tmp_path}/q")
    assert isinstance(local, LocalBlobStore) and local.url == (tmp_path / "q").as_uri()
    gcs = open_blob_store("gs://my-bucket/some/prefix/")
    assert gcs.url == "gs://my-bucket/some/prefix"
    with pytest.raises(ConfigError):
        open_blob_store("s3://bucket/x")
    with pytest.raises(ConfigError):
        open_blob_store("gs:///nobucket")


def test_backends_pick_their_adapters() -> None:
    from facesearch.storage.gcp.bus import PubSubBus

    assert isinstance(backend_for(load_settings()).bus(), InProcessBus)
    cloud = backend_for(load_settings(backend="gcp", project="proj")).bus()
    assert isinstance(cloud, PubSubBus)
    assert cloud.topic_path("face-events") == "projects/proj/topics/face-events"
    with pytest.raises(ConfigError):
        backend_for(load_settings(backend="gcp"))  # no project: refused at start


def test_each_adapter_is_built_once_and_overrides_win(tmp_path: Path) -> None:
    backend = backend_for(load_settings(data_dir=tmp_path))
    assert backend.metadata() is backend.metadata()
    assert backend.index_writer() is backend.index_writer()
    assert backend.blob_store(tmp_path / "x") is backend.blob_store(tmp_path / "x")
    fake = InProcessBus(max_attempts=2)
    other = backend_for(load_settings(data_dir=tmp_path)).override(bus=fake)
    assert other.bus() is fake
    with pytest.raises(AttributeError):
        other.override(no_such_adapter=object())
    with pytest.raises(RuntimeError):
        other.override(bus=InProcessBus())  # already built: too late to swap


@pytest.mark.parametrize("kind", ["local", "gcp"])
def test_every_adapter_without_arguments_can_be_overridden(kind: str, tmp_path: Path) -> None:
    """``override(name=...)`` must reach the cache key the builder uses (a mismatch once
    left a test's ledger unused while the backend built its own)."""
    import inspect

    settings = load_settings(data_dir=tmp_path, backend=kind, project="proj")
    names = [
        name
        for name, member in inspect.getmembers(type(backend_for(settings)), inspect.isfunction)
        if not name.startswith("_")
        and name not in ("once", "override")
        and "self.once(" in inspect.getsource(member)  # a cached builder
        and all(
            p.default is not inspect.Parameter.empty
            for p in list(inspect.signature(member).parameters.values())[1:]
        )
    ]
    assert {"bus", "catalog", "cloudinary_ledger", "nonces", "keyring", "pipeline"} <= set(names)
    for name in names:
        sentinel = object()
        backend = backend_for(settings).override(**{name: sentinel})
        assert getattr(backend, name)() is sentinel, name


def test_embedded_files_are_private(tmp_path: Path) -> None:
    """Biometric data (embeddings in the metadata store) and security state stay 0600/0700."""
    backend = backend_for(load_settings(data_dir=tmp_path / "state"))
    backend.nonces()
    backend.cloudinary_ledger()
    backend.metadata()
    backend.crops().write("img/0.jpg", b"a face")
    backend.index_store().write("manifest.json", b"{}")
    state = tmp_path / "state"
    private = [
        state,
        state / "nonces.sqlite3",
        state / "cloudinary-events.sqlite3",
        state / "metadata.sqlite3",
        state / "crops",
        state / "crops" / "img",
        state / "crops" / "img" / "0.jpg",
        state / "index" / "manifest.json",
    ]
    assert {
        p.name: oct(p.stat().st_mode & 0o777) for p in private if p.stat().st_mode & 0o077
    } == {}
