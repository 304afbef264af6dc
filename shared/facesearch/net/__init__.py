"""Outbound HTTP that user input can steer: SSRF-safe fetching of images by URL."""

from facesearch.net.fetch import (
    FetchedImage,
    FetchFailed,
    FetchPolicy,
    UrlNotAllowed,
    fetch_image,
    host_allowed,
)

__all__ = [
    "FetchFailed",
    "FetchPolicy",
    "FetchedImage",
    "UrlNotAllowed",
    "fetch_image",
    "host_allowed",
]
