"""Loopback fault injectors for the fault bench: a TCP proxy that can "restart" a service
(drop every connection, refuse new ones for a while, then carry on to the same backend),
an HTTP proxy that can also answer 429 / 503 itself or answer slowly, and a script that
SIGKILLs an embedded ingest between its record writes and its index commit.

Everything listens on 127.0.0.1 and forwards to 127.0.0.1: no other address is touched.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.emulators import free_port

#: ingests the folder in sorted order and SIGKILLs itself after the ``n``-th done image,
#: i.e. after its records are written and before the batch's index commit
EMBEDDED_KILLER = """
import os, signal, sys
from pathlib import Path
from facesearch.config import load_settings
from facesearch.local import EmbeddedSystem, iter_image_files

system = EmbeddedSystem(load_settings(data_dir=sys.argv[1], log_json=False))
done = 0
def on_result(path, outcome):
    global done
    if outcome.outcome == "done":
        done += 1
        if done >= int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
system.ingest_files(list(iter_image_files([Path(sys.argv[2])])), on_result=on_result)
"""


class TcpProxy:
    """127.0.0.1:port -> upstream; :meth:`outage` resets every connection and refuses for
    ``seconds`` (a restart behind a stable address, with the backend's state kept)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._down_until = 0.0
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def outage(self, seconds: float) -> None:
        with self._lock:
            self._down_until = time.monotonic() + seconds
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                # linger 0: close with a reset, as a crashed server's kernel does
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    def close(self) -> None:
        self._stop = True
        self.outage(0)
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._conns -= {src, dst}


HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class HttpFaultProxy:
    """An HTTP/1.1 reverse proxy to one upstream that injects faults on request:

    * :meth:`errors` — for ``seconds``, answer a share of requests itself with ``status``
      (429 or 503, with ``Retry-After``) without forwarding them;
    * :meth:`slow` — for ``seconds``, hold each response ``delay_s`` before answering;
    * :meth:`outage` — for ``seconds``, drop connections without an answer (a restart).
    """

    def __init__(self, upstream_port: int, *, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.mode: dict[str, Any] = {}
        self.injected: dict[str, int] = {
            "429": 0, "503": 0, "slow": 0, "dropped": 0, "duplicated": 0, "reordered": 0,
        }  # fmt: skip
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any  # noqa: N815

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # resets are what this proxy is for: no traceback per connection

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def errors(self, status: int, seconds: float, share: float = 0.6) -> None:
        with self.lock:
            self.mode["errors"] = (status, share, time.monotonic() + seconds)

    def slow(self, delay_s: float, seconds: float) -> None:
        with self.lock:
            self.mode["slow"] = (delay_s, time.monotonic() + seconds)

    def outage(self, seconds: float) -> None:
        with self.lock:
            self.mode["outage"] = time.monotonic() + seconds

    def duplicate(self, seconds: float, share: float = 0.5) -> None:
        """For ``seconds``, deliver a share of requests twice (the second answer unused)."""
        with self.lock:
            self.mode["duplicate"] = (share, time.monotonic() + seconds)

    def reorder(self, max_delay_s: float, seconds: float, share: float = 0.5) -> None:
        """For ``seconds``, hold a share of requests up to ``max_delay_s`` before
        forwarding them, so later ones overtake them."""
        with self.lock:
            self.mode["reorder"] = (max_delay_s, share, time.monotonic() + seconds)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _active(self, name: str) -> Any:
        with self.lock:
            value = self.mode.get(name)
            if value is None:
                return None
            until = value if isinstance(value, float) else value[-1]
            if time.monotonic() >= until:
                del self.mode[name]
                return None
            return value

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=300)
        try:
            upstream.request(method, path, body=body, headers=headers)
            response = upstream.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            upstream.close()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        if self._active("outage") is not None:
            with self.lock:
                self.injected["dropped"] += 1
            req.close_connection = True
            with contextlib.suppress(OSError):
                req.connection.shutdown(socket.SHUT_RDWR)
            return
        errors = self._active("errors")
        if errors is not None and self.rng.random() < errors[1]:
            status = errors[0]
            with self.lock:
                self.injected[str(status)] += 1
            payload = b'{"error": {"code": %d, "message": "injected"}}' % status
            req.send_response(status)
            req.send_header("Content-Type", "application/json")
            req.send_header("Retry-After", "1")
            req.send_header("Content-Length", str(len(payload)))
            req.end_headers()
            req.wfile.write(payload)
            return
        slow = self._active("slow")
        reorder = self._active("reorder")
        if reorder is not None and self.rng.random() < reorder[1]:
            with self.lock:
                self.injected["reordered"] += 1
            time.sleep(self.rng.uniform(0.2, reorder[0]))
        duplicate = self._active("duplicate")
        copies = 2 if duplicate is not None and self.rng.random() < duplicate[0] else 1
        headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            status, response_headers, data = self._forward(req.command, req.path, body, headers)
            if copies == 2:
                with self.lock:
                    self.injected["duplicated"] += 1
                with contextlib.suppress(OSError):
                    self._forward(req.command, req.path, body, headers)
        except OSError:
            req.send_error(502)
            return
        if slow is not None:
            with self.lock:
                self.injected["slow"] += 1
            time.sleep(slow[0])
        req.send_response(status)
        for key, value in response_headers:
            if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                req.send_header(key, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)


__all__ = ["HttpFaultProxy", "TcpProxy"]
