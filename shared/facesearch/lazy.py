"""Package ``__init__`` re-exports that load their module on first use.

Why: settings sections live in the packages that own them (``facesearch.index``,
``facesearch.api``...), so importing the settings must not import usearch,
onnxruntime or werkzeug through those packages' ``__init__``. A package lists
``name -> module`` and gets a module-level ``__getattr__`` (PEP 562); type
checkers see the names through ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package`` that imports ``exports[name]`` on first access."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - PEP 562 wants this name
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
