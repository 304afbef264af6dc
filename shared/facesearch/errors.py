"""Typed errors shared by every layer.

Each error carries a stable machine-readable ``code`` (used as the problem+json
``type`` suffix and in Firestore failure records), an HTTP status for the API,
and whether retrying could help (Pub/Sub/Eventarc ack-vs-retry decisions).
Entry points map these in exactly one place; library code only raises them.
"""

from __future__ import annotations

from typing import Any


class FaceSearchError(Exception):
    """Base class: a failure we understand and can explain to a human."""

    code: str = "internal"
    http_status: int = 500
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class ConfigError(FaceSearchError):
    code = "config"


class InvalidImage(FaceSearchError):
    """The bytes are not a decodable image (empty, truncated, not an image)."""

    code = "invalid-image"
    http_status = 400


class UnsupportedFormat(InvalidImage):
    """A real image format we recognise but cannot decode (e.g. HEIC without a decoder)."""

    code = "unsupported-format"
    http_status = 415


class ImageTooLarge(InvalidImage):
    """Too many bytes or too many pixels (decompression-bomb guard)."""

    code = "image-too-large"
    http_status = 413


class ImageTooSmall(InvalidImage):
    code = "image-too-small"
    http_status = 422


class NoFace(FaceSearchError):
    code = "no-face"
    http_status = 422


class AmbiguousFace(FaceSearchError):
    """Several faces where exactly one was needed and the caller did not choose."""

    code = "several-faces"
    http_status = 422


class ModelError(FaceSearchError):
    """A model file is missing, corrupt (hash mismatch) or cannot be loaded."""

    code = "model-unavailable"
    http_status = 503


class ModelMismatch(FaceSearchError):
    """Embeddings from different models must never be mixed in one index."""

    code = "model-mismatch"
    http_status = 409


class IndexStoreError(FaceSearchError):
    code = "index"
    http_status = 500


class IndexCorrupt(IndexStoreError):
    """A segment or manifest does not match its recorded hash, size or shape."""

    code = "index-corrupt"


class PreconditionFailed(FaceSearchError):
    """A generation precondition failed: somebody else wrote first; re-read and retry."""

    code = "precondition-failed"
    http_status = 412
    retryable = True


class NotFound(FaceSearchError):
    code = "not-found"
    http_status = 404


class SignatureError(FaceSearchError):
    """Authentication failed. The message is logged, never returned to the caller."""

    code = "unauthorized"
    http_status = 401


class Forbidden(FaceSearchError):
    code = "forbidden"
    http_status = 403


class TransientError(FaceSearchError):
    """A dependency is unavailable right now; the platform should retry."""

    code = "unavailable"
    http_status = 503
    retryable = True


class InvalidEmbedding(FaceSearchError):
    """An embedding with the wrong dimension count, NaN/inf values or zero length."""

    code = "invalid-embedding"
    http_status = 422


class BadRequest(FaceSearchError):
    """The request is malformed: bad JSON, a field out of range, a missing part."""

    code = "invalid-request"
    http_status = 400

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors


class RateLimited(FaceSearchError):
    """Too many expensive requests at once on this instance; retry shortly."""

    code = "rate-limited"
    http_status = 429
    retryable = True
