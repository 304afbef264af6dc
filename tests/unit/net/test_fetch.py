"""SSRF-safe fetcher against local HTTP servers (loopback allowed only by explicit test policy)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from facesearch.errors import FetchFailed, ImageTooLarge, UrlNotAllowed
from facesearch.net.fetch import FetchPolicy, fetch_image, host_allowed

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 1000


class _Handler(BaseHTTPRequestHandler):
    hosts_seen: list[str] = []  # noqa: RUF012 - shared on purpose (test recorder)

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        type(self).hosts_seen.append(self.headers.get("Host", ""))
        path = self.path
        if path == "/img":
            self._send(200, PNG)
        elif path == "/big":
            self._send(200, b"x" * 5000)
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()  # no Content-Length: HTTP/1.0 reads to EOF
            for _ in range(10):
                self.wfile.write(b"y" * 1000)
        elif path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", path.split("?", 1)[1])
            self.end_headers()
        elif path == "/slow":
            time.sleep(2.0)
            self._send(200, PNG)
        elif path == "/drip-headers":  # one header byte every 0.2 s: 60 s of headers
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(300):
                self.wfile.write(b"X")
                self.wfile.flush()
                time.sleep(0.2)
        elif path == "/drip-body":  # headers at once, then one body byte every 0.2 s
            self.send_response(200)
            self.send_header("Content-Length", "300")
            self.end_headers()
            for _ in range(300):
                self.wfile.write(b"y")
                self.wfile.flush()
                time.sleep(0.2)
        elif path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        else:
            self._send(404, b"nope")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()


def _resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise FetchFailed(f"cannot resolve {host}")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def _policy(port: int, **changes: object) -> FetchPolicy:
    """Test policy: plain http and loopback explicitly allowed, 'img.test' -> 127.0.0.1."""
    base = FetchPolicy(
        allowed_hosts=("img.test", "*.cdn.test"),
        max_bytes=2000,
        timeout_s=1.0,
        allowed_ports=(port,),
        allow_http=True,
        allow_networks=("127.0.0.1/32",),
        resolver=_resolver({"img.test": ["127.0.0.1"], "a.cdn.test": ["127.0.0.1"]}),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_fetches_from_an_allowed_host_via_the_vetted_address(server: int) -> None:
    policy = _policy(server)
    got = fetch_image(f"http://img.test:{server}/img", policy)
    assert got.data == PNG and got.content_type == "image/png" and got.redirects == 0
    # the connection went to the address we resolved (no second lookup), Host names the host
    assert _Handler.hosts_seen[-1] == f"img.test:{server}"
    assert policy.resolver.calls == ["img.test"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.test:{port}/img",  # not on the allow-list
        "http://127.0.0.1:{port}/img",  # IP literal not on the list
        "http://img.test.evil.test:{port}/img",  # suffix trick
        "http://cdn.test:{port}/img",  # '*.cdn.test' means subdomains only
        "ftp://img.test/img",
        "http://user:pw@img.test:{port}/img",
        "http://img.test:1/img",  # port not allowed
        "not a url",
    ],
)
def test_urls_off_policy_are_refused_before_any_connection(server: int, url: str) -> None:
    before = len(_Handler.hosts_seen)
    with pytest.raises(UrlNotAllowed):
        fetch_image(url.format(port=server), _policy(server))
    assert len(_Handler.hosts_seen) == before


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["192.168.1.1"],
        ["172.16.0.1"],
        ["127.0.0.1"],  # loopback when the test exemption is off
        ["169.254.169.254"],  # the metadata server
        ["100.64.0.1"],  # carrier-grade NAT
        ["0.0.0.0"],
        ["::1"],
        ["fe80::1"],
        ["fd00::1"],
        ["::ffff:127.0.0.1"],  # IPv4-mapped loopback
        ["224.0.0.1"],
        ["93.184.215.14", "10.0.0.1"],  # one private address among public ones
    ],
)
def test_private_and_special_addresses_are_refused(server: int, addresses: list[str]) -> None:
    policy = _policy(server, allow_networks=(), resolver=_resolver({"img.test": addresses}))
    with pytest.raises(UrlNotAllowed, match="non-public"):
        fetch_image(f"http://img.test:{server}/img", policy)


def test_https_only_without_the_test_override(server: int) -> None:
    with pytest.raises(UrlNotAllowed, match="https"):
        fetch_image(f"http://img.test:{server}/img", _policy(server, allow_http=False))


def test_redirect_inside_the_allow_list_is_followed(server: int) -> None:
    got = fetch_image(
        f"http://img.test:{server}/to?http://a.cdn.test:{server}/img", _policy(server)
    )
    assert got.data == PNG and got.redirects == 1
    assert got.url == f"http://a.cdn.test:{server}/img"


@pytest.mark.parametrize(
    "location",
    [
        "http://evil.test:{port}/img",  # off the list
        "http://169.254.169.254/computeMetadata/v1/",  # metadata server
        "http://127.0.0.1:{port}/img",  # IP literal
        "file:///etc/passwd",
    ],
)
def test_redirects_off_policy_are_refused(server: int, location: str) -> None:
    url = f"http://img.test:{server}/to?{location.format(port=server)}"
    with pytest.raises(UrlNotAllowed):
        fetch_image(url, _policy(server))


def test_dns_rebinding_to_a_private_address_on_redirect_is_refused(server: int) -> None:
    # the first hop resolves to the (test-exempt) server; the redirect target's name
    # resolves to a private address: the check runs on every hop
    policy = _policy(
        server, resolver=_resolver({"img.test": ["127.0.0.1"], "a.cdn.test": ["10.1.2.3"]})
    )
    with pytest.raises(UrlNotAllowed, match="non-public"):
        fetch_image(f"http://img.test:{server}/to?http://a.cdn.test:{server}/img", policy)


def test_redirect_loops_stop(server: int) -> None:
    with pytest.raises(FetchFailed, match="redirects"):
        fetch_image(f"http://img.test:{server}/loop", _policy(server, max_redirects=2))


def test_size_cap_by_header_and_by_stream(server: int) -> None:
    with pytest.raises(ImageTooLarge):
        fetch_image(f"http://img.test:{server}/big", _policy(server))
    with pytest.raises(ImageTooLarge):
        fetch_image(f"http://img.test:{server}/big-chunked", _policy(server))


def test_slow_server_hits_the_deadline(server: int) -> None:
    start = time.monotonic()
    with pytest.raises(FetchFailed, match="timed out"):
        fetch_image(f"http://img.test:{server}/slow", _policy(server, timeout_s=0.3))
    assert time.monotonic() - start < 1.5


@pytest.mark.parametrize("path", ["/drip-headers", "/drip-body"])
def test_dripping_server_cannot_stretch_the_deadline(server: int, path: str) -> None:
    """Regression: each read used to get the full timeout again, so a server sending a
    byte at a time kept a 2 s download going for 8 s and more. The deadline is absolute."""
    policy = replace(_policy(server), timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="timed out"):
        fetch_image(f"http://img.test:{server}{path}", policy)
    assert time.monotonic() - started < 1.6


def test_upstream_errors_are_typed(server: int) -> None:
    with pytest.raises(FetchFailed, match="404"):
        fetch_image(f"http://img.test:{server}/missing", _policy(server))
    with pytest.raises(FetchFailed, match="resolve"):
        fetch_image(f"http://b.cdn.test:{server}/img", _policy(server))


def test_host_patterns() -> None:
    assert host_allowed("res.cloudinary.com", ["res.cloudinary.com"])
    assert host_allowed("RES.Cloudinary.com.", ["res.cloudinary.com"])
    assert host_allowed("a.b.example.com", ["*.example.com"])
    assert not host_allowed("example.com", ["*.example.com"])
    assert not host_allowed("badexample.com", ["*.example.com"])
    assert not host_allowed("anything", [])


def test_policy_from_settings_is_strict() -> None:
    from facesearch.config import load_settings

    policy = FetchPolicy.from_settings(
        load_settings(fetch_allowed_hosts=["res.cloudinary.com"], max_image_bytes=1234)
    )
    assert policy.allowed_hosts == ("res.cloudinary.com",) and policy.max_bytes == 1234
    assert not policy.allow_http and policy.allow_networks == () and policy.allowed_ports == (443,)
    with pytest.raises(UrlNotAllowed, match="non-public"):
        fetch_image(
            "https://res.cloudinary.com/x.jpg", replace(policy, resolver=lambda h, p: ["10.0.0.1"])
        )
