"""How :class:`~facesearch.client.Client` talks to the query API: sign, send, decode.

Split from the client so that :mod:`facesearch.client` is one method per API route and
nothing else. Here: the signed request itself (the body is serialised once and exactly
those bytes are signed and sent), the problem+json answer turned into :class:`ApiError`,
the query-string and multipart encodings the routes expect, the page-by-page walk every
listing shares, and :class:`SigningAuth` for callers who use ``requests`` directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import quote, urlencode

import requests
import requests.auth
from pydantic import BaseModel

from facesearch.auth.signing import SigningKey, sign_request
from facesearch.errors import FaceSearchError, TransientError

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT_S = 60.0


class ApiError(FaceSearchError):
    """The API answered with a problem+json error."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(str(detail))
        self.http_status = status
        self.code = str(problem.get("code") or "http-error")
        self.problem = problem
        self.retryable = status in (429, 503)


class SigningAuth(requests.auth.AuthBase):
    """Sign any ``requests`` call (``session.auth = SigningAuth(key)``): it sees the final body."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        r.headers.update(sign_request(self.key, r.method or "GET", r.path_url, body))
        return r


def encode_multipart(files: dict[str, bytes], fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type (with the boundary), built before
    signing because the signature covers the exact bytes."""
    prepared = requests.Request(
        "POST",
        "http://x/",
        files={name: (name, data, "application/octet-stream") for name, data in files.items()},
        data=fields,
    ).prepare()
    body = prepared.body
    assert isinstance(body, bytes)
    return body, str(prepared.headers["Content-Type"])


def query_params(**values: Any) -> dict[str, str]:
    """Query-string values as the API parses them: ``None`` left out, sequences
    comma-joined, booleans ``true``/``false``."""
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def given(**values: Any) -> dict[str, Any]:
    """The JSON fields the caller gave: a PATCH or an optional field left out stays
    unchanged or defaulted on the server, which ``null`` would not."""
    return {name: value for name, value in values.items() if value is not None}


class Paged(Protocol):
    """A page of a listing: its items and the cursor of the next page (``None``: the last)."""

    @property
    def next_cursor(self) -> str | None: ...


P = TypeVar("P", bound=Paged)


def follow_pages(fetch: Callable[[str | None], P]) -> Iterator[P]:
    """Every page of a listing: ``fetch(cursor)`` from the first page until no next cursor."""
    cursor = None
    while True:
        page = fetch(cursor)
        yield page
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class Transport:
    """A base URL, a signing key and a ``requests`` session; data calls go to one collection."""

    def __init__(
        self,
        base_url: str,
        key: SigningKey,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        session: requests.Session | None = None,
        extra_headers: dict[str, str] | None = None,
        collection: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: data calls go to this collection (``None``: the default collection)
        self.collection = collection
        self.key = key
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.extra_headers = dict(extra_headers or {})

    def in_collection(self, collection: str | None) -> Self:
        """The same connection, its data calls scoped to ``collection``."""
        return type(self)(
            self.base_url,
            self.key,
            timeout_s=self.timeout_s,
            session=self.session,
            extra_headers=self.extra_headers,
            collection=collection,
        )

    def _data(self, path: str) -> str:
        """``/v1/...`` of the client's collection (``/v1/collections/<id>/...``)."""
        if self.collection is None:
            return path
        return f"/v1/collections/{quote(self.collection, safe='')}" + path.removeprefix("/v1")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> requests.Response:
        """Send one signed request; raises ApiError for a problem response."""
        target = path + ("?" + urlencode(params) if params else "")
        headers = dict(self.extra_headers)
        headers.update(sign_request(self.key, method, target, body))
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = self.session.request(
                method, self.base_url + target, data=body, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise TransientError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
                if not isinstance(problem, dict):
                    raise ValueError
            except ValueError:
                problem = {"detail": response.text[:200] or response.reason}
            raise ApiError(response.status_code, problem)
        return response

    def _json(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: Any = None,
    ) -> M:
        """One call whose answer is ``model``; ``payload`` (if any) is sent as JSON."""
        body = b"" if payload is None else json.dumps(payload).encode()
        response = self.request(
            method,
            path,
            params=params,
            body=body,
            content_type="application/json" if payload is not None else None,
        )
        return model.model_validate_json(response.content)
