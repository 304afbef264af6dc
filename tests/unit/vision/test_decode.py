"""Decoder: every awkward or hostile input gives its documented outcome, never a crash."""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facesearch.errors import FaceSearchError, ImageTooLarge, InvalidImage
from facesearch.vision.decode import decode_image, sniff_format
from tests.data.image_corpus import build_corpus, encode, exif_rotated_jpeg, real_photo

CORPUS = {case.name: case for case in build_corpus()}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_outcome(name: str) -> None:
    case = CORPUS[name]
    if case.outcome == "ok":
        decoded = decode_image(case.data)
        assert decoded.rgb.dtype == np.uint8
        assert decoded.rgb.ndim == 3 and decoded.rgb.shape[2] == 3
        assert decoded.rgb.flags["C_CONTIGUOUS"]
    else:
        with pytest.raises(InvalidImage) as info:
            decode_image(case.data)
        assert info.value.code == case.outcome, info.value.message
        assert info.value.message  # a human-readable reason


def test_bomb_is_refused_before_decoding() -> None:
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="decompression bomb"):
        decode_image(CORPUS["png_header_bomb"].data)
    assert time.perf_counter() - start < 0.5


def test_size_cap_in_bytes() -> None:
    data = CORPUS["bmp"].data
    with pytest.raises(ImageTooLarge, match="bytes"):
        decode_image(data, max_bytes=len(data) - 1)


def test_exif_orientation_is_applied() -> None:
    upright = np.asarray(real_photo(), dtype=np.float32)
    decoded = decode_image(exif_rotated_jpeg(real_photo(), orientation=6))
    assert decoded.exif_orientation == 6
    assert decoded.rgb.shape == upright.shape
    assert np.abs(decoded.rgb.astype(np.float32) - upright).mean() < 6.0


@pytest.mark.parametrize("orientation", [3, 8])
def test_other_orientations(orientation: int) -> None:
    upright = np.asarray(real_photo(), dtype=np.float32)
    decoded = decode_image(exif_rotated_jpeg(real_photo(), orientation=orientation))
    assert np.abs(decoded.rgb.astype(np.float32) - upright).mean() < 6.0


def test_cmyk_colours_survive() -> None:
    rgb = np.asarray(real_photo(), dtype=np.float32)
    decoded = decode_image(CORPUS["cmyk_jpeg"].data).rgb.astype(np.float32)
    assert np.abs(decoded - rgb).mean() < 12.0


def test_sixteen_bit_uses_full_range_not_clipping() -> None:
    decoded = decode_image(CORPUS["png_16bit"].data).rgb
    row = decoded[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row.astype(int)) >= 0)  # monotone ramp, not saturated at 255
    assert len(np.unique(row)) > 200


def test_palette_transparency_composited_on_white() -> None:
    decoded = decode_image(CORPUS["palette_alpha_png"].data).rgb
    assert tuple(decoded[10, 10]) == (0, 0, 255)  # opaque palette entry 1 (left half)
    assert tuple(decoded[10, 50]) == (255, 255, 255)  # transparent entry 0 → white


def test_animated_gif_first_frame() -> None:
    decoded = decode_image(CORPUS["animated_gif"].data).rgb
    red, green, blue = decoded[32, 32].astype(int)
    assert red > 150 and green < 80 and blue < 80


def test_heic_and_avif_decode() -> None:
    import pillow_heif

    photo = real_photo().resize((320, 400))
    heif = pillow_heif.from_pillow(photo)
    buffer = io.BytesIO()
    heif.save(buffer, quality=90)
    assert sniff_format(buffer.getvalue()) == "heif"
    decoded = decode_image(buffer.getvalue())
    assert decoded.format == "heif" and decoded.rgb.shape == (400, 320, 3)

    avif = encode(photo, "AVIF", quality=90)
    assert sniff_format(avif) == "avif"
    assert decode_image(avif).rgb.shape == (400, 320, 3)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", "jpeg"),
        ("PNG", "png"),
        ("GIF", "gif"),
        ("WEBP", "webp"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
    ],
)
def test_sniff_matches_encoder(fmt: str, expected: str) -> None:
    assert sniff_format(encode(Image.new("RGB", (20, 20)), fmt)) == expected


def test_format_is_sniffed_not_trusted() -> None:
    """A PNG is a PNG whatever it is called; text is not an image whatever it is called."""
    assert decode_image(CORPUS["grey_png"].data).format == "png"
    assert sniff_format(b"GIF88a" + b"a" * 30) is None


def _mutate(data: bytes, positions: list[int], values: list[int]) -> bytes:
    buffer = bytearray(data)
    for position, value in zip(positions, values, strict=False):
        buffer[position % len(buffer)] = value
    return bytes(buffer)


SMALL_VALID = [
    encode(Image.new("RGB", (24, 24), (120, 80, 40)), fmt)
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(SMALL_VALID),
    positions=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    values=st.lists(st.integers(min_value=0, max_value=255), max_size=12),
    cut=st.integers(min_value=0, max_value=10_000),
)
def test_fuzz_mutated_images_only_raise_typed_errors(
    base: bytes, positions: list[int], values: list[int], cut: int
) -> None:
    data = _mutate(base, positions, values)
    data = data[: max(1, cut)] if cut < len(data) else data
    try:
        decoded = decode_image(data, max_pixels=4_000_000)
    except FaceSearchError:
        return
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape[2] == 3


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes_only_raise_typed_errors(data: bytes) -> None:
    with contextlib.suppress(FaceSearchError):
        decode_image(data)
