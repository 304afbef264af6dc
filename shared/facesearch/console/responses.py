"""Responses the console and the share page build the same way: JSON, static files, photos.

Kept apart from the routes so the share page (:mod:`facesearch.console.share`) and the
console (:mod:`facesearch.console.app`) serve bytes by one set of rules: static files only
from inside ``static/``, photos typed by their bytes (never by a file name), and every
response hardened with one Content-Security-Policy.
"""

from __future__ import annotations

import io
import json
import mimetypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Response

from facesearch.errors import NotFound
from facesearch.vision.decode import sniff_format

STATIC = Path(__file__).parent / "static"

#: formats every browser renders as they are; anything else (HEIC, TIFF, ...) becomes a JPEG
_BROWSER_IMAGES = frozenset({"jpeg", "png", "gif", "webp"})


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def static_file(name: str) -> Response:
    """A file of ``static/`` (a path that leaves the folder is a 404, not a read)."""
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file():
        raise NotFound(f"no asset {name}")
    kind = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}.get(
        path.suffix, mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    if kind.startswith("text/"):
        kind += "; charset=utf-8"
    response = Response(path.read_bytes(), content_type=kind)
    response.headers["Cache-Control"] = "no-cache"
    return response


def photo_response(data: bytes) -> Response:
    """A photo a browser can show: typed from its bytes, converted to JPEG when it must be."""
    kind = sniff_format(data)
    if kind in _BROWSER_IMAGES:
        response = Response(data, content_type=f"image/{kind}")
    else:
        response = Response(_as_jpeg(data), content_type="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


def harden(response: Response, img_origins: Iterable[str]) -> Response:
    """No inline script, no other origin, no referrer (share URLs hold their token)."""
    img = " ".join(["'self'", "blob:", "data:", *img_origins])
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; media-src 'self' blob:; font-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(), geolocation=()"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def redacted(path: str) -> str:
    """The path with a share token replaced (it is the link's credential)."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "share" and parts[2] != "static":
        parts[2] = "<token>"
    return "/".join(parts)


def _as_jpeg(data: bytes) -> bytes:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=90)
            return out.getvalue()
    except (UnidentifiedImageError, OSError) as exc:
        raise NotFound("the source is not a displayable image") from exc
