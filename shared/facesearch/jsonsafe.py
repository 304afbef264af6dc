"""JSON from outside, parsed without surprises: depth-limited, typed errors only.

``json.loads`` on 50,000 nested brackets raises ``RecursionError`` (a 500 where
a 400 belongs), and a few thousand levels still parse only to break later code
that walks the structure (Firestore refuses maps nested deeper than 20). Every
body, message and event we did not write ourselves goes through :func:`loads`:
nesting is measured first, in linear time and without recursion, and any
failure becomes the caller's own typed error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from facesearch.errors import FaceSearchError

#: deeper than any request, message or notification we define (Firestore allows 20)
MAX_DEPTH = 32
_BRACKETS = np.frombuffer(b"[]{}", dtype=np.uint8)
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


class TooDeep(ValueError):
    """JSON nested deeper than allowed."""


def depth(data: bytes) -> int:
    """Deepest bracket nesting of a JSON text (brackets inside strings do not count)."""
    code = np.frombuffer(_STRINGS.sub(b'""', data), dtype=np.uint8)
    brackets = code[np.isin(code, _BRACKETS)]
    if brackets.size == 0:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ``ValueError`` (never ``RecursionError``) for bad input."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    # fewer opening brackets than the limit cannot nest deeper: skip the scan (the common case)
    if raw.count(b"[") + raw.count(b"{") > max_depth and depth(raw) > max_depth:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except RecursionError as exc:  # belt and braces: the depth check should have caught it
        raise TooDeep("JSON nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"JSON is not UTF-8: {exc.reason}") from exc


def loads_object(
    data: bytes | str | Mapping[str, Any], *, error: type[FaceSearchError], what: str
) -> dict[str, Any]:
    """A JSON object (an already-parsed mapping passes through), or ``error``."""
    if isinstance(data, Mapping):
        return dict(data)
    try:
        value = loads(data)
    except ValueError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise error(f"{what} is not a JSON object")
    return value
