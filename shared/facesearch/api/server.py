"""The local HTTP server for ``facesearch serve``: threaded, with timeouts, quiet logs.

Werkzeug's development server as configured by ``run_simple`` waits forever for a
slow client and logs every request line, query string included — which for crop
URLs means their ``sig`` credential. Here each socket read or write is bounded by
``socket_timeout_s`` (the app adds a whole-body deadline on top), and the only
access log is the application's own JSON line, which records the path without the
query string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

#: a socket operation (one read of headers or body, one write) waits at most this long
SOCKET_TIMEOUT_S = 10.0


class QuietTimedHandler(WSGIRequestHandler):
    """Per-operation socket timeout; no request-line logging (it would leak query strings)."""

    timeout = SOCKET_TIMEOUT_S

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The application logs each request itself, without credentials."""


def make_wsgi_server(
    app: Callable[..., Any], host: str, port: int, *, socket_timeout_s: float = SOCKET_TIMEOUT_S
) -> BaseWSGIServer:
    """A threaded server for ``app``; ``serve_forever()`` it, ``shutdown()`` to stop."""
    handler = type("Handler", (QuietTimedHandler,), {"timeout": socket_timeout_s})
    return make_server(host, port, app, threaded=True, request_handler=handler)
