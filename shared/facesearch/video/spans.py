"""Appearance spans: sampled times in, disjoint ``[start, end]`` intervals out.

A face is seen at sampled times; a span is a run of those times with no hole
longer than ``max_gap_ms``. The gap tolerance lets one missed detection (motion
blur, a turned head) not split a span, at the price that a real absence shorter
than the tolerance is bridged. Merging is associative and order-independent, so
the finisher can merge spans from chunks in any order and get what one pass over
the whole video would give (property-tested).
"""

from __future__ import annotations

from collections.abc import Iterable

from facesearch.video.types import Span


def max_gap_ms(fps: float, max_missed: int) -> int:
    """Largest hole between two sightings that still counts as one span.

    ``max_missed`` grid samples without the face, plus the one interval every
    consecutive pair of samples has anyway (+1 ms for timestamp rounding).
    """
    return int((max_missed + 1) * 1000.0 / fps) + 1


def spans_from_times(times_ms: Iterable[int], max_gap_ms: int) -> tuple[Span, ...]:
    """Runs of sighting times whose consecutive holes are at most ``max_gap_ms``."""
    return merge_spans((Span(t, t) for t in times_ms), max_gap_ms)


def merge_spans(spans: Iterable[Span], max_gap_ms: int) -> tuple[Span, ...]:
    """Union of spans; spans that overlap or lie at most ``max_gap_ms`` apart become one."""
    ordered = sorted(spans)
    if not ordered:
        return ()
    merged: list[Span] = []
    start, end = ordered[0].start_ms, ordered[0].end_ms
    for span in ordered[1:]:
        if span.start_ms - end <= max_gap_ms:
            end = max(end, span.end_ms)
        else:
            merged.append(Span(start, end))
            start, end = span.start_ms, span.end_ms
    merged.append(Span(start, end))
    return tuple(merged)


def total_ms(spans: Iterable[Span]) -> int:
    return sum(span.duration_ms for span in spans)
