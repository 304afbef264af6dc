"""Task sharding: every name / face id belongs to exactly one task of a job."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facesearch.errors import ConfigError
from facesearch.jobs.tasks import TaskSlot


def _in_range(face_id: str, bounds: tuple[str | None, str | None]) -> bool:
    after, until = bounds
    return (after is None or face_id > after) and (until is None or face_id <= until)


face_ids = st.one_of(
    st.from_regex(r"[0-9a-f]{32}-[0-9]{1,2}", fullmatch=True),
    st.text(min_size=1, max_size=40),
)


@given(st.lists(face_ids, min_size=1, max_size=50), st.integers(1, 9))
def test_face_ranges_partition_any_ids(ids: list[str], count: int) -> None:
    tasks = [TaskSlot(i, count) for i in range(count)]
    for face_id in ids:
        owners = [t.index for t in tasks if _in_range(face_id, t.face_range())]
        assert len(owners) == 1, (face_id, owners)


@given(st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=50), st.integers(1, 9))
def test_listing_shares_partition_names(names: list[str], count: int) -> None:
    for name in names:
        assert sum(TaskSlot(i, count).owns(name) for i in range(count)) == 1


def test_hex_face_ids_spread_evenly_over_ranges() -> None:
    import hashlib

    ids = [hashlib.sha256(str(n).encode()).hexdigest()[:32] + "-0" for n in range(4000)]
    shares = [sum(_in_range(f, TaskSlot(i, 4).face_range()) for f in ids) for i in range(4)]
    assert sum(shares) == 4000 and min(shares) > 850  # ~1000 each


def test_from_env_reads_cloud_run_and_explicit_values_win() -> None:
    env = {"CLOUD_RUN_TASK_INDEX": "2", "CLOUD_RUN_TASK_COUNT": "5"}
    assert TaskSlot.from_env(env) == TaskSlot(2, 5)
    assert TaskSlot.from_env(env, index=0) == TaskSlot(0, 5)
    assert TaskSlot.from_env({}) == TaskSlot(0, 1)
    with pytest.raises(ConfigError):
        TaskSlot.from_env({"CLOUD_RUN_TASK_INDEX": "5", "CLOUD_RUN_TASK_COUNT": "5"})
    with pytest.raises(ConfigError):
        TaskSlot.from_env({"CLOUD_RUN_TASK_INDEX": "x"})
