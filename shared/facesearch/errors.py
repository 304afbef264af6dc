"""Typed errors shared by every layer, all in this one table.

Each error carries a stable machine-readable ``code`` (the problem+json ``type``
suffix, the code in Firestore failure records), an HTTP status for the API, and
whether retrying could help (Pub/Sub/Eventarc ack-vs-retry decisions). Entry
points map these in exactly one place each; library code only raises them. Kept
together so that a code is never defined twice and a new one is one line.
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

    def log_fields(self) -> dict[str, str]:
        """How a log line names this error (``log_fields(**error.log_fields(), ...)``): the
        same three keys everywhere, so one log query finds every occurrence of a code."""
        return {"error_type": type(self).__name__, "error_code": self.code, "error": self.message}


# --- configuration and models --------------------------------------------------------------


class ConfigError(FaceSearchError):
    """This instance is misconfigured (a setting is missing or invalid)."""

    code = "config"


class ModelError(FaceSearchError):
    """A model file is missing, corrupt (hash mismatch) or cannot be loaded."""

    code, http_status = "model-unavailable", 503


class ModelMismatch(FaceSearchError):
    """Embeddings from different models must never be mixed in one index."""

    code, http_status = "model-mismatch", 409


# --- images and faces ----------------------------------------------------------------------


class InvalidImage(FaceSearchError):
    """The bytes are not a decodable image (empty, truncated, not an image)."""

    code, http_status = "invalid-image", 400


class UnsupportedFormat(InvalidImage):
    """A real image format we recognise but cannot decode (e.g. HEIC without a decoder)."""

    code, http_status = "unsupported-format", 415


class ImageTooLarge(InvalidImage):
    """Too many bytes or too many pixels (decompression-bomb guard)."""

    code, http_status = "image-too-large", 413


class ImageTooSmall(InvalidImage):
    """Smaller than the smallest image a face could be found in."""

    code, http_status = "image-too-small", 422


class NoFace(FaceSearchError):
    """No face was found where one was needed."""

    code, http_status = "no-face", 422


class AmbiguousFace(FaceSearchError):
    """Several faces where exactly one was needed and the caller did not choose."""

    code, http_status = "several-faces", 422


class InvalidEmbedding(FaceSearchError):
    """An embedding with the wrong dimension count, NaN/inf values or zero length."""

    code, http_status = "invalid-embedding", 422


class TooManyAttempts(FaceSearchError):
    """The image crashed or timed out its processing this many times: give up on it."""

    code, http_status = "too-many-attempts", 500


class EventExpired(FaceSearchError):
    """An event kept failing past the max event age: dropped and recorded, not retried."""

    code, http_status = "event-expired", 500


class Overloaded(FaceSearchError):
    """The instance is at its connection limit: refused at once with a Retry-After."""

    code, http_status, retryable = "overloaded", 503, True
    retry_after_s = 1


# --- storage and the index ------------------------------------------------------------------


class IndexStoreError(FaceSearchError):
    """The index store could not be read or written consistently."""

    code = "index"


class IndexCorrupt(IndexStoreError):
    """A segment or manifest does not match its recorded hash, size or shape."""

    code = "index-corrupt"


class PreconditionFailed(FaceSearchError):
    """A generation precondition failed: somebody else wrote first; re-read and retry."""

    code, http_status, retryable = "precondition-failed", 412, True


class NotFound(FaceSearchError):
    """The record, object or route does not exist."""

    code, http_status = "not-found", 404


class Conflict(FaceSearchError):
    """A record that must be new already exists."""

    code, http_status = "conflict", 409


class CollectionClosed(FaceSearchError):
    """The collection is being (or has been) erased: nothing may be written into it."""

    code, http_status = "collection-closed", 409


class CannotErase(FaceSearchError):
    """The default collection holds the data from before collections: forget, don't erase."""

    code, http_status = "cannot-erase", 409


class InvalidCursor(FaceSearchError):
    """A page cursor that this store did not issue (or for another listing)."""

    code, http_status = "invalid-cursor", 400


class TransientError(FaceSearchError):
    """A dependency is unavailable right now; the platform should retry."""

    code, http_status, retryable = "unavailable", 503, True


class BadMessage(FaceSearchError):
    """A message body that does not follow its topic's schema: ack it, log it, move on."""

    code, http_status = "bad-message", 400


# --- requests -------------------------------------------------------------------------------


class SignatureError(FaceSearchError):
    """Authentication failed. The message is logged, never returned to the caller."""

    code, http_status = "unauthorized", 401


class Forbidden(FaceSearchError):
    """Credentials were checked and refused (or a signed URL is invalid or expired)."""

    code, http_status = "forbidden", 403


class ScopeForbidden(Forbidden):
    """The key is valid but not for this collection or this kind of action."""

    code = "forbidden-scope"


class BadRequest(FaceSearchError):
    """The request is malformed: bad JSON, a field out of range, a missing part."""

    code, http_status = "invalid-request", 400

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors


class UnsupportedMediaType(FaceSearchError):
    """A body of a content type this route does not take."""

    code, http_status = "unsupported-media-type", 415


class RequestTooLarge(FaceSearchError):
    """A body over the route's byte cap (refused before it is read)."""

    code, http_status = "request-too-large", 413


class LengthRequired(FaceSearchError):
    """A body without a Content-Length (chunked): refused before it is read."""

    code, http_status = "length-required", 411


class RequestTimeout(FaceSearchError):
    """The client sent its body too slowly (the read deadline passed)."""

    code, http_status = "request-timeout", 408


class MethodNotAllowed(FaceSearchError):
    """The route exists but not for this HTTP method."""

    code, http_status = "method-not-allowed", 405


class QuotaExceeded(FaceSearchError):
    """A collection's quota (faces held, requests per second) is used up."""

    code, http_status = "quota-exceeded", 429

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(FaceSearchError):
    """Too many expensive requests at once on this instance; retry shortly."""

    code, http_status, retryable = "rate-limited", 429, True


class BadNotification(FaceSearchError):
    """A correctly signed body that is not a Cloudinary notification we can read."""

    code, http_status = "bad-notification", 400


# --- outbound fetches ------------------------------------------------------------------------


class UrlNotAllowed(FaceSearchError):
    """The URL breaks the fetch policy (scheme, host, port or a non-public address)."""

    code, http_status = "url-not-allowed", 400


class FetchFailed(FaceSearchError):
    """The allowed URL could not be fetched (timeout, refused, upstream error status)."""

    code, http_status = "fetch-failed", 422


# --- videos (a bad video stays bad however often it is redelivered: never retryable) --------


class InvalidVideo(FaceSearchError):
    """Not a usable video: empty, not a container, corrupt or truncated."""

    code, http_status = "invalid-video", 400


class UnsupportedCodec(InvalidVideo):
    """A real video whose codec is not in the accepted list (or has no decoder here)."""

    code, http_status = "unsupported-codec", 415


class NoVideoStream(InvalidVideo):
    """A container with no picture track (audio-only, or only cover art)."""

    code, http_status = "no-video-stream", 422


class VideoTooLarge(InvalidVideo):
    """Too many bytes, or frames with too many pixels."""

    code, http_status = "video-too-large", 413


class VideoTooLong(InvalidVideo):
    """Longer than the configured maximum duration."""

    code, http_status = "video-too-long", 413


class VideoTooSmall(InvalidVideo):
    """Frames too small (or too thin) to hold a detectable face."""

    code, http_status = "video-too-small", 422


class IncompleteVideo(FaceSearchError):
    """The finisher was asked to stitch before every chunk reported (retry later)."""

    code, http_status, retryable = "video-incomplete", 409, True


# --- people (clustering, corrections) -------------------------------------------------------


class StaleRead(PreconditionFailed):
    """A people-store apply's precondition failed: a record changed (or appeared) since
    it was read. The caller re-reads, re-decides and applies again; the engine does so
    itself up to ``apply_attempts`` times."""

    code = "stale-read"


class CorrectionRefused(FaceSearchError):
    """A correction that would break a constraint or a limit (the message says which)."""

    code, http_status = "correction-refused", 409


class UndoRefused(FaceSearchError):
    """The entry cannot be undone: unknown, already undone, too old, or not undoable."""

    code, http_status = "undo-refused", 409


class ChangeSetInvalid(FaceSearchError):
    """A change set that breaks the people-store contract (a programming error, never
    retried)."""

    code = "changeset-invalid"
