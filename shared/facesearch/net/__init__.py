"""Outbound HTTP that user input can steer: SSRF-safe fetching of images by URL.

Exports load lazily (:mod:`facesearch.lazy`): the settings import :mod:`.settings`.
"""

from typing import TYPE_CHECKING

from facesearch.lazy import lazy_exports

if TYPE_CHECKING:
    from facesearch.net.fetch import (
        FetchedImage,
        FetchFailed,
        FetchPolicy,
        UrlNotAllowed,
        fetch_image,
        host_allowed,
    )

_EXPORTS = {
    name: "facesearch.net.fetch"
    for name in (
        "FetchFailed",
        "FetchPolicy",
        "FetchedImage",
        "UrlNotAllowed",
        "fetch_image",
        "host_allowed",
    )
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "FetchFailed",
    "FetchPolicy",
    "FetchedImage",
    "UrlNotAllowed",
    "fetch_image",
    "host_allowed",
]
