"""Which HTTP server runs the query API's WSGI app, and how: ``facesearch serve --server``.

The app (:class:`facesearch.api.app.QueryApp`) is a plain WSGI callable; this module
only chooses the server around it. The default, waitress, was chosen by measurement
(``tests.bench.query --servers``, docs/api.md *Serving*): at 100k faces it had the best
latency and throughput at 16 connections and was level at 1, while gunicorn ``gthread``
and granian were slower at 4 and 16 on the same machine; the threaded development
server (werkzeug) was close but spawns a thread per connection without bound. waitress
is a production server: a bounded thread pool (a burst queues instead of spawning
threads), an asyncore front end that buffers whole requests before a thread sees
them (a slow client costs no thread), channel timeouts, pure Python (no build).
Pre-fork servers (gunicorn, granian) build one app per worker after the fork: nothing
that holds threads or sockets (onnxruntime sessions, gRPC channels) crosses a fork.

* ``gunicorn``: gunicorn's ``gthread`` workers (one process per worker, a thread pool in
  each); the pre-fork model Cloud Run's own functions-framework uses;
* ``granian``: Granian's Rust HTTP stack in front of the WSGI app (blocking threads);
* ``waitress``: one process, a bounded thread pool, pure Python (the default);
* ``werkzeug``: the threaded development server (:mod:`.server`), kept for comparison.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from facesearch.errors import ConfigError

if TYPE_CHECKING:
    from facesearch.config import Settings

ServerName = Literal["gunicorn", "granian", "waitress", "werkzeug"]
SERVERS: tuple[ServerName, ...] = ("gunicorn", "granian", "waitress", "werkzeug")
#: servers that fork workers, each building its own app (the others take one built here)
PRE_FORK: frozenset[str] = frozenset({"gunicorn", "granian"})
#: module:attribute of the app factory that worker processes import
FACTORY_TARGET = "facesearch.api.serving:wsgi_app"

WsgiApp = Callable[..., Any]


def wsgi_app(settings: Settings | None = None) -> WsgiApp:
    """The query API for this process: ``settings`` (a forked worker inherits them) or the
    environment's (a worker that imports :data:`FACTORY_TARGET`)."""
    from facesearch.backends import backend_for
    from facesearch.backends.services import query_app
    from facesearch.config import get_settings
    from facesearch.logs import configure_for
    from facesearch.telemetry import configure as configure_telemetry

    settings = settings or get_settings()
    configure_for(settings)
    configure_telemetry(settings, "serve")
    return query_app(backend_for(settings))


def serve(
    server: ServerName,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    app: WsgiApp | None = None,
    settings: Settings | None = None,
    socket_timeout_s: float = 10.0,
    max_connections: int = 64,
) -> None:
    """Run ``server`` until interrupted. ``app``: an app already built in this process
    (single-process servers use it; pre-fork servers build one per worker instead, from
    ``settings`` or the environment). ``max_connections``: connections served at once by
    werkzeug and waitress (more are refused / queued by the server)."""
    if workers < 1 or threads < 1:
        raise ConfigError("serve needs at least one worker and one thread")
    if server == "gunicorn":
        _gunicorn(host, port, workers=workers, threads=threads, settings=settings)
    elif server == "granian":
        _granian(host, port, workers=workers, threads=threads)
    elif server == "waitress":
        _waitress(
            app or wsgi_app(settings),
            host,
            port,
            threads=threads,
            timeout_s=socket_timeout_s,
            max_connections=max_connections,
        )
    elif server == "werkzeug":
        from facesearch.api.server import make_wsgi_server

        httpd = make_wsgi_server(
            app or wsgi_app(settings),
            host,
            port,
            socket_timeout_s=socket_timeout_s,
            max_connections=max_connections,
        )
        try:
            httpd.serve_forever()
        finally:
            httpd.server_close()
    else:
        raise ConfigError(f"unknown server {server!r} (one of {', '.join(SERVERS)})")


def _gunicorn(
    host: str, port: int, *, workers: int, threads: int, settings: Settings | None
) -> None:
    from gunicorn.app.base import BaseApplication

    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        # the app logs every request itself (JSON, without query strings: crop URL
        # signatures stay out of the logs); gunicorn's access log stays off
        "accesslog": None,
        "loglevel": "warning",
        # a slow client holds a thread at most this long per socket operation
        "keepalive": 5,
        "timeout": 0,  # no worker heartbeat kill: detections may legitimately take seconds
        "graceful_timeout": 10,
        "limit_request_line": 8190,
    }

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> WsgiApp:  # in each worker, after the fork
            return wsgi_app(settings)

    Application().run()


def _granian(host: str, port: int, *, workers: int, threads: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        FACTORY_TARGET,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        blocking_threads=threads,
        log_access=False,
        respawn_failed_workers=True,
    ).serve()


def _waitress(
    app: WsgiApp, host: str, port: int, *, threads: int, timeout_s: float, max_connections: int
) -> None:
    from waitress import serve as waitress_serve

    waitress_serve(
        app,
        host=host,
        port=port,
        threads=threads,
        connection_limit=max_connections,
        channel_timeout=max(1, int(timeout_s)),
        ident="facesearch",
        _quiet=True,
    )


def default_threads() -> int:
    """Threads per worker when not configured: functions-framework's own default on Cloud
    Run (4 per CPU), enough to overlap I/O waits (metadata, nonce claims) with the
    GIL-free parts (USearch, onnxruntime)."""
    return max(4, 4 * (os.cpu_count() or 1))
