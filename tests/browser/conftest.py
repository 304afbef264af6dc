"""Browser tests: the console and share pages in Debian's chromium, driven by Playwright.

The fixture starts the real server (``facesearch serve --console``'s WSGI stack: the query
API behind the console layer) on a free localhost port in a thread, over a temporary
embedded backend into which a few real photos from tests/data/photos were ingested with
the real ingest path (plus one broken file, so there is a failure to show). Playwright's
own browser download is never used: ``executable_path`` points at ``/usr/bin/chromium``
(``make setup`` installs it with apt-get).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from facesearch.backends import services
from facesearch.backends.local import LocalBackend
from facesearch.config import Settings, load_settings
from facesearch.console.app import ConsoleApp
from facesearch.local import EmbeddedSystem
from tests.data.image_corpus import PHOTOS

CHROMIUM = os.environ.get("FACESEARCH_TEST_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
_SCRATCH = Path(tempfile.gettempdir()) / "facesearch-screenshots"

#: name -> photo; ingested in this order
PHOTO_SET = {
    "obama-1": PHOTOS / "labelled" / "obama" / "obama_1.jpg",
    "obama-2": PHOTOS / "labelled" / "obama" / "obama_2.jpg",
    "biden-1": PHOTOS / "labelled" / "biden" / "biden_1.jpg",
    "hanks-1": PHOTOS / "labelled" / "tom_hanks" / "tom_hanks_1.png",
    "group-t1": PHOTOS / "group" / "insightface_t1.jpg",
    "sample-2": PHOTOS / "group" / "faceapi_sample2.jpg",
}
PROBE = PHOTOS / "labelled" / "obama" / "obama_3.jpg"  # not in the collection


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Console:
    url: str
    app: ConsoleApp
    settings: Settings
    data_dir: Path
    photos_dir: Path
    images: dict[str, str] = field(default_factory=dict)  # name -> image_id

    def login_url(self) -> str:
        return self.app.login_url()


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not (PHOTOS / "labelled").is_dir():
        pytest.fail(f"{PHOTOS} is missing: run `make setup`")
    root = tmp_path_factory.mktemp("console")
    photos_dir = root / "event" / "photos"
    photos_dir.mkdir(parents=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = load_settings(
        data_dir=root / "data",
        index_auto_compact=False,
        index_refresh_interval_s=0.0,
        public_url=url,
        console_mode="local",
        console_share_link_per_min=5,
        console_share_client_per_min=8,
        log_json=True,
    )
    # no clustering: the People page tests name and merge faces by hand, from scratch
    # (clustering itself: tests/unit/people, tests/integration/test_people_e2e.py)
    system = EmbeddedSystem(settings, cluster=False)
    images = {}
    for name, source in PHOTO_SET.items():
        target = photos_dir / f"{name}{source.suffix}"
        shutil.copyfile(source, target)
        images[name] = system.ingest_file(target).image_id
    broken = photos_dir / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG at all" * 20)
    images["broken"] = system.ingest_file(broken).image_id
    system.flush()

    backend = LocalBackend(settings)
    app = services.query_app(backend)
    console_app = services.console_app(backend, app)
    from facesearch.api.server import make_wsgi_server

    server = make_wsgi_server(console_app, "127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Console(url, console_app, settings, root / "data", photos_dir, images)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """Console errors, failed requests and HTTP errors a page saw."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("request", lambda req: self.urls.append(req.url))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console.{msg.type}: {msg.text}")
                if msg.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on(
            "requestfailed",
            lambda req: self.errors.append(f"failed: {req.method} {req.url} {req.failure}"),
        )
        page.on(
            "response",
            lambda res: (
                self.errors.append(f"HTTP {res.status}: {res.request.method} {res.url}")
                if res.status >= 400
                else None
            ),
        )

    def clean(self) -> list[str]:
        return list(self.errors)

    def foreign(self, origin: str) -> list[str]:
        """Requests to anything but ``origin`` (data: and blob: URLs are local)."""
        return [u for u in self.urls if not u.startswith((origin + "/", "data:", "blob:"))]


@pytest.fixture
def anon(browser: Any) -> Iterator[Any]:
    """A browser context with no session."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(anon: Any, console: Console) -> Any:
    """A signed-in console page (through a fresh one-time login link)."""
    page = anon.new_page()
    page.watch = PageWatch(page)
    page.goto(console.login_url())
    page.wait_for_url(f"{console.url}/console/#/c/default/search")
    page.wait_for_selector("#probe")
    return page


def wait_until(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Poll a JS expression until it is truthy. (``page.wait_for_function`` evaluates its
    predicate with ``eval`` inside the page, which the console's CSP rightly forbids.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {expression}")
        time.sleep(0.1)


def shot(page: Any, name: str) -> None:
    """A full-page screenshot once every image has loaded (a broken image fails the test).

    The docs' copies are rewritten only with ``FACESEARCH_UPDATE_SCREENSHOTS=1`` (``make
    screenshots``), so a plain test run leaves the checkout clean.
    """
    wait_until(page, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    folder = SCREENSHOTS if os.environ.get("FACESEARCH_UPDATE_SCREENSHOTS") == "1" else _SCRATCH
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
