"""Generated corpus of awkward and hostile images, each with its documented outcome.

Built in memory from one real photo (no binary fixtures in git), so the same
corpus drives the decoder unit tests and the ingest integration tests. The
outcome is either the error ``code`` the pipeline must report, or "ok".
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = Path(__file__).resolve().parent / "photos"
REAL_PHOTO = PHOTOS / "labelled" / "obama" / "obama_1.jpg"
EXIF_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class CorpusCase:
    name: str
    data: bytes
    outcome: str  # "ok" or the typed error code (facesearch.errors.*.code)
    why: str


def real_photo() -> Image.Image:
    if not REAL_PHOTO.is_file():
        raise FileNotFoundError(
            f"{REAL_PHOTO} is missing: run `make setup` (tests/data/fetch_photos.py)"
        )
    return Image.open(REAL_PHOTO).convert("RGB")


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_header_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A valid-looking PNG that declares width×height RGB pixels but carries ~nothing."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width * 3 + 1) * 4, 9)  # 4 rows of a 1.6 GP image
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated_jpeg(photo: Image.Image, orientation: int = 6) -> bytes:
    """Store the photo sideways and tag it so viewers (and we) rotate it upright.

    Orientation 6 means "rotate 90° clockwise to display", so the stored pixels are
    the upright photo rotated 90° counter-clockwise.
    """
    stored = {
        6: Image.Transpose.ROTATE_90,
        8: Image.Transpose.ROTATE_270,
        3: Image.Transpose.ROTATE_180,
    }
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    return encode(photo.transpose(stored[orientation]), "JPEG", quality=95, exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [
        Image.new("RGB", (64, 64), colour)
        for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))
    ]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0
    )
    return buffer.getvalue()


def _sixteen_bit_png() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (64, 1))
    return encode(Image.fromarray(ramp), "PNG")


def _palette_alpha_png() -> bytes:
    image = Image.new("P", (64, 64), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.paste(1, (0, 0, 32, 64))
    return encode(image, "PNG", transparency=0)


def _huge_valid_jpeg() -> bytes:
    base = real_photo().resize((800, 600))
    return encode(base.resize((8000, 6000), Image.Resampling.NEAREST), "JPEG", quality=70)


def build_corpus(*, include_huge: bool = True) -> list[CorpusCase]:
    photo = real_photo()
    jpeg = encode(photo, "JPEG", quality=92)
    cases: list[tuple[str, Callable[[], bytes], str, str]] = [
        ("empty", lambda: b"", "invalid-image", "0 bytes"),
        ("truncated_jpeg", lambda: jpeg[: len(jpeg) // 2], "invalid-image", "half a real JPEG"),
        ("text_named_jpg", lambda: b"this is not an image\n" * 20, "invalid-image", "plain text"),
        ("png_header_bomb", png_header_bomb, "image-too-large", "40000x40000 declared"),
        ("one_pixel", lambda: encode(Image.new("RGB", (1, 1)), "PNG"), "image-too-small", "1x1"),
        ("cmyk_jpeg", lambda: encode(photo.convert("CMYK"), "JPEG", quality=92), "ok", "CMYK"),
        ("png_16bit", _sixteen_bit_png, "ok", "16-bit grey PNG"),
        ("palette_alpha_png", _palette_alpha_png, "ok", "palette + transparency"),
        ("animated_gif", _animated_gif, "ok", "first frame is used"),
        ("exif_rotated_jpeg", lambda: exif_rotated_jpeg(photo), "ok", "EXIF orientation 6"),
        ("webp", lambda: encode(photo, "WEBP", quality=90), "ok", "WebP"),
        ("bmp", lambda: encode(photo, "BMP"), "ok", "BMP"),
        ("tiff", lambda: encode(photo, "TIFF"), "ok", "TIFF"),
        ("grey_png", lambda: encode(photo.convert("L"), "PNG"), "ok", "greyscale"),
        ("rgba_png", lambda: encode(photo.convert("RGBA"), "PNG"), "ok", "alpha channel"),
    ]
    if include_huge:
        cases.append(("huge_valid_jpeg", _huge_valid_jpeg, "ok", "8000x6000, under the pixel cap"))
    return [CorpusCase(name, make(), outcome, why) for name, make, outcome, why in cases]
