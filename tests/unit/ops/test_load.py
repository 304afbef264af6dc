"""Overload is refused gracefully: 503/429 with Retry-After, never a crash."""

from __future__ import annotations

import socket
import threading

import pytest

from facesearch.api.server import make_wsgi_server


def test_a_connection_beyond_the_limit_gets_503_with_retry_after() -> None:
    release = threading.Event()

    def app(environ: dict, start_response: object) -> list[bytes]:
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    server = make_wsgi_server(app, "127.0.0.1", 0, max_connections=1)
    port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        held = socket.create_connection(("127.0.0.1", port))
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := extra.recv(4096):
            answer += chunk
        head = answer.decode()
        assert head.startswith("HTTP/1.1 503") and "Retry-After: 1" in head
        assert '"code": "overloaded"' in head
        release.set()
        assert held.recv(4096).startswith(b"HTTP/1.")  # the held one is served normally
        held.close()
    finally:
        release.set()
        server.shutdown()
        thread.join(5)


@pytest.mark.slow
def test_bounded_load_run_has_capacity_and_only_graceful_refusals() -> None:
    from tests.bench.load import main

    summary = main(["--short", "--levels", "2,96", "--seconds", "1.5"])
    assert summary["errors"] == 0
    assert summary["refusals_without_retry_after"] == 0
    assert summary["server_alive"]
    assert summary["capacity_rps"]["face"] > 0 and summary["capacity_rps"]["image"] > 0
    assert summary["refused_429"] + summary["refused_503"] > 0  # 96 image searches shed
