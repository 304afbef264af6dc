"""Reading request bodies from strangers: length declared, size capped, time bounded.

Shared by the query API and the Cloudinary webhook; both check credentials that
need no body first, then read the body through :func:`read_body`.
"""

from __future__ import annotations

import io
import time

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request

from facesearch.errors import BadRequest, LengthRequired, RequestTimeout, RequestTooLarge

BODY_CHUNK_BYTES = 256 * 1024


def read_body(request: Request, max_bytes: int, *, deadline_s: float) -> bytes:
    """The body, if it declares a length within the cap, read before a deadline.

    A chunked body has no length to check in advance, and reading it to find out is
    exactly what an attacker wants: it is refused with 411 (clients send lengths). A
    body that trickles in slower than ``deadline_s`` gets 408 (each read is also bounded
    by the server's socket timeout), so a slow client cannot hold a worker for long.
    """
    if request.headers.get("Transfer-Encoding", "").strip().lower() not in ("", "identity"):
        raise LengthRequired("send the body with a Content-Length, not chunked")
    length = request.content_length or 0
    if length > max_bytes:
        raise RequestTooLarge(f"a body of {length} bytes is over the {max_bytes}-byte limit")
    deadline = time.monotonic() + deadline_s
    raw = request.environ.get("wsgi.input")
    # read1: one socket read per call, so a dripping client meets the deadline check often;
    # servers whose input has no read1 bound slow bodies themselves (worker timeouts)
    read = getattr(raw, "read1", None) or request.stream.read
    chunks: list[bytes] = []
    received = 0
    while received < length:
        try:
            chunk = read(min(BODY_CHUNK_BYTES, length - received))
        except (OSError, ClientDisconnected) as exc:  # a socket timeout, or the client left
            raise RequestTimeout("the request body did not arrive in time") from exc
        if not chunk:
            raise BadRequest(f"the body ended after {received} of {length} bytes")
        chunks.append(chunk)
        received += len(chunk)
        if received < length and time.monotonic() > deadline:
            raise RequestTimeout(f"the request body did not arrive within {deadline_s:.0f} s")
    body = b"".join(chunks)
    # later readers (functions-framework reads the body again after the response) see
    # the same bytes instead of a stream we drained underneath werkzeug
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.__dict__.pop("stream", None)
    return body
