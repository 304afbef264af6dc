"""Slow, lying and chunked bodies over a real socket, against the servers we run.

The query API behind ``facesearch serve``'s server (:mod:`facesearch.api.server`) and
the Cloudinary webhook behind the same server: every case must end in a typed answer
(never 5xx) within the documented timeouts — the per-operation socket timeout and the
whole-body read deadline — and no request line with credentials may reach a log.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from werkzeug.wrappers import Request

from facesearch.api.server import make_wsgi_server
from facesearch.auth import sign_request
from facesearch.auth.signing import HEADER_KEY_ID
from facesearch.backends import services
from facesearch.backends.local import LocalBackend
from facesearch.cloudinary.entry import handle_http
from facesearch.config import load_settings
from facesearch.vision.pipeline import FacePipeline
from tests.data.image_corpus import PHOTOS
from tests.support.api import KEY, Env, build_env
from tests.support.cloudinary import CLOUD, TEST_SECRET, raw, sample, sign

SOCKET_TIMEOUT_S = 1.0
BODY_DEADLINE_S = 2.0
#: the longest any answer may take: the read deadline plus one socket timeout, plus slack
LIMIT_S = BODY_DEADLINE_S + SOCKET_TIMEOUT_S + 1.5


@contextmanager
def serving(app: Callable[..., Any]) -> Iterator[int]:
    server = make_wsgi_server(app, "127.0.0.1", 0, socket_timeout_s=SOCKET_TIMEOUT_S)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def exchange(
    port: int, head: str, body_parts: list[tuple[bytes, float]] | None = None
) -> tuple[int, float]:
    """Send a request head, then body parts (bytes, pause before the next); stop sending
    as soon as an answer arrives. Returns (status, seconds until the answer)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=LIMIT_S + 15) as conn:
        conn.sendall(head.encode("latin-1"))
        for part, pause in body_parts or []:
            if select.select([conn], [], [], 0)[0]:
                break  # answered already
            try:
                conn.sendall(part)
            except OSError:
                break  # the server answered and closed: that is the point
            if select.select([conn], [], [], pause)[0]:
                break
        data = conn.recv(4096)
        elapsed = time.monotonic() - started
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, elapsed


def _head(method: str, path: str, headers: dict[str, str]) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("raw"),
        index_auto_compact=False,
        body_read_timeout_s=BODY_DEADLINE_S,
    )
    pipeline = FacePipeline(settings)
    pipeline.warm_up()
    return build_env(
        settings, pipeline, images={"obama-1": PHOTOS / "labelled" / "obama" / "obama_1.jpg"}
    )


@pytest.fixture(scope="module")
def api_port(env: Env) -> Iterator[int]:
    with serving(env.app) as port:
        yield port


def _signed(body: bytes, **extra: str) -> dict[str, str]:
    return {**sign_request(KEY, "POST", "/v1/search", body), "Content-Type": "image/jpeg", **extra}


def test_lying_length_with_forged_headers_is_refused_without_waiting(api_port: int) -> None:
    headers = _signed(b"x", **{HEADER_KEY_ID: "nobody", "Content-Length": str(30 << 20)})
    status, took = exchange(api_port, _head("POST", "/v1/search", headers), [(b"x" * 1024, 0)])
    assert status == 403 and took < 1.0  # not waiting for the 30 MB


def test_chunked_body_is_refused_before_it_is_read(api_port: int) -> None:
    headers = _signed(b"", **{"Transfer-Encoding": "chunked"})
    chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
    status, took = exchange(api_port, _head("POST", "/v1/search", headers), [(chunk, 0.2)] * 40)
    assert status == 411 and took < 1.5  # not 40 MB read, then a 403


def test_a_valid_key_with_a_stalled_body_times_out(api_port: int) -> None:
    headers = _signed(b"whatever", **{"Content-Length": str(30 << 20)})
    status, took = exchange(api_port, _head("POST", "/v1/search", headers), [(b"x" * 1024, 30.0)])
    assert status == 408 and took < LIMIT_S


def test_a_dripping_body_hits_the_read_deadline(api_port: int) -> None:
    body = b"x" * 100
    headers = _signed(body, **{"Content-Length": str(len(body))})
    drip = [(body[i : i + 1], 0.05) for i in range(len(body))]  # 5 s of body > 2 s deadline
    status, took = exchange(api_port, _head("POST", "/v1/search", headers), drip)
    assert status == 408 and took < LIMIT_S


def test_a_body_longer_than_declared_is_just_a_bad_signature(api_port: int) -> None:
    body = b"y" * 100
    headers = _signed(body, **{"Content-Length": "10"})
    status, took = exchange(api_port, _head("POST", "/v1/search", headers), [(body, 0)])
    assert status == 403 and took < LIMIT_S


def test_crop_url_credentials_never_reach_a_log(
    api_port: int, env: Env, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Regression: the development server logged full request lines, `?expires=..&sig=..`
    included; anyone reading the log could fetch faces for the URL's lifetime."""
    face = env.service.records.get_image("obama-1").faces[0]
    assert face.crop_url is not None and "sig=" in face.crop_url
    path = face.crop_url.split("localhost", 1)[1]
    with caplog.at_level(logging.DEBUG):
        status, _ = exchange(api_port, _head("GET", path, {}))
    assert status == 200
    logged = [
        r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str) for r in caplog.records
    ]
    out, err = capfd.readouterr()
    assert logged, "the request was not logged at all"
    for text in [*logged, out, err]:
        assert "sig=" not in text and "expires=" not in text


# --- the Cloudinary webhook behind the same server --------------------------------------------


@pytest.fixture(scope="module")
def webhook_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("hook"),
        cloudinary_cloud_name=CLOUD,
        cloudinary_api_secret=TEST_SECRET,
    )
    webhook = services.cloudinary_webhook(LocalBackend(settings), forget_image=lambda i: 0)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return handle_http(Request(environ), webhook)(environ, start_response)

    with serving(app) as port:
        yield port


def test_webhook_refuses_unsigned_bodies_without_reading_them(webhook_port: int) -> None:
    head = _head("POST", "/", {"Content-Type": "application/json", "Content-Length": str(1 << 20)})
    status, took = exchange(webhook_port, head, [(b"{" * 100, 0)])
    assert status == 401 and took < 1.0


def test_webhook_dripping_body_times_out(webhook_port: int) -> None:
    body = raw(sample("upload"))
    headers = {**sign(body), "Content-Type": "application/json", "Content-Length": str(len(body))}
    drip = [(body[i : i + 1], 1.5) for i in range(len(body))]
    status, took = exchange(webhook_port, _head("POST", "/", headers), drip[:3])
    assert status == 408 and took < 10.0 + SOCKET_TIMEOUT_S + 4.5


def test_webhook_deep_json_is_a_400(webhook_port: int) -> None:
    body = ('{"notification_type": "upload", "x": ' + "[" * 50_000 + "]" * 50_000 + "}").encode()
    headers = {**sign(body), "Content-Type": "application/json", "Content-Length": str(len(body))}
    status, took = exchange(webhook_port, _head("POST", "/", headers), [(body, 0)])
    assert status == 400 and took < LIMIT_S
