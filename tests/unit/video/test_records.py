"""Chunk results survive the trip between instances (JSON) exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facesearch.errors import InvalidVideo
from facesearch.video.chunks import plan_chunks, stitch
from facesearch.video.records import (
    chunk_result_from_dict,
    chunk_result_to_dict,
    track_from_dict,
    track_to_dict,
)
from facesearch.video.settings import VideoSettings
from tests.unit.video.test_chunks import chunk_results, info, summary


def test_chunk_results_round_trip_through_json() -> None:
    settings = VideoSettings(chunk_s=2.0)
    plan = plan_chunks("vid", info(6.0), settings)
    results = chunk_results(plan, {0: set(range(12)), 3: {1, 2, 8, 9, 10}}, 12, settings)
    rng = np.random.default_rng(0)
    for result in results:  # real crops are pictures, not zeros
        for track in result.tracks:
            track.best.crop.flags.writeable = True
            track.best.crop[:] = rng.integers(0, 256, track.best.crop.shape, dtype=np.uint8)
    wire = [json.loads(json.dumps(chunk_result_to_dict(r))) for r in results]
    back = [chunk_result_from_dict(w) for w in wire]
    assert [chunk_result_to_dict(r) for r in back] == [chunk_result_to_dict(r) for r in results]
    for before, after in zip(results, back, strict=True):
        for a, b in zip(before.tracks, after.tracks, strict=True):
            assert np.array_equal(a.embedding_sum, b.embedding_sum)
            assert np.array_equal(a.best.crop, b.best.crop)
            assert a.observations == b.observations and a.spans == b.spans
    assert summary(stitch(plan, back, settings)) == summary(stitch(plan, results, settings))


def test_unknown_schema_and_bare_tracks_are_refused() -> None:
    settings = VideoSettings()
    plan = plan_chunks("vid", info(2.0), settings)
    (result,) = chunk_results(plan, {0: {0, 1, 2}}, 4, settings)
    record = chunk_result_to_dict(result)
    with pytest.raises(InvalidVideo, match="schema"):
        chunk_result_from_dict({**record, "schema": 99})
    bare = track_to_dict(result.tracks[0], observations=False)
    assert "observations" not in bare and bare["spans"] == [[0, 1000]]
    with pytest.raises(InvalidVideo):
        track_from_dict(bare)
