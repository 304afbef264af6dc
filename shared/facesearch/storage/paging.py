"""Pages and page cursors, the one listing convention of every store.

Every listing of every store (metadata, videos, the collection catalog, the people
store, both adapters of each) returns a :class:`Page`: up to a clamped ``limit`` of
items and an opaque ``next_cursor`` that encodes the last item's sort key, so a
listing resumes by key (surviving writes between pages) instead of by offset. The
cursor codec lives here so that a cursor is checked the same way everywhere: a
cursor of another listing, or one a client made up, is refused with
:class:`~facesearch.errors.InvalidCursor` before it reaches a query.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from facesearch import jsonsafe
from facesearch.errors import InvalidCursor

T = TypeVar("T")

#: Largest page any listing returns, whatever the caller asks for.
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE_SIZE))


def encode_cursor(kind: str, values: Sequence[Any]) -> str:
    """Opaque page cursor: the listing kind and the last item's sort-key values."""
    raw = json.dumps([kind, list(values)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_kind, values = jsonsafe.loads(raw, max_depth=2)
    except (ValueError, binascii.Error, TypeError) as exc:
        raise InvalidCursor("malformed page cursor") from exc
    if got_kind != kind or not isinstance(values, list) or len(values) != arity:
        raise InvalidCursor(f"page cursor does not belong to this {kind} listing")
    # only the scalar sort keys we put there: a list or object would reach the store's query
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
        raise InvalidCursor("page cursor values must be strings or numbers")
    return values


def iter_pages(fetch: Callable[[str | None], Page[T]], cursor: str | None = None) -> Iterator[T]:
    """Every item of a listing, fetching page after page (``fetch(cursor)``, from
    ``cursor``: None is the first page) only as the caller reads on."""
    while True:
        page = fetch(cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def page_of(items: list[T], limit: int, kind: str, sort_key: Callable[[T], list[Any]]) -> Page[T]:
    """The page of a listing that fetched ``items`` with ``limit``: a full page may have a
    successor, so it gets the cursor after its last item's ``sort_key``; a short one is
    the last."""
    if len(items) < limit:
        return Page(items, None)
    return Page(items, encode_cursor(kind, sort_key(items[-1])))
