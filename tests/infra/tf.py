"""Parse our Terraform with python-hcl2 into a small, explicit model for the infra tests.

python-hcl2 >= 8 marks blocks (``__is_block__``) so that a nested block can be told from an
attribute whose value is an object; older versions cannot, and are refused with a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
TERRAFORM = INFRA / "terraform"
MODULES = TERRAFORM / "modules"
ENVS = TERRAFORM / "envs"
ENV_NAMES = ("dev", "prod")

try:
    import hcl2
    from hcl2 import SerializationOptions
except ImportError:  # pragma: no cover - exercised only on a broken setup
    hcl2 = None
    SerializationOptions = None

_META = {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}


class Body(dict[str, Any]):
    """The body of a block (as opposed to an object-valued attribute)."""


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _norm(value: Any) -> Any:
    if isinstance(value, dict):
        is_block = bool(value.get("__is_block__"))
        items = {_unquote(k): _norm(v) for k, v in value.items() if k not in _META}
        return Body(items) if is_block else items
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


def is_block_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Body) for v in value)


@cache
def parse(path: Path) -> dict[str, Any]:
    if hcl2 is None or SerializationOptions is None:
        pytest.fail(
            "python-hcl2 >= 8 is required for the infra tests: pip install 'python-hcl2>=8'"
        )
    options = SerializationOptions(with_comments=False, explicit_blocks=True)
    with path.open() as handle:
        return _norm(hcl2.load(handle, serialization_options=options))


@dataclass
class Resource:
    kind: str  # "resource" | "data"
    type: str
    name: str
    body: Body
    file: Path

    @property
    def address(self) -> str:
        prefix = "data." if self.kind == "data" else ""
        return f"{prefix}{self.type}.{self.name} ({self.file.relative_to(REPO)})"


@dataclass
class Module:
    """One Terraform module directory (a child module or an environment root)."""

    path: Path
    resources: list[Resource] = field(default_factory=list)
    module_calls: dict[str, Body] = field(default_factory=dict)
    variables: dict[str, Body] = field(default_factory=dict)
    outputs: dict[str, Body] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform: list[Body] = field(default_factory=list)
    providers: dict[str, Body] = field(default_factory=dict)
    raw: dict[Path, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path.relative_to(TERRAFORM))

    def resource(self, type_: str, name: str) -> Resource:
        for res in self.resources:
            if res.kind == "resource" and res.type == type_ and res.name == name:
                return res
        raise AssertionError(f"{self.name}: no resource {type_}.{name}")

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.kind == "resource" and r.type == type_]


@cache
def load_module(path: Path) -> Module:
    module = Module(path=path)
    files = sorted(path.glob("*.tf"))
    if not files:
        pytest.fail(f"no .tf files in {path}")
    for file in files:
        tree = parse(file)
        module.raw[file] = tree
        for kind in ("resource", "data"):
            for entry in tree.get(kind, []):
                for type_, named in entry.items():
                    for name, body in named.items():
                        module.resources.append(Resource(kind, type_, name, body, file))
        for entry in tree.get("module", []):
            module.module_calls.update(entry)
        for entry in tree.get("variable", []):
            module.variables.update(entry)
        for entry in tree.get("output", []):
            module.outputs.update(entry)
        for entry in tree.get("locals", []):
            module.locals.update(entry)
        module.terraform.extend(tree.get("terraform", []))
        for entry in tree.get("provider", []):
            module.providers.update(entry)
    return module


def module_dirs() -> list[Path]:
    return sorted(p for p in MODULES.iterdir() if p.is_dir())


def env_dirs() -> list[Path]:
    return [ENVS / name for name in ENV_NAMES]


def all_modules() -> list[Module]:
    return [load_module(p) for p in module_dirs() + env_dirs()]


def walk_strings(value: Any) -> list[str]:
    """Every string (expression or literal) anywhere inside a parsed value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in walk_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in walk_strings(v)]
    return []


def walk_pairs(value: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` at any depth (attributes and object keys)."""
    found: list[Any] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                found.append(v)
            found.extend(walk_pairs(v, key))
    elif isinstance(value, list):
        for v in value:
            found.extend(walk_pairs(v, key))
    return found


def first(body: Body, key: str) -> Body:
    """The single nested block ``key`` of ``body``."""
    value = body.get(key)
    assert is_block_list(value) and len(value) == 1, f"expected one {key!r} block, got {value!r}"
    return value[0]


def dynamic(body: Body, label: str) -> Body | None:
    for entry in body.get("dynamic", []):
        if label in entry:
            return entry[label]
    return None


def optional_default(type_expr: str, attr: str) -> str | None:
    """Default of ``attr = optional(T, DEFAULT)`` inside an object type expression."""
    match = re.search(rf"\b{re.escape(attr)}\s*=\s*optional\([^,()]+,\s*([^()]+?)\)", type_expr)
    return match.group(1).strip().strip('"') if match else None
