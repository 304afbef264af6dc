"""Signing and verification: valid requests pass; forged, stale, replayed, tampered fail."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from facesearch.auth import SigningKey, StaticKeyRing, Verifier, sign_request
from facesearch.auth.keys import RefreshingKeyRing
from facesearch.auth.signing import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    canonical_query,
    query_pairs,
)
from facesearch.auth.verify import RecentNonces
from facesearch.backends.local import LocalBackend
from facesearch.client import client_key_from_settings
from facesearch.config import load_settings
from facesearch.errors import ConfigError, Forbidden, SignatureError, TransientError
from facesearch.storage.local.nonces import SqliteNonceStore

SECRET_A = "a" * 40
SECRET_B = "b" * 40
NOW = 1_800_000_000


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def verifier(tmp_path: Path) -> Verifier:
    keys = StaticKeyRing({"ka": SECRET_A, "kb": SECRET_B})
    return Verifier(keys, SqliteNonceStore(tmp_path / "n.sqlite3"), clock=Clock(NOW))


def _check(v: Verifier, method: str, url: str, headers: dict[str, str], body: bytes = b"") -> str:
    path, _, query = url.partition("?")
    return v.verify(method, path, query_pairs(query), headers, body).key_id


def test_valid_request_passes_and_names_the_key(verifier: Verifier) -> None:
    body = b'{"k": 5}'
    headers = sign_request(
        SigningKey("kb", SECRET_B), "POST", "/v1/search?k=5", body, timestamp=NOW
    )
    assert _check(verifier, "POST", "/v1/search?k=5", headers, body) == "kb"


def test_query_order_and_header_case_do_not_matter(verifier: Verifier) -> None:
    headers = sign_request(SigningKey("ka", SECRET_A), "GET", "/v1/faces?b=2&a=1", timestamp=NOW)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert _check(verifier, "get", "/v1/faces?a=1&b=2", lowered) == "ka"


def test_canonical_query_encodes_and_sorts() -> None:
    assert canonical_query([("b", "x y"), ("a", "2"), ("a", "1"), ("c", "é/")]) == (
        "a=1&a=2&b=x%20y&c=%C3%A9%2F"
    )


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda m, u, h, b: (m, u, h, b + b"x"), id="body"),
        pytest.param(lambda m, u, h, b: ("PUT", u, h, b), id="method"),
        pytest.param(lambda m, u, h, b: (m, "/v1/match", h, b), id="path"),
        pytest.param(lambda m, u, h, b: (m, u + "?k=50", h, b), id="query"),
        pytest.param(lambda m, u, h, b: (m, u, {**h, HEADER_NONCE: "x" * 24}, b), id="nonce"),
        pytest.param(
            lambda m, u, h, b: (m, u, {**h, HEADER_TIMESTAMP: str(NOW + 1)}, b), id="timestamp"
        ),
        pytest.param(lambda m, u, h, b: (m, u, {**h, HEADER_KEY_ID: "kb"}, b), id="key-id"),
    ],
)
def test_any_tampered_part_is_forbidden(
    verifier: Verifier,
    tamper: Callable[[str, str, dict[str, str], bytes], tuple[str, str, dict[str, str], bytes]],
) -> None:
    body = b"image bytes"
    headers = sign_request(SigningKey("ka", SECRET_A), "POST", "/v1/search", body, timestamp=NOW)
    method, url, headers, body = tamper("POST", "/v1/search", headers, body)
    with pytest.raises(Forbidden):
        _check(verifier, method, url, headers, body)


def test_forged_signature_and_unknown_key_are_forbidden(verifier: Verifier) -> None:
    forged = sign_request(SigningKey("ka", "z" * 40), "GET", "/v1/stats", timestamp=NOW)
    with pytest.raises(Forbidden):
        _check(verifier, "GET", "/v1/stats", forged)
    unknown = sign_request(SigningKey("nobody", SECRET_A), "GET", "/v1/stats", timestamp=NOW)
    with pytest.raises(Forbidden):
        _check(verifier, "GET", "/v1/stats", unknown)


@pytest.mark.parametrize("offset", [-301, 301, -10_000])
def test_stale_or_future_timestamp_is_forbidden(verifier: Verifier, offset: int) -> None:
    headers = sign_request(SigningKey("ka", SECRET_A), "GET", "/v1/stats", timestamp=NOW + offset)
    with pytest.raises(Forbidden):
        _check(verifier, "GET", "/v1/stats", headers)


def test_skew_inside_the_window_passes(verifier: Verifier) -> None:
    for offset in (-300, 299):
        headers = sign_request(SigningKey("ka", SECRET_A), "GET", "/", timestamp=NOW + offset)
        assert _check(verifier, "GET", "/", headers) == "ka"


def test_replay_is_forbidden_even_with_the_exact_same_request(verifier: Verifier) -> None:
    headers = sign_request(SigningKey("ka", SECRET_A), "GET", "/v1/stats", timestamp=NOW)
    assert _check(verifier, "GET", "/v1/stats", headers) == "ka"
    with pytest.raises(Forbidden):
        _check(verifier, "GET", "/v1/stats", headers)


def test_rejected_signature_does_not_burn_the_nonce(verifier: Verifier) -> None:
    good = sign_request(SigningKey("ka", SECRET_A), "GET", "/v1/stats", timestamp=NOW)
    bad = {**good, HEADER_SIGNATURE: "0" * 64}
    with pytest.raises(Forbidden):
        _check(verifier, "GET", "/v1/stats", bad)
    assert _check(verifier, "GET", "/v1/stats", good) == "ka"


@pytest.mark.parametrize(
    "change",
    [
        {HEADER_SIGNATURE: None},
        {HEADER_KEY_ID: None},
        {HEADER_TIMESTAMP: "yesterday"},
        {HEADER_NONCE: "short"},
        {HEADER_NONCE: "bad nonce with spaces!!"},
        {HEADER_SIGNATURE: "not-hex"},
        {HEADER_KEY_ID: ""},
    ],
)
def test_missing_or_malformed_headers_are_unauthorized(
    verifier: Verifier, change: dict[str, str | None]
) -> None:
    headers: dict[str, str] = dict(
        sign_request(SigningKey("ka", SECRET_A), "GET", "/v1/stats", timestamp=NOW)
    )
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(SignatureError) as info:
        _check(verifier, "GET", "/v1/stats", headers)
    assert info.value.http_status == 401


def test_rejections_say_nothing_specific_but_log_the_reason(
    verifier: Verifier, caplog: pytest.LogCaptureFixture
) -> None:
    messages = set()
    for key in (SigningKey("ka", "z" * 40), SigningKey("nobody", SECRET_A)):
        headers = sign_request(key, "GET", "/v1/stats", timestamp=NOW)
        with caplog.at_level(logging.WARNING), pytest.raises(Forbidden) as info:
            verifier.verify("GET", "/v1/stats", [], headers, b"", request_id="r-1")
        messages.add(info.value.message)
    assert messages == {"request rejected"}
    reasons = [getattr(r, "fields", {}).get("reason") for r in caplog.records]
    assert "signature mismatch" in reasons and "unknown key id" in reasons
    assert all(getattr(r, "fields", {}).get("request_id") == "r-1" for r in caplog.records)


def test_concurrent_replays_only_one_wins(tmp_path: Path) -> None:
    store = SqliteNonceStore(tmp_path / "n.sqlite3")
    verifier = Verifier(StaticKeyRing({"ka": SECRET_A}), store, clock=Clock(NOW))
    headers = sign_request(SigningKey("ka", SECRET_A), "GET", "/v1/stats", timestamp=NOW)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            _check(verifier, "GET", "/v1/stats", headers)
            ok = True
        except Forbidden:
            ok = False
        with lock:
            outcomes.append(ok)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False] * 7 + [True]


# --- key rings and rotation -----------------------------------------------------------


def test_rotation_window_accepts_old_and_new_then_drops_the_old(tmp_path: Path) -> None:
    versions = [{"old": SECRET_A}, {"old": SECRET_A, "new": SECRET_B}, {"new": SECRET_B}]
    current = [0]
    mono = Clock(0.0)
    ring = RefreshingKeyRing(
        lambda: versions[current[0]], source="test", refresh_s=300.0, clock=mono
    )
    verifier = Verifier(ring, SqliteNonceStore(tmp_path / "n.sqlite3"), clock=Clock(NOW))

    def ok(key_id: str, secret: str) -> bool:
        headers = sign_request(SigningKey(key_id, secret), "GET", "/v1/stats", timestamp=NOW)
        try:
            _check(verifier, "GET", "/v1/stats", headers)
        except Forbidden:
            return False
        return True

    assert ok("old", SECRET_A) and not ok("new", SECRET_B)
    current[0] = 1  # new version published; an unknown id forces a (rate-limited) re-read
    mono.t = 11.0
    assert ok("new", SECRET_B) and ok("old", SECRET_A)
    current[0] = 2  # old key retired: gone after the next scheduled refresh
    mono.t = 200.0
    assert ok("old", SECRET_A)
    mono.t = 320.0
    assert not ok("old", SECRET_A) and ok("new", SECRET_B)


def test_unknown_key_refresh_is_rate_limited() -> None:
    calls = [0]

    def load() -> dict[str, str]:
        calls[0] += 1
        return {"ka": SECRET_A}

    mono = Clock(0.0)
    ring = RefreshingKeyRing(load, source="test", clock=mono)
    for _ in range(50):
        assert ring.secret("nobody") is None
    assert calls[0] == 1
    mono.t = 11.0
    ring.secret("nobody")
    assert calls[0] == 2


def test_failed_refresh_keeps_last_good_keys_but_first_load_must_work() -> None:
    state = {"fail": False}

    def load() -> dict[str, str]:
        if state["fail"]:
            raise OSError("secret manager down")
        return {"ka": SECRET_A}

    mono = Clock(0.0)
    ring = RefreshingKeyRing(load, source="test", clock=mono)
    assert ring.secret("ka") == SECRET_A.encode()
    state["fail"] = True
    mono.t = 1000.0
    assert ring.secret("ka") == SECRET_A.encode()
    broken = RefreshingKeyRing(load, source="test", clock=mono)
    with pytest.raises(TransientError):
        broken.secret("ka")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        StaticKeyRing({"ka": "short"})


def test_settings_provide_server_ring_and_client_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_SIGNING_KEYS", f'{{"ka": "{SECRET_A}"}}')
    settings = load_settings()
    assert LocalBackend(settings).keyring().secret("ka") == SECRET_A.encode()
    key = client_key_from_settings(settings)
    assert key == SigningKey("ka", SECRET_A)
    assert SECRET_A not in repr(key)
    explicit = load_settings(client_key_id="kx", client_secret=SECRET_B)
    assert client_key_from_settings(explicit) == SigningKey("kx", SECRET_B)
    monkeypatch.setenv("FACESEARCH_SIGNING_KEYS", "{}")
    with pytest.raises(ConfigError, match="FACESEARCH_CLIENT_KEY_ID"):
        client_key_from_settings(load_settings())


def test_recent_nonces_stay_bounded_drop_expired_first_and_keep_the_newest() -> None:
    recent = RecentNonces(max_entries=10)
    for i in range(10):  # full: five expire at t=5, five much later
        recent.add("k", f"n{i}", 5.0 if i < 5 else 100.0 + i, now=0.0)
    recent.add("k", "late", 200.0, now=6.0)  # prunes: the five expired ones go, nothing else
    assert recent.seen("k", "late", 6.0)
    assert all(recent.seen("k", f"n{i}", 6.0) for i in range(5, 10))
    assert len(recent._expiry) == 6
    for i in range(100):  # nothing expires: the soonest-expiring go, the bound holds
        recent.add("k", f"m{i}", 300.0 + i, now=6.0)
        assert len(recent._expiry) <= 10
    assert recent.seen("k", "m99", 6.0) and not recent.seen("k", "n5", 6.0)
