"""Span merging: invariants under hypothesis (what chunk stitching relies on)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facesearch.video.spans import max_gap_ms, merge_spans, spans_from_times
from facesearch.video.types import Span

spans = st.lists(
    st.tuples(st.integers(0, 100_000), st.integers(0, 5_000)).map(
        lambda p: Span(p[0], p[0] + p[1])
    ),
    max_size=40,
)
gaps = st.integers(0, 3_000)


@given(spans, gaps)
def test_result_is_sorted_disjoint_and_separated(items: list[Span], gap: int) -> None:
    merged = merge_spans(items, gap)
    for a, b in itertools.pairwise(merged):
        assert a.end_ms < b.start_ms
        assert b.start_ms - a.end_ms > gap


@given(spans, gaps)
def test_every_input_is_covered_and_nothing_invented(items: list[Span], gap: int) -> None:
    merged = merge_spans(items, gap)
    for span in items:
        assert any(m.start_ms <= span.start_ms and span.end_ms <= m.end_ms for m in merged)
    for m in merged:  # every merged boundary is an input boundary
        assert any(s.start_ms == m.start_ms for s in items)
        assert any(s.end_ms == m.end_ms for s in items)


@given(spans, gaps)
def test_idempotent_and_order_independent(items: list[Span], gap: int) -> None:
    merged = merge_spans(items, gap)
    assert merge_spans(merged, gap) == merged
    assert merge_spans(reversed(items), gap) == merged


@given(spans, spans, gaps)
def test_merging_parts_first_changes_nothing(a: list[Span], b: list[Span], gap: int) -> None:
    """What the stitcher does: merge per chunk, then merge the chunks' results."""
    assert merge_spans([*merge_spans(a, gap), *merge_spans(b, gap)], gap) == merge_spans(
        [*a, *b], gap
    )


@given(st.lists(st.integers(0, 60_000), max_size=60), gaps)
def test_spans_from_times_matches_brute_force(times: list[int], gap: int) -> None:
    ordered = sorted(set(times))
    expected: list[list[int]] = []
    for t in ordered:
        if expected and t - expected[-1][1] <= gap:
            expected[-1][1] = t
        else:
            expected.append([t, t])
    assert [[s.start_ms, s.end_ms] for s in spans_from_times(times, gap)] == expected


def test_gap_tolerance_counts_missed_samples() -> None:
    assert max_gap_ms(2.0, 0) == 501  # consecutive samples (500 ms apart) join
    assert max_gap_ms(2.0, 2) == 1501  # two missed samples still join
    times = [0, 500, 1000, 2500, 4500]
    assert spans_from_times(times, max_gap_ms(2.0, 2)) == (Span(0, 2500), Span(4500, 4500))


def test_span_rejects_negative_duration() -> None:
    with pytest.raises(ValueError, match="ends before"):
        Span(10, 5)
