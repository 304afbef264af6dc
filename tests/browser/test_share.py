"""The public "find my photos" page: selfie search and nothing else, limited, leaving no trace."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from facesearch.console.ratelimit import RateLimiter
from facesearch.console.tokens import Sessions, ShareLinks
from tests.browser.conftest import PROBE, Console, PageWatch, shot, wait_until


def _link(console: Console, **kwargs: Any) -> str:
    _, token = console.app.shares.issue("default", ttl_s=kwargs.pop("ttl_s", 3600), **kwargs)
    return f"{console.url}/share/{token}"


@pytest.fixture
def fresh_limits(console: Console) -> Iterator[None]:
    """Each share test starts (and leaves) with empty rate-limit windows."""

    def reset() -> None:
        limits = console.settings.console
        console.app.share.link_limit = RateLimiter(limits.share_link_per_min)
        console.app.share.client_limit = RateLimiter(limits.share_client_per_min)

    reset()
    yield
    reset()


def test_share_link_made_in_the_console_finds_a_guests_photos(
    page: Any, anon: Any, console: Console, fresh_limits: None
) -> None:
    page.goto(f"{console.url}/console/#/c/default/status")
    page.fill("#share-hours", "2")
    page.click("#share-form button[type=submit]")
    url = page.get_attribute("#share-url", "href")
    assert url and url.startswith(f"{console.url}/share/")
    shot(page, "status-share-link")
    guest = anon.new_page()
    watch = PageWatch(guest)
    guest.goto(url)
    assert "never stored or logged" in guest.inner_text("#privacy")
    guest.set_input_files("#selfie", str(PROBE))
    guest.wait_for_selector("#share-results li")
    wait_until(
        guest,
        "[...document.querySelectorAll('#share-results img')]"
        ".every(i => i.complete && i.naturalWidth > 0)",
    )
    photos = guest.eval_on_selector_all("#share-results a", "els => els.map(e => e.href)")
    assert photos and all("/photo/" in p and "sig=" in p for p in photos)
    assert any(console.images["obama-1"] in p for p in photos)
    assert not any(console.images["biden-1"] in p for p in photos)
    shot(guest, "share")
    assert watch.clean() == [] and watch.foreign(console.url) == []


def test_share_search_is_stricter_and_never_names_people_unless_allowed(
    anon: Any, console: Console, fresh_limits: None
) -> None:
    query = console.app.query.service.collection("default")
    face = query.store.list_faces(image_id=console.images["obama-1"], limit=1).items[0]
    person = query.persons.create_person("Barack Obama", {})
    query.persons.set_face_person(face.face_id, person.person_id)
    selfie = PROBE.read_bytes()
    headers = {"Content-Type": "image/jpeg"}
    hidden = anon.request.post(_link(console) + "/search", data=selfie, headers=headers).json()
    shown = anon.request.post(
        _link(console, show_names=True) + "/search", data=selfie, headers=headers
    ).json()
    default = console.app.query.service.collection("default").searcher.default_threshold
    assert hidden["threshold"] > default
    assert all(p["similarity"] >= hidden["threshold"] for p in hidden["photos"])
    assert {p["person_name"] for p in hidden["photos"]} == {None}
    assert "Barack Obama" in {p["person_name"] for p in shown["photos"]}
    assert set(hidden["photos"][0]) == {"photo_url", "crop_url", "similarity", "person_name"}


def test_a_prefix_link_only_returns_photos_under_its_prefix(
    anon: Any, console: Console, fresh_limits: None
) -> None:
    prefix = str(console.photos_dir / "obama-1")
    body = anon.request.post(
        _link(console, prefix=prefix) + "/search",
        data=PROBE.read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    ).json()
    assert [console.images["obama-1"] in p["photo_url"] for p in body["photos"]] == [True]


def test_the_public_page_reaches_nothing_but_search(
    anon: Any, console: Console, fresh_limits: None
) -> None:
    link = _link(console)
    token = urlsplit(link).path.split("/")[2]
    body = anon.request.post(
        link + "/search", data=PROBE.read_bytes(), headers={"Content-Type": "image/jpeg"}
    ).json()
    photo = console.url + body["photos"][0]["photo_url"]
    assert anon.request.get(photo).status == 200
    image_id = urlsplit(photo).path.rsplit("/", 1)[1]
    other = console.images["biden-1"]
    refused = {
        f"/share/{token}/photo/{image_id}": 403,  # no signature
        photo.replace(image_id, other).removeprefix(console.url): 403,  # signed for another
        f"/share/{token}/images": 404,
        f"/share/{token}/persons": 404,
        f"/share/{token}/search": 400,  # GET is not a search
        f"/share/{token}/../console/api/session": 401,
        "/share/": 404,
        "/share/static/app.js": 404,  # only the share page's own assets
        "/console/api/session": 401,
        "/console/api/v1/collections/default/persons": 401,
        "/v1/collections/default/persons": 401,  # the signed API wants a signature
    }
    for path, status in refused.items():
        got = anon.request.get(console.url + path, max_redirects=0).status
        assert got == status or (status == 400 and got == 405) or got == 404, (path, got)
        assert got >= 400, path
    # the share token is no console session
    anon.add_cookies([{"name": Sessions.COOKIE, "value": token, "url": f"{console.url}/console/"}])
    assert anon.request.get(f"{console.url}/console/api/session").status == 401
    # a forged or expired link
    expired = ShareLinks(console.app.shares._macer, 3600, clock=lambda: time.time() - 7200)
    _, old = expired.issue("default", ttl_s=60)
    page = anon.new_page()
    response = page.goto(f"{console.url}/share/{old}")
    assert response is not None and response.status == 404
    assert "not valid" in page.inner_text("h1")
    assert (
        anon.request.post(
            f"{console.url}/share/{token[:-3]}abc/search",
            data=b"x",
            headers={"Content-Type": "image/jpeg"},
        ).status
        == 404
    )


def test_rate_limits_per_link_and_per_client_answer_429(
    anon: Any, console: Console, fresh_limits: None
) -> None:
    limits = console.settings.console
    headers = {"Content-Type": "image/jpeg"}
    busy = _link(console)
    statuses = [
        anon.request.post(busy + "/search", data=b"not an image", headers=headers).status
        for _ in range(limits.share_link_per_min + 1)
    ]
    assert statuses[:-1] == [400] * limits.share_link_per_min  # counted before the work
    assert statuses[-1] == 429
    refused = anon.request.post(busy + "/search", data=b"x", headers=headers)
    assert refused.status == 429 and int(refused.headers["retry-after"]) >= 1
    # the same client through fresh links: its own budget runs out too
    # (requests the link's limit refused did not count against the client)
    left = limits.share_client_per_min - limits.share_link_per_min
    results = [
        anon.request.post(_link(console) + "/search", data=b"x", headers=headers).status
        for _ in range(left + 1)
    ]
    assert results == [400] * left + [429]
    # the page tells a guest to wait
    page = anon.new_page()
    page.goto(busy)
    page.set_input_files("#selfie", str(PROBE))
    page.wait_for_selector("#share-status:has-text('Too many searches')")


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_selfie_is_never_stored_or_logged(
    anon: Any, console: Console, fresh_limits: None, caplog: pytest.LogCaptureFixture
) -> None:
    # a selfie nobody has seen: a real photo re-encoded, so its bytes are unique to this test
    from PIL import Image

    buffer = io.BytesIO()
    with Image.open(PROBE) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=87, comment=b"selfie-marker")
    selfie = buffer.getvalue()
    traces = [
        hashlib.sha256(selfie).hexdigest(),
        base64.b64encode(selfie[:48]).decode(),
        selfie[200:260].hex(),
        "selfie-marker",
    ]
    root = console.data_dir.parent
    before = _snapshot(root)
    store = console.app.query.service.collection("default").store
    counts = store.counts()
    link = _link(console)
    caplog.set_level(logging.DEBUG)
    response = anon.request.post(
        link + "/search", data=selfie, headers={"Content-Type": "image/jpeg"}
    )
    assert response.status == 200 and response.json()["photos"]
    # nothing written anywhere under the data dir or the photos (no file, no record, no index)
    assert _snapshot(root) == before
    assert store.counts() == counts
    # nothing of it in any log record, message or field
    logged = "\n".join(
        f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records
    )
    assert "/share/<token>/search" in logged  # the request was logged (path, status) ...
    assert urlsplit(link).path.split("/")[2] not in logged  # (not its token) ...
    for trace in traces:
        assert trace not in logged  # ... but not the selfie
    assert selfie[:64] not in logged.encode()
