"""Every resource type, argument and nested block we write exists in the google provider.

`terraform validate` needs the provider binary, which cannot be downloaded here. Instead,
infra/schema/google-provider-schema.json holds the schema of google provider 6.50.0 for
the types we use (distilled from npm @cdktf/provider-google by
infra/scripts/distill_provider_schema.py), plus the names of every resource and data
source. This catches typos in types, arguments and blocks, missing required arguments,
and references to attributes a resource does not export.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from tests.infra.tf import (
    INFRA,
    Body,
    Module,
    Resource,
    all_modules,
    is_block_list,
    walk_strings,
)

SCHEMA_PATH = INFRA / "schema" / "google-provider-schema.json"
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}
REGENERATE = "re-run `python infra/scripts/distill_provider_schema.py` (needs npm)"


@cache
def schema() -> dict[str, Any]:
    if not SCHEMA_PATH.is_file():
        pytest.fail(f"{SCHEMA_PATH} missing: {REGENERATE}")
    return json.loads(SCHEMA_PATH.read_text())


def entry_for(res: Resource) -> dict[str, Any]:
    doc = schema()
    names = doc["resource_types"] if res.kind == "resource" else doc["data_source_types"]
    table = doc["resources"] if res.kind == "resource" else doc["data_sources"]
    assert res.type in names, (
        f"{res.address}: {res.type} is not a {res.kind} type of google provider "
        f"{doc['provider_version']}"
    )
    assert res.type in table, f"{res.address}: schema subset lacks {res.type}; {REGENERATE}"
    return table[res.type]


def check_body(body: Body, spec: dict[str, Any], where: str, *, top: bool) -> list[str]:
    problems: list[str] = []
    attrs, blocks = spec["attributes"], spec["blocks"]
    present: set[str] = set()
    for key, value in body.items():
        if top and key in META_ARGUMENTS:
            continue
        if key == "dynamic":
            for entry in value:
                for label, dyn in entry.items():
                    present.add(label)
                    if label not in blocks:
                        problems.append(f"{where}: dynamic block {label!r} is not a block here")
                        continue
                    for content in dyn.get("content", []):
                        problems += check_body(
                            content, blocks[label], f"{where}.{label}", top=False
                        )
            continue
        present.add(key)
        if is_block_list(value):
            if key not in blocks:
                kind = "an attribute" if key in attrs else "unknown"
                problems.append(f"{where}: block {key!r} is {kind}")
                continue
            if not blocks[key]["list"] and len(value) > 1:
                problems.append(f"{where}: block {key!r} may appear once")
            for item in value:
                problems += check_body(item, blocks[key], f"{where}.{key}", top=False)
        elif key not in attrs:
            kind = "a block (use `key { }`)" if key in blocks else "not an argument"
            problems.append(f"{where}: {key!r} is {kind}")
    for name, info in {**attrs, **blocks}.items():
        if info["required"] and name not in present and name != "id":
            problems.append(f"{where}: required {name!r} missing")
    return problems


@pytest.mark.parametrize("module", all_modules(), ids=lambda m: m.name)
def test_resources_match_provider_schema(module: Module) -> None:
    problems: list[str] = []
    for res in module.resources:
        problems += check_body(res.body, entry_for(res), res.address, top=True)
    assert not problems, "\n".join(problems)


_REF = re.compile(
    r"(?<![\w.])(data\.)?(google_[a-z0-9_]+)\.([a-z0-9_-]+)(?:\[[^\]]*\])?\.([a-z0-9_]+)"
)


@pytest.mark.parametrize("module", all_modules(), ids=lambda m: m.name)
def test_references_use_exported_attributes(module: Module) -> None:
    declared = {(r.kind, r.type, r.name) for r in module.resources}
    doc = schema()
    problems = []
    for tree in module.raw.values():
        for text in walk_strings(tree):
            for data, type_, name, attr in _REF.findall(text):
                kind = "data" if data else "resource"
                if (kind, type_, name) not in declared:
                    problems.append(f"{module.name}: reference to undeclared {data}{type_}.{name}")
                    continue
                table = doc["data_sources"] if data else doc["resources"]
                if attr not in table[type_]["exported"]:
                    problems.append(f"{module.name}: {data}{type_}.{name}.{attr} is not exported")
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("module", all_modules(), ids=lambda m: m.name)
def test_provider_blocks_match_schema(module: Module) -> None:
    spec = schema()["provider_config"]
    for name, body in module.providers.items():
        assert name == "google", f"{module.name}: unexpected provider {name}"
        problems = check_body(body, spec, f"{module.name} provider", top=True)
        assert not problems, "\n".join(problems)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_schema_version_satisfies_every_provider_pin() -> None:
    provider_version = _version_tuple(schema()["provider_version"])
    assert schema()["package"] == "@cdktf/provider-google"
    pins = []
    for module in all_modules():
        for block in module.terraform:
            for required in block.get("required_providers", []):
                google = required.get("google")
                assert google, f"{module.name}: required_providers lacks google"
                assert google["source"] == "hashicorp/google"
                pins.append((module.name, google["version"]))
    assert len(pins) == len(all_modules()), f"every module pins the provider: {pins}"
    for name, constraint in pins:
        parts = [c.strip() for c in constraint.split(",")]
        assert any(p.startswith("<") for p in parts), f"{name}: no upper bound in {constraint!r}"
        for part in parts:
            op, version = re.fullmatch(r"(>=|<=|<|>|=|~>)\s*([\d.]+)", part).groups()
            v = _version_tuple(version)
            ok = {
                ">=": provider_version >= v,
                "<=": provider_version <= v,
                ">": provider_version > v,
                "<": provider_version < v,
                "=": provider_version == v,
                "~>": provider_version >= v and provider_version[: len(v) - 1] == v[: len(v) - 1],
            }[op]
            assert ok, f"{name}: schema {provider_version} outside pin {constraint!r}"


def test_checker_catches_typos() -> None:
    """The checker itself must reject a misspelt argument, a wrong block and a missing one."""
    bucket = schema()["resources"]["google_storage_bucket"]
    body = Body(
        {
            "name": "x",
            "location": "EU",
            "uniform_bucket_level_acess": True,
            "versioning": [Body({"enabled": True, "mode": "x"})],
            "encryption": "not-a-block",
        }
    )
    problems = check_body(body, bucket, "t", top=True)
    assert any("uniform_bucket_level_acess" in p for p in problems)
    assert any("'mode'" in p for p in problems)
    assert any("'encryption' is a block" in p for p in problems)
    missing = check_body(Body({"name": "x"}), bucket, "t", top=True)
    assert missing == ["t: required 'location' missing"]
