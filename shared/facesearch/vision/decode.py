"""Safe image decoding: untrusted bytes → RGB uint8, or a typed error.

Uploads come from anyone, so decoding is the attack surface: we sniff the real
format from magic bytes (never trust the file name or Content-Type), read only
the header first and refuse images whose pixel count would blow memory (a 40 kB
PNG can declare 40000×40000), then decode with Pillow, apply EXIF orientation
(phones store portraits sideways) and normalise every mode (CMYK, 16-bit,
grey, palette, alpha) to 8-bit RGB. Any failure is an ``InvalidImage`` subclass
with a message a human can act on; nothing else escapes.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from facesearch.errors import ImageTooLarge, ImageTooSmall, InvalidImage, UnsupportedFormat
from facesearch.vision.types import ImageArray

try:  # HEIC/HEIF decoding comes from the pillow-heif wheel (libheif + libde265 inside).
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - pillow-heif is a hard dependency; keep a clear error
    HEIF_SUPPORTED = False

# Never let Pillow silently accept a truncated file: a half-grey face embeds wrongly.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_BYTES: Final = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS: Final = 50_000_000
DEFAULT_MIN_SIDE_PX: Final = 16
_ALPHA_BACKGROUND: Final = (255, 255, 255)

_ISO_BMFF_HEIF_BRANDS: Final = {
    b"heic",
    b"heix",
    b"hevc",
    b"hevx",
    b"heim",
    b"heis",
    b"mif1",
    b"msf1",
}
_ISO_BMFF_AVIF_BRANDS: Final = {b"avif", b"avis"}


@dataclass(frozen=True)
class DecodedImage:
    rgb: ImageArray  # (H, W, 3) uint8, EXIF orientation applied
    format: str  # sniffed format: jpeg, png, gif, webp, bmp, tiff, heif, avif
    exif_orientation: int  # 1 = none; the tag as found in the file
    original_mode: str  # Pillow mode before conversion (e.g. CMYK, I;16, P)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def sniff_format(data: bytes) -> str | None:
    """Name of the image format from its magic bytes, or None if it is not a known image."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(head) >= 14:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(len(head), 32), 4)}
        if brands & _ISO_BMFF_AVIF_BRANDS:
            return "avif"
        if brands & _ISO_BMFF_HEIF_BRANDS:
            return "heif"
    return None


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side_px: int = DEFAULT_MIN_SIDE_PX,
) -> DecodedImage:
    """Decode untrusted bytes; raise InvalidImage (or a subclass) with a human message."""
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the image is {len(data):,} bytes; the limit is {max_bytes:,} bytes")
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImage(
            "not an image: the content does not start with the signature of any supported "
            "format (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF)"
        )
    if fmt == "heif" and not HEIF_SUPPORTED:  # pragma: no cover
        raise UnsupportedFormat("HEIC/HEIF images need the pillow-heif package")

    with warnings.catch_warnings():
        # We enforce our own pixel limit below; silence Pillow's bomb *warning*.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # Pillow warns (rather than fails) on malformed EXIF/TIFF tags it skips; those
        # images still decode correctly, so the warning is noise for our callers.
        warnings.simplefilter("ignore", UserWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"refused a decompression bomb: {exc}") from exc
        except UnidentifiedImageError as exc:
            raise InvalidImage(f"the {fmt.upper()} data is corrupt or unreadable") from exc
        except (OSError, ValueError, SyntaxError) as exc:
            raise InvalidImage(f"the {fmt.upper()} header is corrupt: {exc}") from exc
        with image:
            return _decode_opened(image, fmt, max_pixels=max_pixels, min_side_px=min_side_px)


def _decode_opened(
    image: Image.Image, fmt: str, *, max_pixels: int, min_side_px: int
) -> DecodedImage:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"the image declares an impossible size {width}×{height}")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}×{height} = {width * height:,} pixels; the limit is "
            f"{max_pixels:,} (refused before decoding, as a decompression-bomb guard)"
        )
    if min(width, height) < min_side_px:
        raise ImageTooSmall(
            f"the image is {width}×{height} pixels; faces need at least {min_side_px} px per side"
        )
    original_mode = image.mode
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)  # first frame of an animated GIF/WebP
        image.load()
        orientation = _exif_orientation(image)
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        rgb = _to_rgb_array(image)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"refused a decompression bomb: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise InvalidImage(f"the {fmt.upper()} data is truncated or corrupt: {exc}") from exc
    except MemoryError as exc:
        raise ImageTooLarge("the image needs more memory to decode than is available") from exc
    return DecodedImage(
        rgb=rgb, format=fmt, exif_orientation=orientation, original_mode=original_mode
    )


def _exif_orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF must not make an otherwise fine photo fail
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb_array(image: Image.Image) -> ImageArray:
    """Normalise any Pillow mode to (H, W, 3) uint8 RGB without clipping high bit depths."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(image, dtype=np.float64)
        return _stretch_to_uint8(grey, 65535.0 if mode.startswith("I;16") else None)
    if mode == "F":
        return _stretch_to_uint8(np.asarray(image, dtype=np.float64), None)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_ALPHA_BACKGROUND, 255))
        background.alpha_composite(rgba)
        image = background
    if image.mode != "RGB":
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    return np.ascontiguousarray(array)


def _stretch_to_uint8(grey: np.ndarray, full_scale: float | None) -> ImageArray:
    """Map high-bit-depth grey to 8 bits: by the format's full scale, else by its own range."""
    if full_scale is None:
        low, high = float(np.nanmin(grey)), float(np.nanmax(grey))
        scaled = (grey - low) / (high - low) * 255.0 if high > low else np.zeros_like(grey)
    else:
        scaled = grey / full_scale * 255.0
    grey8 = np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))
