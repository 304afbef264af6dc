"""The local HTTP server for ``facesearch serve``: bounded threads, timeouts, quiet logs.

Werkzeug's development server as configured by ``run_simple`` waits forever for a
slow client and logs every request line, query string included — which for crop
URLs means their ``sig`` credential. Here each socket read or write is bounded by
``socket_timeout_s`` (the app adds a whole-body deadline on top), and the only
access log is the application's own JSON line, which records the path without the
query string.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from facesearch.telemetry import metrics

#: a socket operation (one read of headers or body, one write) waits at most this long
SOCKET_TIMEOUT_S = 10.0
#: connections handled at once unless told otherwise (``FACESEARCH_SERVE_MAX_CONNECTIONS``)
MAX_CONNECTIONS = 64
#: refusals being written at once (each reads what the client already sent, briefly)
MAX_REFUSING = 16
REFUSAL_READ_S = 0.5

_BODY = json.dumps(
    {
        "type": "https://facesearch.dev/problems/overloaded",
        "title": "Service Unavailable",
        "status": 503,
        "code": "overloaded",
        "detail": "the server is at its connection limit; retry shortly",
    }
).encode()
#: the answer to a connection beyond the limit, written before reading its request
OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/problem+json\r\n"
    b"Retry-After: 1\r\n"
    b"Cache-Control: no-store\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class QuietTimedHandler(WSGIRequestHandler):
    """Per-operation socket timeout; no request-line logging (it would leak query strings)."""

    timeout = SOCKET_TIMEOUT_S

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The application logs each request itself, without credentials."""


class BoundedWSGIServer(ThreadedWSGIServer):
    """A thread per connection, but at most ``max_connections`` of them: the next one is
    answered 503 + ``Retry-After`` at once, so overload costs a few bytes, never a thread,
    a body buffer or a crash. (Why not gunicorn here: its workers queue excess
    connections in the listen backlog, where clients wait into their timeouts instead of
    hearing "retry in 1 s"; and every worker process would load the models again.)"""

    def __init__(self, *args: Any, max_connections: int = MAX_CONNECTIONS, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusers = threading.BoundedSemaphore(MAX_REFUSING)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            metrics.record_shed("connections")
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        """Write the 503, then read briefly what the client sent (closing on unread data
        would reset the connection before the client reads the answer)."""
        if not self._refusers.acquire(blocking=False):
            self.shutdown_request(request)  # refusals themselves are bounded
            return

        def refuse() -> None:
            try:
                request.settimeout(REFUSAL_READ_S)
                request.sendall(OVERLOADED)
                request.shutdown(socket.SHUT_WR)
                while request.recv(65536):
                    pass
            except OSError:
                pass
            finally:
                self.shutdown_request(request)
                self._refusers.release()

        threading.Thread(target=refuse, daemon=True).start()


def make_wsgi_server(
    app: Callable[..., Any],
    host: str,
    port: int,
    *,
    socket_timeout_s: float = SOCKET_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> BaseWSGIServer:
    """A bounded threaded server for ``app``; ``serve_forever()`` it, ``shutdown()`` to stop."""
    handler = type("Handler", (QuietTimedHandler,), {"timeout": socket_timeout_s})
    return BoundedWSGIServer(host, port, app, handler=handler, max_connections=max_connections)
