"""Typed video errors: stable ``code``s, HTTP statuses, and never retryable.

A bad video stays bad however often it is redelivered, so every error here has
``retryable = False``: the entry point acks the message and records the failure
instead of letting Pub/Sub retry it into a storm. Transient storage problems are
the storage layer's ``TransientError``, not these.
"""

from __future__ import annotations

from facesearch.errors import FaceSearchError


class InvalidVideo(FaceSearchError):
    """Not a usable video: empty, not a container, corrupt or truncated."""

    code = "invalid-video"
    http_status = 400


class UnsupportedCodec(InvalidVideo):
    """A real video whose codec is not in the accepted list (or has no decoder here)."""

    code = "unsupported-codec"
    http_status = 415


class NoVideoStream(InvalidVideo):
    """A container with no picture track (audio-only, or only cover art)."""

    code = "no-video-stream"
    http_status = 422


class VideoTooLarge(InvalidVideo):
    """Too many bytes, or frames with too many pixels."""

    code = "video-too-large"
    http_status = 413


class VideoTooLong(InvalidVideo):
    """Longer than the configured maximum duration."""

    code = "video-too-long"
    http_status = 413


class VideoTooSmall(InvalidVideo):
    """Frames too small (or too thin) to hold a detectable face."""

    code = "video-too-small"
    http_status = 422


class IncompleteVideo(FaceSearchError):
    """The finisher was asked to stitch before every chunk reported (retry later)."""

    code = "video-incomplete"
    http_status = 409
    retryable = True
