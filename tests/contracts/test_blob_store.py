"""Blob-store port: one contract, run against the local directory and GCS (fake-gcs-server).

The contract is what the index relies on: atomic whole-object writes, a
generation that changes on every write, compare-and-swap that holds across
processes, idempotent deletes, typed errors.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from facesearch.backends import open_blob_store
from facesearch.errors import NotFound, PreconditionFailed
from facesearch.storage.blob import BlobStore
from facesearch.storage.gcp.blob import GcsBlobStore
from facesearch.storage.local.blob import LocalBlobStore

CAS_WORKER = textwrap.dedent(
    """
    import sys
    from facesearch.errors import NotFound, PreconditionFailed
    from facesearch.backends import open_blob_store
    store = open_blob_store(sys.argv[1])
    done = 0
    while done < int(sys.argv[2]):
        try:
            data, gen = store.read("counter")
        except NotFound:
            data, gen = b"0", 0
        try:
            store.write("counter", str(int(data) + 1).encode(), if_generation_match=gen)
            done += 1
        except PreconditionFailed:
            pass
    """
)


def run_cas_race(url: str, *, processes: int, increments: int) -> int:
    """Several processes increment one object by compare-and-swap; returns the final value."""
    procs = [
        subprocess.Popen([sys.executable, "-c", CAS_WORKER, url, str(increments)])
        for _ in range(processes)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    store = open_blob_store(url)
    return int(store.read("counter")[0])


class BlobStoreContract:
    """Behaviour every adapter must have. Subclasses provide ``store`` and ``store_url``."""

    def test_write_read_roundtrip_and_generation(self, store: BlobStore) -> None:
        gen = store.write("a/b.bin", b"hello")
        assert gen > 0
        assert store.read("a/b.bin") == (b"hello", gen)
        assert store.stat("a/b.bin") == gen
        gen2 = store.write("a/b.bin", b"world")
        assert gen2 != gen
        assert store.read("a/b.bin") == (b"world", gen2)

    def test_missing_object(self, store: BlobStore, tmp_path: Path) -> None:
        assert store.stat("nope") is None
        with pytest.raises(NotFound):
            store.read("nope")
        with pytest.raises(NotFound):
            store.download_to_file("nope", tmp_path / "x")
        store.delete("nope")  # idempotent

    def test_create_only_precondition(self, store: BlobStore) -> None:
        gen = store.write("m", b"1", if_generation_match=0)
        with pytest.raises(PreconditionFailed):
            store.write("m", b"2", if_generation_match=0)
        assert store.read("m") == (b"1", gen)

    def test_compare_and_swap(self, store: BlobStore) -> None:
        gen = store.write("m", b"1")
        gen2 = store.write("m", b"2", if_generation_match=gen)
        with pytest.raises(PreconditionFailed):
            store.write("m", b"3", if_generation_match=gen)  # stale generation
        assert store.read("m") == (b"2", gen2)
        with pytest.raises(PreconditionFailed):
            store.write("absent", b"x", if_generation_match=gen2)

    def test_generation_differs_after_delete_and_recreate(self, store: BlobStore) -> None:
        gen = store.write("m", b"1")
        store.delete("m")
        assert store.stat("m") is None
        with pytest.raises(PreconditionFailed):
            store.write("m", b"2", if_generation_match=gen)
        assert store.write("m", b"2", if_generation_match=0) != gen

    def test_files_and_listing(self, store: BlobStore, tmp_path: Path) -> None:
        src = tmp_path / "big.bin"
        payload = bytes(range(256)) * 40_000  # 10 MB: exercises resumable upload on GCS
        src.write_bytes(payload)
        gen = store.write_file("seg/x.usearch", src, if_generation_match=0)
        store.write("seg/y.ids", b"ids")
        store.write("other", b"o")
        dest = tmp_path / "copy.bin"
        assert store.download_to_file("seg/x.usearch", dest) == gen
        assert dest.read_bytes() == payload
        listed = store.list("seg/")
        assert [i.name for i in listed] == ["seg/x.usearch", "seg/y.ids"]
        assert listed[0].size == len(payload) and listed[0].generation == gen
        assert listed[0].updated > 1.6e9  # a real epoch timestamp
        assert [i.name for i in store.list()] == ["other", "seg/x.usearch", "seg/y.ids"]
        store.delete("seg/x.usearch")
        assert [i.name for i in store.list("seg/")] == ["seg/y.ids"]

    def test_open_read_is_seekable_and_pinned(self, store: BlobStore) -> None:
        data = bytes(range(256)) * 4096  # 1 MiB
        gen = store.write("video/clip.mp4", data)
        with store.open_read("video/clip.mp4") as reader:
            assert reader.read(4) == data[:4]
            assert reader.seek(0, 2) == len(data)
            reader.seek(700_001)
            assert reader.read(10) == data[700_001:700_011]
            assert reader.tell() == 700_011
        with store.open_read("video/clip.mp4", generation=gen) as reader:
            assert reader.read() == data
        store.write("video/clip.mp4", b"newer")
        with pytest.raises(NotFound):
            store.open_read("video/clip.mp4", generation=gen).read()  # that version is gone
        with pytest.raises(NotFound):
            store.open_read("video/missing.mp4")

    def test_rejects_escaping_names(self, store: BlobStore) -> None:
        for bad in ["", "/abs", "../up", "a/../b", ".hidden", "a//b", "a/.x"]:
            with pytest.raises(ValueError):
                store.write(bad, b"x")

    def test_versions_listed_and_deleted_one_by_one(self, store: BlobStore) -> None:
        """What an erase uses: every version under a prefix, each deleted for good."""
        g_a = store.write("c/a", b"1")
        store.write("c/b", b"2")
        store.write("other", b"3")
        listed = store.list_versions("c/")
        assert [i.name for i in listed][-2:] == ["c/a", "c/b"]
        assert ("c/a", g_a) in {(i.name, i.generation) for i in listed}
        for info in listed:
            store.delete_version(info.name, info.generation)
        store.delete_version("c/a", g_a)  # already gone: not an error
        assert store.list_versions("c/") == [] and store.list("c/") == []
        assert [i.name for i in store.list()] == ["other"]

    def test_cas_across_processes(self, store_url: str) -> None:
        assert run_cas_race(store_url, processes=3, increments=15) == 45


class TestLocalBlobStore(BlobStoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return (tmp_path / "bucket").as_uri()

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[BlobStore]:
        yield open_blob_store(store_url)

    def test_plain_files_on_disk(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path / "b")
        store.write("dir/obj", b"data")
        assert (tmp_path / "b" / "dir" / "obj").read_bytes() == b"data"
        store.delete("dir/obj")
        assert not (tmp_path / "b" / "dir").exists()  # empty dirs pruned

    def test_failed_precondition_leaves_no_temp_files(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path / "b")
        store.write("m", b"1", if_generation_match=0)
        with pytest.raises(PreconditionFailed):
            store.write("m", b"2", if_generation_match=0)
        assert list((tmp_path / "b" / ".blobstore" / "tmp").iterdir()) == []
        assert [i.name for i in store.list()] == ["m"]  # bookkeeping is not listed

    def test_generations_strictly_increase(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path / "b")
        gens = [store.write("m", b"x") for _ in range(50)]
        assert gens == sorted(set(gens))


@pytest.mark.integration
class TestGcsBlobStore(BlobStoreContract):
    @pytest.fixture
    def store_url(self, gcs_bucket: str) -> str:
        return gcs_bucket

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[BlobStore]:
        store = open_blob_store(store_url)
        assert isinstance(store, GcsBlobStore)
        yield store
