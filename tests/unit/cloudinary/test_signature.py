"""X-Cld-Signature verification: what Cloudinary signs verifies, nothing else does."""

from __future__ import annotations

import time
from unittest import mock

import cloudinary
import cloudinary.utils
import pytest

from facesearch.cloudinary.secret import RefreshingSecret, StaticSecrets, secrets_from_settings
from facesearch.cloudinary.signature import MAX_FUTURE_SKEW_S, NotificationVerifier
from facesearch.config import load_settings
from facesearch.errors import ConfigError, SignatureError, TransientError
from tests.support.cloudinary import TEST_SECRET, raw, sample, sign

NOW = 1_763_900_000


def verifier(*, algorithm: str = "sha1", secrets: tuple[str, ...] = (TEST_SECRET,)):  # type: ignore[no-untyped-def]
    return NotificationVerifier(lambda: secrets, algorithm=algorithm, clock=lambda: float(NOW))


def test_a_notification_signed_like_cloudinary_verifies() -> None:
    body = raw(sample("upload"))
    verified = verifier().verify(body, sign(body, timestamp=NOW - 5))
    assert verified.body == body.decode() and verified.timestamp == NOW - 5


def test_header_names_are_case_insensitive_and_sha256_accounts_work() -> None:
    body = raw(sample("upload"))
    headers = {k.lower(): v for k, v in sign(body, timestamp=NOW, algorithm="sha256").items()}
    assert verifier(algorithm="sha256").verify(body, headers).timestamp == NOW
    with pytest.raises(SignatureError, match="malformed"):  # a sha1 digest for a sha256 account
        verifier(algorithm="sha256").verify(body, sign(body, timestamp=NOW))


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("tampered", "mismatch"),
        ("wrong-secret", "mismatch"),
        ("stale", "stale"),
        ("future", "future"),
        ("unsigned", "missing"),
        ("no-timestamp", "missing"),
        ("bad-timestamp", "malformed"),
        ("bad-signature", "malformed"),
        ("timestamp-swapped", "mismatch"),
        ("not-utf8", "UTF-8"),
    ],
)
def test_everything_else_is_refused(case: str, expect: str) -> None:
    body = raw(sample("upload"))
    headers = sign(body, timestamp=NOW)
    if case == "tampered":
        body = body.replace(b'"version": 1763892900', b'"version": 1763892901')
    elif case == "wrong-secret":
        headers = sign(body, timestamp=NOW, secret="another-accounts-secret")
    elif case == "stale":
        headers = sign(body, timestamp=NOW - 7201)
    elif case == "future":
        headers = sign(body, timestamp=NOW + MAX_FUTURE_SKEW_S + 1)
    elif case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "no-timestamp":
        del headers["X-Cld-Timestamp"]
    elif case == "bad-timestamp":
        headers["X-Cld-Timestamp"] = "1763900000.5"
    elif case == "bad-signature":
        headers["X-Cld-Signature"] = "zz" + headers["X-Cld-Signature"][2:]
    elif case == "timestamp-swapped":  # a valid signature replayed with a fresh timestamp
        headers["X-Cld-Timestamp"] = str(NOW - 1)
    elif case == "not-utf8":
        body = b"\xff\xfe" + body
        headers = {
            "X-Cld-Signature": "0" * 40,
            "X-Cld-Timestamp": str(NOW),
        }
    with pytest.raises(SignatureError, match=expect):
        verifier().verify(body, headers)


def test_window_edges_follow_the_setting() -> None:
    body = raw(sample("upload"))
    strict = NotificationVerifier(lambda: (TEST_SECRET,), max_age_s=60, clock=lambda: float(NOW))
    assert strict.verify(body, sign(body, timestamp=NOW - 60)).timestamp == NOW - 60
    with pytest.raises(SignatureError, match="stale"):
        strict.verify(body, sign(body, timestamp=NOW - 61))
    assert strict.verify(body, sign(body, timestamp=NOW + MAX_FUTURE_SKEW_S))


@pytest.mark.parametrize("offset", [0, -100, -7199, -7300])
@pytest.mark.parametrize("tamper", [False, True])
def test_agrees_with_the_sdks_own_verifier(offset: int, tamper: bool) -> None:
    """Same answer as cloudinary.utils.verify_notification_signature for past timestamps."""
    body = raw(sample("delete"))
    now = int(time.time())  # one instant for both verifiers: -7199 s is 1 s from the edge
    timestamp = now + offset
    headers = sign(body, timestamp=timestamp)
    if tamper:
        body = body.replace(b"group_photo", b"group_photX")
    with (
        mock.patch.object(cloudinary, "_config", cloudinary.Config()) as config,
        mock.patch.object(cloudinary.utils.time, "time", return_value=float(now)),
    ):
        config.api_secret = TEST_SECRET
        config.signature_algorithm = "sha1"
        sdk = cloudinary.utils.verify_notification_signature(
            body.decode(), str(timestamp), headers["X-Cld-Signature"], valid_for=7200
        )
    ours = NotificationVerifier(lambda: (TEST_SECRET,), clock=lambda: float(now))
    try:
        ours.verify(body, headers)
        accepted = True
    except SignatureError:
        accepted = False
    assert accepted == sdk == (not tamper and offset > -7200)


def test_rotation_accepts_the_previous_secret_until_the_refresh_after() -> None:
    clock = [0.0]
    current = ["old-secret-0123456789"]
    source = RefreshingSecret(
        lambda: current[0], source="test", refresh_s=300, clock=lambda: clock[0]
    )
    ours = NotificationVerifier(source, clock=lambda: float(NOW))
    body = raw(sample("upload"))
    old = sign(body, timestamp=NOW, secret="old-secret-0123456789")
    new = sign(body, timestamp=NOW, secret="new-secret-9876543210")
    assert ours.verify(body, old)
    current[0] = "new-secret-9876543210"
    assert ours.verify(body, old)  # not refreshed yet
    clock[0] = 301.0
    assert ours.verify(body, new) and ours.verify(body, old)  # both right after the switch
    clock[0] = 602.0
    assert ours.verify(body, new)
    with pytest.raises(SignatureError):
        ours.verify(body, old)


def test_secret_source_failures() -> None:
    def broken() -> str:
        raise OSError("secret manager down")

    with pytest.raises(TransientError):
        RefreshingSecret(broken, source="test")()
    calls = iter(["s3cret-value-1", ""])
    clock = [0.0]
    source = RefreshingSecret(
        lambda: next(calls), source="test", refresh_s=1, clock=lambda: clock[0]
    )
    assert source() == ("s3cret-value-1",)
    clock[0] = 5.0
    assert source() == ("s3cret-value-1",)  # an empty new version keeps the last good one
    with pytest.raises(ConfigError):
        StaticSecrets("")
    with pytest.raises(ConfigError, match="CLOUDINARY_SECRET_NAME"):
        secrets_from_settings(load_settings().cloudinary)
    configured = load_settings(cloudinary_api_secret="x" * 20).cloudinary
    assert secrets_from_settings(configured)() == ("x" * 20,)
