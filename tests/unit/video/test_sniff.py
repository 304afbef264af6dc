"""Container sniffing by content, and the EBML parser under hypothesis."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facesearch.video.sniff import ebml_doctype, read_vint, sniff_container
from tests.data.video_corpus import encode_bytes, steady


def vint(value: int, length: int | None = None) -> bytes:
    """EBML size encoding (marker bit + value) in the shortest (or given) length."""
    if length is None:
        length = next(n for n in range(1, 9) if value < 2 ** (7 * n) - 1)
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def ebml_header(doctype: bytes) -> bytes:
    body = b"\x42\x86\x81\x01" + b"\x42\x82" + vint(len(doctype)) + doctype
    return b"\x1a\x45\xdf\xa3" + vint(len(body)) + body


@pytest.mark.parametrize(
    ("container", "codec", "expected"),
    [
        ("mp4", "libx264", "mp4"),
        ("mov", "libx264", "mov"),
        ("matroska", "libx264", "matroska"),
        ("webm", "libvpx-vp9", "webm"),
        ("avi", "mpeg4", "avi"),
        ("mpegts", "libx264", "mpegts"),
    ],
)
def test_real_containers(container: str, codec: str, expected: str) -> None:
    data = encode_bytes(steady(64, 48, 0.4), codec=codec, container=container)
    assert sniff_container(data[:4096]) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # JPEG
        b"\x89PNG\r\n\x1a\n" + bytes(40),
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",  # HEIC photo
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",  # AVIF photo
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",  # WebP is RIFF too, but not AVI
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"ID3\x03\x00" + bytes(100),  # MP3
        b"OggS" + bytes(100),
        b"\x47" + bytes(400),  # one sync byte is not a transport stream
    ],
)
def test_not_video(head: bytes) -> None:
    assert sniff_container(head) is None


def test_quicktime_without_ftyp() -> None:
    assert (
        sniff_container(struct.pack(">I", 8) + b"wide" + struct.pack(">I", 100) + b"mdat") == "mov"
    )
    assert sniff_container(struct.pack(">I", 3) + b"moov") is None  # impossible atom size


def test_m2ts_and_ts() -> None:
    ts = b"".join(b"\x47" + bytes(187) for _ in range(5))
    m2ts = b"".join(bytes(4) + b"\x47" + bytes(187) for _ in range(5))
    assert sniff_container(ts) == "mpegts"
    assert sniff_container(m2ts) == "mpegts"


@given(st.binary(max_size=5000))
def test_sniff_never_raises(data: bytes) -> None:
    assert sniff_container(data) in {None, "mp4", "mov", "webm", "matroska", "avi", "mpegts"}


@given(st.integers(min_value=0, max_value=2**56 - 2))
def test_vint_round_trip(value: int) -> None:
    encoded = vint(value)
    assert read_vint(encoded, 0, keep_marker=False) == (value, len(encoded))


@given(st.binary(min_size=1, max_size=12))
def test_read_vint_is_total(data: bytes) -> None:
    result = read_vint(data, 0, keep_marker=True)
    if result is not None:
        value, length = result
        assert 1 <= length <= 8 and length <= len(data)
        assert value.bit_length() <= 8 * length


def _element(element_id: int, payload: bytes) -> bytes:
    return (
        element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
        + vint(len(payload))
        + payload
    )


@given(
    st.sampled_from([b"webm", b"matroska"]),
    st.lists(
        st.tuples(
            st.sampled_from([0x4286, 0x42F7, 0x42F2, 0x42F3, 0x4287, 0x4285, 0xEC]),
            st.binary(max_size=20),
        ),
        max_size=6,
    ),
    st.integers(0, 6),
)
def test_doctype_found_among_other_elements(
    doctype: bytes, extra: list[tuple[int, bytes]], position: int
) -> None:
    """The DocType element may sit anywhere among the header's other elements."""
    elements = [_element(i, p) for i, p in extra]
    elements.insert(min(position, len(elements)), _element(0x4282, doctype))
    body = b"".join(elements)
    header = b"\x1a\x45\xdf\xa3" + vint(len(body)) + body
    assert ebml_doctype(header) == doctype.decode()
    assert sniff_container(header + bytes(100)) == doctype.decode()


@given(st.binary(max_size=200))
def test_ebml_parser_is_total(tail: bytes) -> None:
    """Any bytes after the magic: a string or None, never an exception or a hang."""
    result = ebml_doctype(b"\x1a\x45\xdf\xa3" + tail)
    assert result is None or isinstance(result, str)


def test_truncated_ebml_header_is_not_a_video() -> None:
    header = ebml_header(b"webm")
    assert ebml_doctype(header[:-2]) is None
    assert sniff_container(header[:-2]) is None
