"""Module wiring that `terraform validate` would check, done offline on the parsed HCL:
module arguments match the callee's variables, every var./local./module. reference
resolves, everything is documented; plus the per-environment roots and their examples."""

from __future__ import annotations

import re

import pytest

from tests.infra.tf import (
    ENVS,
    MODULES,
    Module,
    all_modules,
    env_dirs,
    load_module,
    parse,
    walk_strings,
)

CALL_META = {"source", "version", "depends_on", "count", "for_each", "providers"}


def _refs(module: Module, pattern: str) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for tree in module.raw.values():
        for text in walk_strings(tree):
            for match in re.finditer(pattern, text):
                found.add(match.groups())
    return found


@pytest.mark.parametrize("module", all_modules(), ids=lambda m: m.name)
def test_module_calls_match_callee_variables(module: Module) -> None:
    problems = []
    for name, call in module.module_calls.items():
        callee_dir = (module.path / call["source"]).resolve()
        assert callee_dir.is_dir(), f"{module.name}: module {name} source {call['source']} missing"
        callee = load_module(callee_dir)
        passed = set(call) - CALL_META
        unknown = passed - set(callee.variables)
        required = {v for v, body in callee.variables.items() if "default" not in body}
        missing = required - passed
        if unknown:
            problems.append(f"{module.name}: module {name} passes undeclared {sorted(unknown)}")
        if missing:
            problems.append(f"{module.name}: module {name} misses required {sorted(missing)}")
        for mod_name, output in _refs(module, r"\bmodule\.([a-z0-9_]+)\.([a-z0-9_]+)"):
            if mod_name == name and output not in callee.outputs:
                problems.append(f"{module.name}: module.{name}.{output} is not an output")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("module", all_modules(), ids=lambda m: m.name)
def test_var_local_and_module_references_resolve(module: Module) -> None:
    variables = {v for (v,) in _refs(module, r"(?<![\w.])var\.([a-z0-9_]+)")}
    locals_ = {v for (v,) in _refs(module, r"(?<![\w.])local\.([a-z0-9_]+)")}
    modules = {m for (m, _) in _refs(module, r"(?<![\w.])module\.([a-z0-9_]+)\.([a-z0-9_]+)")}
    assert variables <= set(module.variables), sorted(variables - set(module.variables))
    assert locals_ <= set(module.locals), sorted(locals_ - set(module.locals))
    assert modules <= set(module.module_calls), sorted(modules - set(module.module_calls))
    unused = set(module.variables) - variables
    assert not unused, f"{module.name}: unused variables {sorted(unused)}"


@pytest.mark.parametrize("module", all_modules(), ids=lambda m: m.name)
def test_variables_and_outputs_are_typed_and_described(module: Module) -> None:
    for name, body in module.variables.items():
        assert body.get("description"), f"{module.name}: variable {name} has no description"
        assert body.get("type"), f"{module.name}: variable {name} has no type"
    for name, body in module.outputs.items():
        assert body.get("description"), f"{module.name}: output {name} has no description"


@pytest.mark.parametrize("env_dir", env_dirs(), ids=lambda p: p.name)
def test_environment_root_is_complete(env_dir) -> None:
    root = load_module(env_dir)
    backends = [b for t in root.terraform for b in t.get("backend", [])]
    assert backends and "gcs" in backends[0], f"{env_dir.name}: needs a gcs backend block"
    assert root.module_calls["facesearch"]["source"] == "../../modules/facesearch"
    assert root.module_calls["facesearch"]["environment"] == env_dir.name
    for output in (
        "query_url",
        "cloudinary_webhook_url",
        "artifact_registry",
        "buckets",
        "service_urls",
        "secrets",
        "dead_letter_subscriptions",
    ):
        assert output in root.outputs, f"{env_dir.name}: output {output} missing"

    backend_example = parse(env_dir / "backend.hcl.example")
    assert set(backend_example) == {"bucket", "prefix"}
    assert backend_example["prefix"] == f"facesearch/{env_dir.name}"

    tfvars = parse(env_dir / "terraform.tfvars.example")
    assert set(tfvars) <= set(root.variables), sorted(set(tfvars) - set(root.variables))
    required = {v for v, body in root.variables.items() if "default" not in body}
    assert required <= set(tfvars), f"example lacks required {sorted(required - set(tfvars))}"
    secrets = {"signing_keys", "cloudinary_api_secret"}
    assert not secrets & set(tfvars), "secret values never go into tfvars"


def _env_args(name: str) -> dict:
    return load_module(ENVS / name).module_calls["facesearch"]


def test_environments_differ_where_they_should() -> None:
    dev, prod = _env_args("dev"), _env_args("prod")
    assert dev["deletion_protection"] is False and prod["deletion_protection"] is True
    assert dev["force_destroy_buckets"] is True and prod["force_destroy_buckets"] is False
    assert dev["ingest"]["min_instances"] == 0 and prod["ingest"]["min_instances"] >= 1
    assert dev["ingest"]["max_instances"] == 1
    assert dev["gpu_zonal_redundancy_disabled"] is True
    assert prod["gpu_zonal_redundancy_disabled"] is False
    assert prod["firestore_point_in_time_recovery"] is True
    assert prod["immutable_image_tags"] is True
    assert prod["soft_delete_retention_seconds"] > dev["soft_delete_retention_seconds"]
    assert "query_gpu" in load_module(ENVS / "prod").variables


def test_every_module_directory_is_used() -> None:
    used = {
        (load_module(m.path).path / call["source"]).resolve()
        for m in all_modules()
        for call in m.module_calls.values()
    }
    for path in sorted(p for p in MODULES.iterdir() if p.is_dir()):
        assert path.resolve() in used, f"module {path.name} is never called"
