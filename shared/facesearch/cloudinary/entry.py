"""The webhook over HTTP: the one place where its errors become status codes.

* 200 ``application/json``: queued, duplicate, ignored or forgotten (see
  :mod:`facesearch.cloudinary.webhook`); Cloudinary stops retrying.
* 401 problem+json: missing, malformed, stale or wrong signature. The body says
  only "unauthorized"; the reason is in the log.
* 400 (signed but unreadable notification), 405 (not POST), 413 (body over
  :data:`MAX_NOTIFICATION_BYTES`), 503 (a dependency is down, or a delete has
  to wait for its ingest: Cloudinary retries), 500 (anything unexpected).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import SpanKind
from werkzeug.wrappers import Request, Response

from facesearch.api.bodies import read_body
from facesearch.cloudinary.webhook import CloudinaryWebhook
from facesearch.errors import FaceSearchError, MethodNotAllowed, SignatureError
from facesearch.logs import log_fields
from facesearch.telemetry import extract, span

logger = logging.getLogger("facesearch.cloudinary")

#: Cloudinary notifications are a few KiB; a multi-resource delete stays far below this.
MAX_NOTIFICATION_BYTES = 1 << 20
#: a notification of a few KiB that takes longer than this to arrive is refused (408)
BODY_READ_TIMEOUT_S = 10.0
UNAUTHORIZED_DETAIL = "the notification signature could not be verified"


def _problem(error: FaceSearchError, request_id: str, path: str) -> Response:
    from facesearch.api.problems import problem_response

    shown = error
    if isinstance(error, SignatureError):  # never tell a caller which check failed
        shown = SignatureError(UNAUTHORIZED_DETAIL)
    elif error.http_status >= 500:  # internals (topic paths, hosts) stay in the log
        shown = FaceSearchError("temporarily unavailable, retry later")
        shown.code, shown.http_status = error.code, error.http_status
    response = problem_response(shown, request_id=request_id, instance=path)
    if isinstance(error, SignatureError):
        response.headers["WWW-Authenticate"] = 'CloudinarySignature realm="facesearch"'
    return response


def handle_http(
    request: Request, webhook: CloudinaryWebhook | Callable[[], CloudinaryWebhook]
) -> Response:
    """Answer one request. ``webhook`` may be a getter, so that a failure to build it
    (no secret configured, Secret Manager down) is answered here as problem+json too."""
    with span(
        "cloudinary.notification",
        parent=extract(dict(request.headers)),
        kind=SpanKind.SERVER,
    ) as current:
        response = _handle_http(request, webhook)
        current.set_attribute("http.response.status_code", response.status_code)
        return response


def _handle_http(
    request: Request, webhook: CloudinaryWebhook | Callable[[], CloudinaryWebhook]
) -> Response:
    request_id = request.headers.get("X-Cloud-Trace-Context", "").split("/")[0] or uuid.uuid4().hex
    fields: dict[str, Any] = {"request_id": request_id}
    try:
        if request.method != "POST":
            raise MethodNotAllowed(f"{request.method} is not allowed; Cloudinary POSTs")
        service = webhook if isinstance(webhook, CloudinaryWebhook) else webhook()
        headers = dict(request.headers)
        service.verifier.precheck(headers)  # before reading: no stale or unsigned bodies
        body = read_body(request, MAX_NOTIFICATION_BYTES, deadline_s=BODY_READ_TIMEOUT_S)
        result = service.handle(body, headers)
    except FaceSearchError as error:
        level = logging.WARNING if error.http_status < 500 else logging.ERROR
        logger.log(
            level,
            "notification refused",
            extra=log_fields(
                status=error.http_status,
                **error.log_fields(),
                **fields,
            ),
        )
        return _problem(error, request_id, request.path)
    except Exception:
        logger.exception("unhandled error", extra=log_fields(status=500, **fields))
        return _problem(FaceSearchError("internal error"), request_id, request.path)
    logger.info("notification handled", extra=log_fields(status=200, **result.to_dict(), **fields))
    return Response(
        json.dumps({**result.to_dict(), "request_id": request_id}),
        status=200,
        content_type="application/json",
    )
