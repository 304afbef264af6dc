"""Console authentication in the browser: one-time login links, session cookies, CSRF."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from facesearch.console.responses import STATIC
from facesearch.console.tokens import Sessions
from tests.browser.conftest import Console, PageWatch, shot


def test_login_link_works_once_and_sets_a_strict_httponly_cookie(
    anon: Any, browser: Any, console: Console
) -> None:
    link = console.login_url()
    page = anon.new_page()
    page.goto(link)
    page.wait_for_selector("#probe")
    (cookie,) = [c for c in anon.cookies() if c["name"] == Sessions.COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http on localhost; https sets Secure (unit test)
    assert cookie["path"] == "/console"
    assert page.evaluate("document.cookie") == ""  # invisible to scripts
    # the same link again, from another browser: refused
    other = browser.new_context()
    try:
        again = other.new_page()
        response = again.goto(link)
        assert response is not None and response.status == 403
        assert "used up or has expired" in again.inner_text("h1")
        shot(again, "login-link-used")
        assert not [c for c in other.cookies() if c["name"] == Sessions.COOKIE]
    finally:
        other.close()


def test_without_a_session_the_console_shows_sign_in_and_the_api_answers_401(
    anon: Any, console: Console
) -> None:
    page = anon.new_page()
    page.goto(f"{console.url}/console/")
    page.wait_for_selector("main h1:has-text('Sign in')")
    for path in (
        "/console/api/session",
        "/console/api/v1/collections/default/persons",
        "/console/api/collections/default/status",
        f"/console/api/collections/default/images/{console.images['obama-1']}/photo",
    ):
        assert anon.request.get(console.url + path).status == 401, path


def _expired_cookie(console: Console) -> str:
    past = Sessions(console.app.sessions._macer, 3600, clock=lambda: time.time() - 7200)
    return past.new()[1]


def test_expired_or_forged_session_cookie_is_refused(anon: Any, console: Console) -> None:
    valid = console.app.sessions.new()[1]
    body, mac = valid.split(".")
    for value in (_expired_cookie(console), f"{body}.{mac[:-2]}AA", f"{body}x.{mac}"):
        anon.clear_cookies()
        anon.add_cookies(
            [{"name": Sessions.COOKIE, "value": value, "url": f"{console.url}/console/"}]
        )
        assert anon.request.get(f"{console.url}/console/api/session").status == 401
    anon.clear_cookies()
    anon.add_cookies([{"name": Sessions.COOKIE, "value": valid, "url": f"{console.url}/console/"}])
    assert anon.request.get(f"{console.url}/console/api/session").status == 200


def test_writes_without_the_csrf_token_or_from_another_origin_are_refused(
    page: Any, console: Console
) -> None:
    url = "/console/api/v1/collections/default/persons"
    script = """async ([url, headers]) => {
        const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json',
            ...headers}, body: JSON.stringify({name: 'CSRF probe'})});
        return r.status;
    }"""
    assert page.evaluate(script, [url, {}]) == 403
    assert page.evaluate(script, [url, {"X-CSRF-Token": "forged-token"}]) == 403
    token = page.evaluate("fetch('/console/api/session').then(r => r.json()).then(s => s.csrf)")
    assert page.evaluate(script, [url, {"X-CSRF-Token": token}]) == 201
    # the cookie and the token, but from another origin (what a cross-site form would be)
    context = page.context
    response = context.request.post(
        console.url + url,
        data={"name": "cross-site"},
        headers={"X-CSRF-Token": token, "Origin": "http://evil.example"},
    )
    assert response.status == 403
    persons = console.app.query.service.collection("default").persons
    names = [p.name for p in persons.list_persons(cursor=None, limit=100).items]
    assert "CSRF probe" in names and "cross-site" not in names
    # the two refusals this test provoked are the only errors the page saw
    assert len([e for e in page.watch.clean() if "403" in e]) == len(page.watch.clean()) == 4


def test_every_page_has_a_strict_csp_and_no_inline_script(anon: Any, console: Console) -> None:
    for path in ("/console/", "/console/static/app.js", f"/share/{'x' * 20}"):
        response = anon.request.get(console.url + path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp, path
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
    # the shipped files: no inline script, no inline handlers or styles, no other origin
    for path in Path(STATIC).rglob("*.*"):
        text = path.read_text()
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
            assert not re.search(r"\son[a-z]+=", text) and " style=" not in text, path
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path


def test_a_page_contacts_no_other_origin(page: Any, console: Console) -> None:
    watch: PageWatch = page.watch
    page.goto(f"{console.url}/console/#/c/default/status")
    page.wait_for_selector("#stats li")
    assert watch.foreign(console.url) == []
    assert watch.clean() == []
