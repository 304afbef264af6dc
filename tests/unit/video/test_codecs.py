"""Which codecs this PyAV wheel decodes: encode a short clip in each, probe and sample it.

The table in docs/video.md is this test's parametrisation. Every codec on the
accepted list must have a decoder here; encoders exist for most of them in the
wheel, so the round trip is real (AV1 decodes through libdav1d).
"""

from __future__ import annotations

import io

import av
import pytest

from facesearch.video.frames import iter_samples
from facesearch.video.probe import probe
from facesearch.video.settings import DEFAULT_CODECS, VideoSettings
from tests.data.video_corpus import encode_bytes, steady

ROUND_TRIPS = [
    # (encoder, container, canonical codec name the probe must report)
    ("libx264", "mp4", "h264"),
    ("libx265", "mp4", "hevc"),
    ("libvpx", "webm", "vp8"),
    ("libvpx-vp9", "webm", "vp9"),
    ("libsvtav1", "mp4", "av1"),
    ("mpeg4", "avi", "mpeg4"),
    ("mpeg2video", "mpegts", "mpeg2video"),
    ("mpeg1video", "mpegts", "mpeg1video"),
    ("mjpeg", "avi", "mjpeg"),
    ("prores_ks", "mov", "prores"),
    ("h263", "3gp", "h263"),
]
QUIET = {"libx265": {"x265-params": "log-level=none"}}


@pytest.mark.parametrize(("encoder", "container", "codec"), ROUND_TRIPS)
def test_round_trip(encoder: str, container: str, codec: str) -> None:
    width, height = (176, 144) if encoder == "h263" else (128, 96)
    pix_fmt = {"mjpeg": "yuvj420p", "prores_ks": "yuv422p10le"}.get(encoder, "yuv420p")
    data = encode_bytes(
        steady(width, height, 1.2, fps=25.0),
        codec=encoder,
        container=container,
        options=QUIET.get(encoder, {}),
        pix_fmt=pix_fmt,
    )
    settings = VideoSettings()
    info = probe(io.BytesIO(data), settings)
    assert info.codec == codec
    assert codec in DEFAULT_CODECS
    samples = list(iter_samples(io.BytesIO(data), settings))
    assert [s.t_ms for s in samples][:3] == [0, 520, 1000]
    assert samples[0].rgb.shape == (height, width, 3)


@pytest.mark.parametrize("codec", DEFAULT_CODECS)
def test_every_accepted_codec_has_a_decoder(codec: str) -> None:
    assert av.codec.Codec(codec, "r").type == "video"
