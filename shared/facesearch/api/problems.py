"""The one place where errors become HTTP responses: RFC 9457 problem+json.

Every :class:`facesearch.errors.FaceSearchError` carries its status and a
stable ``code``; the problem ``type`` is ``urn:facesearch:problem:<code>`` so
clients can branch on it without parsing prose. Anything else is a 500 whose
body says nothing about the internals (the log has the traceback and the
request id that the body repeats).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from facesearch.errors import (
    BadRequest,
    FaceSearchError,
    RateLimited,
    RequestTooLarge,
    SignatureError,
)
from facesearch.logs import log_fields

logger = logging.getLogger(__name__)

PROBLEM_TYPE_PREFIX = "urn:facesearch:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_type(code: str) -> str:
    return PROBLEM_TYPE_PREFIX + code


def problem_body(
    error: FaceSearchError, *, request_id: str, instance: str | None = None
) -> dict[str, Any]:
    status = error.http_status
    body: dict[str, Any] = {
        "type": problem_type(error.code),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": error.message,
        "code": error.code,
        "request_id": request_id,
    }
    if instance:
        body["instance"] = instance
    errors = getattr(error, "errors", None)
    if errors:
        body["errors"] = errors
    return body


def problem_response(
    error: FaceSearchError, *, request_id: str, instance: str | None = None
) -> Response:
    body = problem_body(error, request_id=request_id, instance=instance)
    response = Response(json.dumps(body), status=error.http_status, content_type=PROBLEM_MEDIA_TYPE)
    if isinstance(error, SignatureError):
        response.headers["WWW-Authenticate"] = 'FacesearchHMAC realm="facesearch"'
    retry_after = getattr(error, "retry_after_s", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    elif isinstance(error, RateLimited) or error.http_status == 503:
        response.headers["Retry-After"] = "1"
    return response


def to_error(exc: BaseException) -> FaceSearchError:
    """Map anything raised while handling a request to a typed error."""
    if isinstance(exc, FaceSearchError):
        return exc
    if isinstance(exc, HTTPException):  # werkzeug: body too large, bad multipart, ...
        code = exc.code or 400
        if code == 413:
            return RequestTooLarge("request body too large")
        error = BadRequest(exc.description or "bad request")
        return error
    internal = FaceSearchError("internal error")
    return internal


def log_unexpected(exc: BaseException, *, request_id: str, path: str) -> None:
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra=log_fields(request_id=request_id, path=path, error_type=type(exc).__name__),
    )


def failure_response(exc: BaseException, *, request_id: str, path: str) -> Response:
    """What a request that raised ``exc`` answers: its problem+json, with the traceback
    logged when the failure was not a typed error (the body then says nothing of it).

    The one ``except`` of both WSGI layers (the API and the console) ends here.
    ``KeyboardInterrupt`` and ``SystemExit`` are not failures of the request: they go on.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc
    error = to_error(exc)
    if not isinstance(exc, FaceSearchError | HTTPException):
        log_unexpected(exc, request_id=request_id, path=path)
    return problem_response(error, request_id=request_id, instance=path)
