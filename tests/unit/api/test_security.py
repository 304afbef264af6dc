"""Regression tests for what an adversarial probe of the API found (one test per finding).

Pre-authentication body buffering, 500s from parse failures, slow image URLs outside
the concurrency limit, credentials in the access log, links built from the Host
header, storage reads per health probe, internal source paths in answers. The raw
socket cases (slow and lying bodies) are in ``test_raw_socket.py``.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from pathlib import Path

import pytest

from facesearch.auth import sign_request
from facesearch.auth.signing import HEADER_KEY_ID, HEADER_TIMESTAMP
from facesearch.config import Settings, load_settings
from facesearch.storage.blob import BlobStore
from facesearch.vision.pipeline import FacePipeline
from tests.data.image_corpus import PHOTOS
from tests.support.api import KEY, Env, SignedClient, build_env

OBAMA_1 = (PHOTOS / "labelled" / "obama" / "obama_1.jpg").read_bytes()
SMALL = {"obama-1": PHOTOS / "labelled" / "obama" / "obama_1.jpg"}


def _settings(tmp: Path, **overrides: object) -> Settings:
    return load_settings(data_dir=tmp, index_auto_compact=False, **overrides)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    pipe = FacePipeline(_settings(tmp_path_factory.mktemp("p")))
    pipe.warm_up()
    return pipe


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, pipeline: FacePipeline) -> Env:
    settings = _settings(tmp_path_factory.mktemp("sec"), index_refresh_interval_s=3600.0)
    return build_env(settings, pipeline, images=SMALL)


@pytest.fixture
def client(env: Env) -> SignedClient:
    return SignedClient(env.app)


def _code(response: object) -> tuple[int, str]:
    body = response.get_json() or {}  # type: ignore[attr-defined]
    return response.status_code, str(body.get("code"))  # type: ignore[attr-defined]


def _nested(depth: int) -> str:
    """JSON text of a list nested ``depth`` deep (json.dumps itself would recurse)."""
    return "[" * depth + "1" + "]" * depth


# --- 1. nothing is read before the cheap checks ----------------------------------------------


class _ExplodingStream(io.BytesIO):
    """A body that fails the test if anything reads it."""

    def read(self, *args: object) -> bytes:  # type: ignore[override]
        raise AssertionError("the body was read before the request was authenticated")

    readline = read  # type: ignore[assignment]


def _unread_body(length: int) -> dict[str, object]:
    """A declared body of ``length`` bytes that fails the test if it is read."""
    return {"CONTENT_LENGTH": str(length), "wsgi.input": _ExplodingStream()}


@pytest.mark.parametrize(
    "headers",
    [
        {HEADER_KEY_ID: "no-such-key"},  # well-formed, unknown key
        {HEADER_TIMESTAMP: "1000"},  # a known key, 50 years stale
    ],
)
def test_forged_headers_are_refused_before_the_body_is_read(
    client: SignedClient, headers: dict[str, str]
) -> None:
    signed = {**sign_request(KEY, "POST", "/v1/search", b"x" * 10), **headers}
    response = client.wsgi.post(
        "/v1/search",
        headers={**signed, "Content-Type": "image/jpeg"},
        environ_overrides=_unread_body(30 << 20),
    )
    assert response.status_code == 403


def test_a_replayed_nonce_is_refused_before_the_body_is_read(client: SignedClient) -> None:
    headers = sign_request(KEY, "GET", "/v1/stats")
    assert client.wsgi.get("/v1/stats", headers=headers).status_code == 200
    response = client.wsgi.get(
        "/v1/stats",
        headers=headers,
        environ_overrides=_unread_body(1000),
    )
    assert response.status_code == 403


def test_chunked_bodies_are_refused_before_reading(client: SignedClient) -> None:
    headers = sign_request(KEY, "POST", "/v1/search", b"")
    response = client.wsgi.post(
        "/v1/search",
        headers={**headers, "Content-Type": "image/jpeg", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": _ExplodingStream()},
    )
    assert _code(response) == (411, "length-required")


# --- 2. every parse failure is a 400 -----------------------------------------------------


def test_deeply_nested_json_is_a_400(client: SignedClient) -> None:
    for depth in (50, 5_000, 50_000):
        body = ('{"embedding": ' + _nested(depth) + "}").encode()
        response = client.post("/v1/search", body=body, content_type="application/json")
        assert _code(response) == (400, "invalid-request"), depth


def test_deep_or_huge_person_metadata_is_a_400(client: SignedClient) -> None:
    for metadata in ('{"x": ' + _nested(5_000) + "}", '{"x": ' + _nested(12) + "}"):
        body = ('{"name": "n", "metadata": ' + metadata + "}").encode()
        response = client.post("/v1/persons", body=body, content_type="application/json")
        assert _code(response) == (400, "invalid-request")
    huge = {"name": "n", "metadata": {"x": "a" * 20_000}}
    assert _code(client.post("/v1/persons", json_body=huge)) == (400, "invalid-request")


@pytest.mark.parametrize("route", ["/v1/faces", "/v1/persons"])
@pytest.mark.parametrize("value", [[["x"]], [{"a": 1}], [None], [True]])
def test_cursors_accept_only_their_own_shape(
    client: SignedClient, route: str, value: list[object]
) -> None:
    kind = "faces" if route == "/v1/faces" else "persons"
    raw = json.dumps([kind, value]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = client.get(f"{route}?cursor={cursor}")
    assert _code(response) == (400, "invalid-cursor")


# --- 3. a slow image URL holds a detection slot ------------------------------------------------


def test_image_url_downloads_count_against_the_concurrency_limit(env: Env) -> None:
    searcher = env.service.searcher
    slots = env.settings.api.query_max_concurrent_images
    started, release = threading.Semaphore(0), threading.Event()

    def slow_fetch(url: str) -> bytes:
        started.release()
        release.wait(10)
        return OBAMA_1

    client = SignedClient(env.app)
    original = searcher.fetch
    searcher.fetch = slow_fetch
    results: list[int] = []

    def search_by_url() -> None:
        body = {"image_url": "https://img.example.com/x.jpg"}
        results.append(client.post("/v1/search", json_body=body).status_code)

    threads = [threading.Thread(target=search_by_url) for _ in range(slots)]
    try:
        for t in threads:
            t.start()
        for _ in range(slots):
            assert started.acquire(timeout=10)
        # every slot is now held by a download: an image search must wait its turn (429)
        busy = client.post("/v1/search", body=OBAMA_1, content_type="image/jpeg")
        assert _code(busy) == (429, "rate-limited")
    finally:
        release.set()
        for t in threads:
            t.join(30)
        searcher.fetch = original
    assert results == [200] * slots


# --- 5. links come from the configured public URL, not the Host header ---------------------


def test_crop_urls_ignore_the_host_header(client: SignedClient) -> None:
    headers = sign_request(KEY, "GET", "/v1/images/obama-1")
    response = client.wsgi.get(
        "/v1/images/obama-1", headers=headers, base_url="http://evil.example:666"
    )
    assert response.status_code == 200
    url = response.get_json()["faces"][0]["crop_url"]
    assert url.startswith("http://localhost/v1/crops/") and "evil" not in url


# --- 7. cheap health probes, no internal paths, Cloudinary path tricks ----------------------


class _CountingStore:
    """Wraps a blob store and counts reads (a health probe must not cost one)."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def read(self, name: str) -> tuple[bytes, int]:
        self.reads += 1
        return self.inner.read(name)

    def stat(self, name: str) -> int | None:
        self.reads += 1
        return self.inner.stat(name)


def test_health_probes_do_not_read_the_index_each_time(client: SignedClient, env: Env) -> None:
    reader = env.service.index.reader
    counting = _CountingStore(reader.store)
    reader.store = counting  # type: ignore[assignment]
    try:
        for _ in range(20):
            assert client.get("/healthz", sign=False).status_code == 200
    finally:
        reader.store = counting.inner
    assert counting.reads == 0  # the refresh interval (an hour here) decides, not the probes


def test_image_answers_show_no_internal_source_path(env: Env, client: SignedClient) -> None:
    from dataclasses import replace

    image = env.store.get_image("obama-1")
    assert image is not None
    env.store.put_image(replace(image, source="gs://internal-bucket/events/2026/a.jpg#1712"))
    body = client.get("/v1/images/obama-1").get_json()
    assert body["source"] == "events/2026/a.jpg"
