"""The blob-store port's own helpers: object-name checks and the bounded retry policy.

(The behaviour every adapter must show is in ``tests/contracts/test_blob_store.py``.)
"""

from __future__ import annotations

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
