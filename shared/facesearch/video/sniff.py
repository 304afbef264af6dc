"""Which container family a file is, from its first bytes only (never its name).

Uploads are untrusted, so the name and Content-Type say nothing; the magic
bytes decide which of the families we accept gets opened at all:

- ISO base media (MP4, MOV, 3GP): an ``ftyp`` box first, or (old QuickTime) a
  ``moov``/``mdat``/``wide``/``free``/``skip`` atom first. Image brands (HEIF,
  AVIF) are *not* video: the image path handles those.
- Matroska / WebM: the EBML magic ``1A 45 DF A3``; the EBML header's DocType
  element says which.
- AVI: ``RIFF`` + size + ``AVI `` (``AVIX`` for OpenDML extension files).
- MPEG transport stream: the sync byte ``0x47`` every 188 bytes (or every 192
  bytes with a 4-byte timecode prefix, Blu-ray M2TS).

Everything else (images, audio-only formats, random bytes) returns None.
"""

from __future__ import annotations

import struct
from typing import Final

SNIFF_BYTES: Final = 4096  # enough for 5 transport-stream packets and any EBML header
_HEIF_AVIF_BRANDS: Final = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
)
_QUICKTIME_ATOMS: Final = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_EBML_MAGIC: Final = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE_ID: Final = 0x4282
_TS_SYNC: Final = 0x47
_TS_PACKETS_CHECKED: Final = 5
_TS_MIN_PACKETS: Final = 3  # two sync bytes by chance: 1 in 65536 files


def sniff_container(head: bytes) -> str | None:
    """Container family of a file whose first bytes are ``head``, or None.

    Returns one of ``mp4``, ``mov``, ``webm``, ``matroska``, ``avi``, ``mpegts``.
    Pass at least :data:`SNIFF_BYTES` bytes when the file has them.
    """
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _iso_bmff(head)
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS and struct.unpack(">I", head[:4])[0] >= 8:
        return "mov"
    if head.startswith(_EBML_MAGIC):
        doctype = ebml_doctype(head)
        if doctype == "webm":
            return "webm"
        if doctype == "matroska":
            return "matroska"
        return None
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if _is_transport_stream(head):
        return "mpegts"
    return None


def _iso_bmff(head: bytes) -> str | None:
    major = head[8:12]
    if major in _HEIF_AVIF_BRANDS:
        return None  # a still image (HEIC/AVIF, or an AVIF image sequence), not a video
    return "mov" if major == b"qt  " else "mp4"


def read_vint(data: bytes, offset: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at ``offset``: (value, length), or None if malformed.

    The count of leading zero bits of the first byte gives the length (1..8 bytes).
    Element IDs keep the length marker bit (``keep_marker``); sizes drop it.
    """
    if offset >= len(data):
        return None
    first = data[offset]
    if first == 0:
        return None
    length = 8 - first.bit_length() + 1
    if offset + length > len(data):
        return None
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[offset + 1 : offset + length]:
        value = (value << 8) | byte
    return value, length


def ebml_doctype(head: bytes) -> str | None:
    """The DocType string of the EBML header that starts ``head`` (e.g. "webm"), or None."""
    if not head.startswith(_EBML_MAGIC):
        return None
    size = read_vint(head, 4, keep_marker=False)
    if size is None:
        return None
    header_size, size_len = size
    position = 4 + size_len
    end = min(len(head), position + header_size)
    while position < end:
        element = read_vint(head, position, keep_marker=True)
        if element is None:
            return None
        element_id, id_len = element
        length = read_vint(head, position + id_len, keep_marker=False)
        if length is None:
            return None
        payload_size, len_len = length
        start = position + id_len + len_len
        if start + payload_size > len(head):
            return None
        if element_id == _EBML_DOCTYPE_ID:
            return head[start : start + payload_size].rstrip(b"\x00").decode("ascii", "replace")
        position = start + payload_size
    return None


def _is_transport_stream(head: bytes) -> bool:
    for packet, prefix in ((188, 0), (192, 4)):
        count = min(_TS_PACKETS_CHECKED, (len(head) - prefix) // packet)
        synced = all(head[prefix + i * packet] == _TS_SYNC for i in range(count))
        if count >= _TS_MIN_PACKETS and synced:
            return True
    return False
