"""The blob-store port's own helpers: object-name checks and the bounded retry policy.

(The behaviour every adapter must show is in ``tests/contracts/test_blob_store.py``.)
"""

from __future__ import annotations

from typing import Any

import pytest

from facesearch.errors import TransientError
from facesearch.storage.blob import RetryPolicy, check_name


def test_check_name() -> None:
    assert check_name("segments/abc.ids") == "segments/abc.ids"
    with pytest.raises(ValueError):
        check_name("segments/../../etc/passwd")


def test_retry_policy_retries_transient_then_gives_up() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    policy = RetryPolicy(attempts=4, base_delay_s=0.01)
    transient = lambda e: isinstance(e, ConnectionError)  # noqa: E731
    assert policy.run(flaky, transient=transient, what="t", sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and len(sleeps) == 2

    def down() -> str:
        raise ConnectionError("down")

    with pytest.raises(TransientError, match="after 4 attempts"):
        policy.run(down, transient=transient, what="t", sleep=sleeps.append)

    def bug() -> str:
        raise KeyError("not transient")

    with pytest.raises(KeyError):
        policy.run(bug, transient=transient, what="t", sleep=sleeps.append)


class _VersionedBucketFake:
    """Just enough of ``storage.Client`` for a versioned bucket: noncurrent versions stay
    listed with ``versions=True`` until deleted by generation (fake-gcs-server keeps no
    history, so this path cannot run on the emulator)."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        self.objects = {
            ("index/collections/e/seg", 1): now,  # noncurrent
            ("index/collections/e/seg", 2): now,  # current
            ("index/collections/e/manifest.json", 3): now,
            ("index/other", 4): now,
        }
        self.deleted: list[tuple[str, int | None]] = []
        self.listed_with: list[bool] = []

    def list_blobs(self, bucket: str, *, prefix: str, versions: bool, **_: object) -> list[Any]:
        from types import SimpleNamespace

        self.listed_with.append(versions)
        latest = {n: max(g for m, g in self.objects if m == n) for n, _ in self.objects}
        return [
            SimpleNamespace(name=n, generation=g, size=1, updated=t)
            for (n, g), t in self.objects.items()
            if n.startswith(prefix) and (versions or latest[n] == g)
        ]

    def bucket(self, name: str) -> Any:
        fake = self

        class Bucket:
            def blob(self, key: str, generation: int | None = None) -> Any:
                class Blob:
                    def delete(self, **_: object) -> None:
                        fake.deleted.append((key, generation))
                        fake.objects.pop((key, generation), None)  # type: ignore[arg-type]

                return Blob()

        return Bucket()


def test_gcs_adapter_lists_and_deletes_every_version() -> None:
    from facesearch.storage.gcp.blob import GcsBlobStore

    fake = _VersionedBucketFake()
    store = GcsBlobStore("b", "index/collections/e", client=lambda: fake)  # type: ignore[arg-type,return-value]
    assert [(i.name, i.generation) for i in store.list("")] == [("manifest.json", 3), ("seg", 2)]
    versions = store.list_versions("")
    assert [(i.name, i.generation) for i in versions] == [
        ("manifest.json", 3),
        ("seg", 1),
        ("seg", 2),
    ]
    for info in versions:
        store.delete_version(info.name, info.generation)
    assert fake.deleted == [
        ("index/collections/e/manifest.json", 3),
        ("index/collections/e/seg", 1),
        ("index/collections/e/seg", 2),
    ]
    assert store.list_versions("") == [] and list(fake.objects) == [("index/other", 4)]
    assert fake.listed_with == [False, True, True]
