"""Bad-video corpus: every hostile or broken input gives its typed error (or is fine)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from facesearch.errors import FaceSearchError, InvalidVideo
from facesearch.video.chunks import plan_chunks
from facesearch.video.frames import iter_samples
from facesearch.video.probe import probe
from facesearch.video.settings import VideoSettings
from tests.data.video_corpus import VideoCase, build_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, VideoCase]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("corpus"))}


CASES = [
    "empty",
    "text",
    "random_bytes",
    "jpeg_image",
    "heic_image",
    "ftyp_then_garbage",
    "ebml_then_garbage",
    "truncated_index_at_end",
    "truncated_faststart",
    "header_only",
    "audio_only",
    "unsupported_codec",
    "unknown_fourcc",
    "tiny_frames",
    "absurd_aspect",
    "too_many_pixels",
    "too_many_bytes",
    "ten_hours",
    "ten_hours_allowed",
    "mp4_h264",
    "mpegts_h264",
    "mov_h264",
    "avi_mpeg4",
    "webm_vp9",
]


def test_every_case_is_listed(corpus: dict[str, VideoCase]) -> None:
    assert sorted(corpus) == sorted(CASES)


def _outcome(case: VideoCase) -> str:
    settings = VideoSettings(**case.settings)
    try:
        probe(io.BytesIO(case.data), settings)
        for _ in iter_samples(io.BytesIO(case.data), settings):
            pass
    except FaceSearchError as error:
        assert isinstance(error, InvalidVideo), error
        assert error.message
        assert error.retryable is False  # a bad video must never cause a retry storm
        return error.code
    return "ok"


@pytest.mark.parametrize("name", CASES)
def test_outcome(corpus: dict[str, VideoCase], name: str) -> None:
    case = corpus[name]
    assert _outcome(case) == case.outcome, case.why


def test_path_and_file_object_agree(corpus: dict[str, VideoCase], tmp_path: Path) -> None:
    path = tmp_path / "clip.bin"  # the name says nothing: sniffing is by content
    path.write_bytes(corpus["mp4_h264"].data)
    settings = VideoSettings()
    assert probe(path, settings) == probe(io.BytesIO(corpus["mp4_h264"].data), settings)


def test_caps_are_checked_before_decoding(corpus: dict[str, VideoCase]) -> None:
    """The 10-hour video is refused from its header: no frame is decoded."""
    start = time.perf_counter()
    with pytest.raises(InvalidVideo, match="the limit is"):
        probe(io.BytesIO(corpus["ten_hours"].data), VideoSettings())
    assert time.perf_counter() - start < 0.5


def test_ten_hours_is_planned_into_chunks_when_allowed(corpus: dict[str, VideoCase]) -> None:
    settings = VideoSettings(max_duration_s=11 * 3600.0)
    info = probe(io.BytesIO(corpus["ten_hours_allowed"].data), settings)
    assert info.duration_s is not None and info.duration_s >= 36_000
    plan = plan_chunks("ten-hours", info, settings)
    assert plan.total == 600  # 60 s chunks
    assert plan.chunks[-1].end_ms is None and plan.chunks[-1].start_ms == 599 * 60_000


def test_decoder_enforces_the_duration_cap_when_a_header_understates_it(
    corpus: dict[str, VideoCase],
) -> None:
    settings = VideoSettings(max_duration_s=30.0)
    with pytest.raises(InvalidVideo) as info:
        for _ in iter_samples(io.BytesIO(corpus["ten_hours_allowed"].data), settings):
            pass
    assert info.value.code == "video-too-long"
