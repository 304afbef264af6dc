"""Fetch an image from a caller-supplied URL without becoming an SSRF proxy.

Rules, each checked on the first URL and again on every redirect hop:

* ``https`` only (plain ``http`` only with the test-only ``allow_http``);
* the host must be on the allow-list (exact name or ``*.suffix``); IP literals
  are refused unless they are on the list verbatim;
* the name is resolved once, *every* address must be public (not private,
  loopback, link-local incl. the 169.254.169.254 metadata server, CGNAT,
  multicast, reserved, IPv4-mapped private...), and the connection goes to
  the address we vetted — never a second lookup, so DNS rebinding between
  check and connect cannot redirect us to an internal address;
* TLS is verified against the host name (SNI), not the IP;
* redirects are followed by hand, at most ``max_redirects``, each re-checked;
* the body is streamed with a byte cap (Content-Length checked first) and the
  whole exchange runs under one deadline.

Reused by the query API (``image_url``) and the Cloudinary webhook (delivery
host only). Tests use local servers with ``allow_http`` and an explicit
``allow_networks`` for 127.0.0.1 — production policies never set either.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from facesearch.config import Settings
from facesearch.errors import FetchFailed, ImageTooLarge, UrlNotAllowed

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
USER_AGENT = "facesearch-fetch/1"


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchFailed(f"cannot resolve {host}") from exc
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class FetchPolicy:
    allowed_hosts: tuple[str, ...]
    max_bytes: int
    timeout_s: float = 10.0
    max_redirects: int = 3
    allowed_ports: tuple[int, ...] = (443,)
    #: TEST ONLY: permit plain http.
    allow_http: bool = False
    #: TEST ONLY: networks exempt from the public-address rule (e.g. "127.0.0.1/32").
    allow_networks: tuple[str, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, allowed_hosts: Sequence[str] | None = None
    ) -> FetchPolicy:
        """The production policy; ``allowed_hosts`` overrides the setting (Cloudinary)."""
        hosts = settings.fetch.allowed_hosts if allowed_hosts is None else allowed_hosts
        return cls(
            allowed_hosts=tuple(hosts),
            max_bytes=settings.vision.max_image_bytes,
            timeout_s=settings.fetch.timeout_s,
            max_redirects=settings.fetch.max_redirects,
        )


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    content_type: str | None
    url: str  # after redirects
    redirects: int


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Exact (case-insensitive) match, or ``*.example.com`` for strict subdomains."""
    host = host.lower().rstrip(".")
    for raw in allowed:
        pattern = raw.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def _is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return _is_public(mapped)
        if address.teredo is not None:
            return False
    return bool(address.is_global) and not address.is_multicast


def _vet_addresses(host: str, addresses: list[str], policy: FetchPolicy) -> str:
    if not addresses:
        raise FetchFailed(f"{host} has no address")
    exempt = [ipaddress.ip_network(n) for n in policy.allow_networks]
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if any(address in network for network in exempt):
            continue
        if not _is_public(address):
            raise UrlNotAllowed(f"{host} resolves to a non-public address")
    return addresses[0]


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str  # path + query
    address: str


def _check_url(url: str, policy: FetchPolicy) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowed("malformed URL") from exc
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and policy.allow_http):
        raise UrlNotAllowed("only https URLs are fetched")
    if parts.username or parts.password:
        raise UrlNotAllowed("URLs with credentials are refused")
    host = (parts.hostname or "").lower()
    if not host:
        raise UrlNotAllowed("URL has no host")
    if not host_allowed(host, policy.allowed_hosts):
        raise UrlNotAllowed(f"host {host} is not on the allow-list")
    port = port or (443 if scheme == "https" else 80)
    if port not in policy.allowed_ports:
        raise UrlNotAllowed(f"port {port} is not allowed")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        addresses = policy.resolver(host, port)
    else:
        addresses = [str(literal)]
    address = _vet_addresses(host, addresses, policy)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(scheme, host, port, path, address)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchFailed("image download timed out")
    return left


class _DeadlineSocket:
    """A socket whose every send and receive gets only the time left until one deadline.

    A socket timeout alone is per call: a server that drips one header byte a second
    keeps a 2 s download going forever. Re-arming the timeout with what is left
    before each call makes the deadline absolute, for the headers as for the body.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._readers = 0  # open makefile()s; like a socket, close waits for them
        self._closed = False

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        self._sock.settimeout(left)

    def recv_into(self, buffer: memoryview | bytearray, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._arm()
        return self._sock.recv(size, flags)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self._arm()
        self._sock.sendall(data, flags)

    def makefile(
        self, mode: str = "rb", buffering: int | None = None, **_: object
    ) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError("only binary reads")
        self._readers += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"), buffering or io.DEFAULT_BUFFER_SIZE)  # type: ignore[arg-type]

    def fileno(self) -> int:
        return self._sock.fileno()

    def settimeout(self, value: float | None) -> None:
        """Ignored: the deadline decides (http.client sets its own per-call timeouts)."""

    def _decref_socketios(self) -> None:
        """SocketIO's close hook: the last reader closes a socket already closed."""
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self._sock.close()

    def close(self) -> None:
        """http.client hands the socket to the response by closing it early: the real
        socket closes once the response's reader is closed too (as socket.socket does)."""
        self._closed = True
        if self._readers <= 0:
            self._sock.close()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the vetted address; the Host header still names the host."""

    def __init__(self, target: _Target, deadline: float) -> None:
        super().__init__(target.host, target.port, timeout=_remaining(deadline))
        self._address = target.address
        self._deadline = deadline

    def _open(self) -> socket.socket:
        return socket.create_connection(
            (self._address, self.port), timeout=_remaining(self._deadline)
        )

    def connect(self) -> None:
        self.sock = _DeadlineSocket(self._open(), self._deadline)  # type: ignore[assignment]


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    def __init__(self, target: _Target, deadline: float, context: ssl.SSLContext) -> None:
        super().__init__(target, deadline)
        self._context = context

    def connect(self) -> None:
        raw = self._open()
        tls = self._context.wrap_socket(raw, server_hostname=self.host)  # handshake: timed
        self.sock = _DeadlineSocket(tls, self._deadline)  # type: ignore[assignment]


def fetch_image(url: str, policy: FetchPolicy) -> FetchedImage:
    """Download ``url`` under ``policy``; typed errors for every way it can go wrong."""
    deadline = time.monotonic() + policy.timeout_s
    current = url
    for hop in range(policy.max_redirects + 1):
        target = _check_url(current, policy)
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            context = policy.ssl_context or ssl.create_default_context()
            conn = _PinnedHTTPSConnection(target, deadline, context)
        else:
            conn = _PinnedHTTPConnection(target, deadline)
        try:
            conn.request(
                "GET", target.path, headers={"User-Agent": USER_AGENT, "Accept": "image/*"}
            )
            response = conn.getresponse()
            if response.status in REDIRECT_STATUSES:
                location = response.getheader("Location")
                if not location:
                    raise FetchFailed(f"redirect {response.status} without a Location")
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise FetchFailed(f"image URL answered HTTP {response.status}")
            length = response.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > policy.max_bytes:
                raise ImageTooLarge(f"image is {length} bytes; the limit is {policy.max_bytes}")
            chunks: list[bytes] = []
            total = 0
            while True:
                _remaining(deadline)
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                total += len(chunk)
                if total > policy.max_bytes:
                    raise ImageTooLarge(f"image exceeds the limit of {policy.max_bytes} bytes")
                chunks.append(chunk)
            return FetchedImage(
                b"".join(chunks), response.getheader("Content-Type"), current, redirects=hop
            )
        except TimeoutError as exc:
            raise FetchFailed("image download timed out") from exc
        except ssl.SSLError as exc:
            raise FetchFailed(f"TLS failure talking to {target.host}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchFailed(f"cannot fetch from {target.host}: {type(exc).__name__}") from exc
        finally:
            conn.close()
    raise FetchFailed(f"more than {policy.max_redirects} redirects")
