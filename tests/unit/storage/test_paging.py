"""The page-cursor codec and page helpers every store's listings share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facesearch.errors import InvalidCursor
from facesearch.storage.paging import (
    MAX_PAGE_SIZE,
    Page,
    clamp_limit,
    decode_cursor,
    encode_cursor,
    iter_pages,
    page_of,
)

sort_values = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.integers(min_value=-(2**53), max_value=2**53),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=3,
)


@given(kind=st.text(min_size=1, max_size=30), values=sort_values)
def test_a_cursor_decodes_to_the_sort_key_it_encodes(kind: str, values: list[object]) -> None:
    decoded = decode_cursor(kind, encode_cursor(kind, values), len(values))
    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]


@given(values=sort_values)
def test_a_cursor_of_another_listing_or_arity_is_refused(values: list[object]) -> None:
    cursor = encode_cursor("faces", values)
    with pytest.raises(InvalidCursor, match="does not belong"):
        decode_cursor("images", cursor, len(values))
    with pytest.raises(InvalidCursor, match="does not belong"):
        decode_cursor("faces", cursor, len(values) + 1)


@given(text=st.text(max_size=200))
def test_made_up_cursors_fail_only_with_invalid_cursor(text: str) -> None:
    try:
        values = decode_cursor("faces", text, 1)
    except InvalidCursor:
        return
    assert len(values) == 1
    assert isinstance(values[0], str | int | float)


@pytest.mark.parametrize("value", [[1], {"a": 1}, True, None])
def test_only_scalar_sort_keys_reach_a_query(value: object) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor("faces", encode_cursor("faces", [value]), 1)


@given(limit=st.integers(min_value=-(10**6), max_value=10**6))
def test_limits_are_clamped_into_one_page(limit: int) -> None:
    assert 1 <= clamp_limit(limit) <= MAX_PAGE_SIZE
    if 1 <= limit <= MAX_PAGE_SIZE:
        assert clamp_limit(limit) == limit


def test_a_full_page_continues_after_its_last_item_and_a_short_one_ends() -> None:
    full = page_of(["a", "b"], 2, "letters", lambda last: [last])
    assert full.items == ["a", "b"]
    assert full.next_cursor is not None
    assert decode_cursor("letters", full.next_cursor, 1) == ["b"]
    assert page_of(["a"], 2, "letters", lambda last: [last]).next_cursor is None
    assert page_of([], 2, "letters", lambda last: [last]).next_cursor is None


@given(items=st.lists(st.integers(), max_size=30), size=st.integers(min_value=1, max_value=7))
def test_iter_pages_reads_every_item_once_in_order(items: list[int], size: int) -> None:
    def fetch(cursor: str | None) -> Page[int]:
        start = decode_cursor("n", cursor, 1)[0] if cursor else 0
        chunk = items[start : start + size]
        return page_of(chunk, size, "n", lambda _last: [start + len(chunk)])

    assert list(iter_pages(fetch)) == items


def test_iter_pages_fetches_a_page_only_when_read_on() -> None:
    fetched: list[str | None] = []

    def fetch(cursor: str | None) -> Page[int]:
        fetched.append(cursor)
        return Page([len(fetched)], f"c{len(fetched)}")

    pages = iter_pages(fetch, "start")
    assert next(pages) == 1
    assert fetched == ["start"]
    assert next(pages) == 2
    assert fetched == ["start", "c1"]
