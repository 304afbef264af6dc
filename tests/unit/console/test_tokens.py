"""Console tokens: sessions, CSRF, login links and share links resist tampering and expire."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facesearch.config import load_settings
from facesearch.console.ratelimit import RateLimiter
from facesearch.console.tokens import LoginLinks, Macer, Sessions, ShareLinks, console_key
from facesearch.errors import ConfigError

MACER = Macer(b"k" * 32)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_session_reads_back_until_it_expires() -> None:
    clock = Clock()
    sessions = Sessions(MACER, 60, clock=clock)
    session, value = sessions.new()
    assert sessions.read(value) == session
    clock.now += 59
    assert sessions.read(value) == session
    clock.now += 2
    assert sessions.read(value) is None


@given(st.integers(min_value=0, max_value=200), st.characters(codec="ascii"))
def test_any_changed_character_voids_a_session(position: int, char: str) -> None:
    sessions = Sessions(MACER, 600)
    _, value = sessions.new("someone")
    index = position % len(value)
    changed = value[:index] + char + value[index + 1 :]
    if changed != value:
        assert sessions.read(changed) is None


@given(st.text(max_size=300))
def test_junk_is_never_a_session_or_a_share(text: str) -> None:
    assert Sessions(MACER, 600).read(text) is None
    assert ShareLinks(MACER, 600).read(text) is None


def test_tokens_of_one_kind_or_key_are_not_another() -> None:
    _, share = ShareLinks(MACER, 600).issue("default", ttl_s=60)
    assert Sessions(MACER, 600).read(share) is None
    _, session = Sessions(MACER, 600).new()
    assert ShareLinks(MACER, 600).read(session) is None
    assert Sessions(Macer(b"o" * 32), 600).read(session) is None


def test_csrf_token_is_bound_to_the_subject() -> None:
    sessions = Sessions(MACER, 600)
    token = sessions.csrf_token("alice")
    assert sessions.check_csrf("alice", token)
    assert not sessions.check_csrf("bob", token)
    assert not sessions.check_csrf("alice", None)
    assert not sessions.check_csrf("alice", "")
    assert not sessions.check_csrf("alice", "tökén")


def test_login_links_redeem_once_and_expire() -> None:
    clock = Clock()
    links = LoginLinks(30, clock=clock)
    first, second = links.issue(), links.issue()
    assert links.redeem(first)
    assert not links.redeem(first)
    clock.now += 31
    assert not links.redeem(second)
    assert not links.redeem("")
    assert not links.redeem("x" * 500)


def test_share_links_carry_their_grant_and_expire() -> None:
    clock = Clock()
    shares = ShareLinks(MACER, 3600, clock=clock)
    grant, token = shares.issue("party", ttl_s=100, prefix="gs://b/e/", show_names=True)
    assert shares.read(token) == grant
    assert (grant.collection_id, grant.prefix, grant.show_names) == ("party", "gs://b/e/", True)
    with pytest.raises(ValueError):
        shares.issue("party", ttl_s=3601)
    expires = int(clock.now) + 10
    sig = shares.photo_sig(grant.link_id, "img1", expires)
    assert shares.check_photo(grant.link_id, "img1", str(expires), sig)
    assert not shares.check_photo(grant.link_id, "img2", str(expires), sig)
    assert not shares.check_photo("other", "img1", str(expires), sig)
    assert not shares.check_photo(grant.link_id, "img1", "x", sig)
    clock.now += 101
    assert shares.read(token) is None
    assert not shares.check_photo(grant.link_id, "img1", str(expires), sig)


def test_rate_limiter_counts_per_key_per_window() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(2, 60.0, clock=clock)
    assert limiter.take("a") is None and limiter.take("a") is None
    wait = limiter.take("a")
    assert wait is not None and 1 <= wait <= 60
    assert limiter.take("b") is None
    clock.now += 60
    assert limiter.take("a") is None


def test_console_key_is_created_once_and_a_short_secret_is_refused(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    key = console_key(settings)
    assert len(key) == 32 and console_key(settings) == key
    assert (tmp_path / "console.key").stat().st_mode & 0o077 == 0
    assert console_key(load_settings(data_dir=tmp_path, console_secret="s" * 40)) == b"s" * 40
    with pytest.raises(ConfigError):
        console_key(load_settings(data_dir=tmp_path, console_secret="short"))


def test_cloud_console_key_is_derived_from_the_signing_secrets() -> None:
    from facesearch.console.tokens import derived_key

    key = derived_key([b"b-secret", b"a-secret"])
    assert key == derived_key([b"a-secret", b"b-secret"])  # same on every instance
    assert key != derived_key([b"a-secret", b"c-secret"])  # rotating a key rotates it
    assert len(key) == 32
    with pytest.raises(ConfigError):
        derived_key([])
