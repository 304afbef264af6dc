"""docs/deploy.md's runtime contract must equal what Terraform and the image really set."""

from __future__ import annotations

import re

from tests.infra.tf import INFRA, MODULES, REPO, load_module, walk_strings

DOC = REPO / "docs" / "deploy.md"


def _doc_table_vars() -> set[str]:
    return set(re.findall(r"^\| `(FACESEARCH_[A-Z0-9_]+)` \|", DOC.read_text(), re.MULTILINE))


def _terraform_vars() -> set[str]:
    stack = load_module(MODULES / "facesearch")
    names: set[str] = set(stack.locals["common_env"])
    texts = list(walk_strings(stack.locals["service_env"]))
    # Maps that service_env merges from other locals (e.g. local.cloudinary_delivery_env).
    merged = {m for t in texts for m in re.findall(r"\blocal\.(\w+_env)\b", t)}
    assert "common_env" in merged
    for name in sorted(merged - {"common_env"}):
        value = stack.locals[name]
        if isinstance(value, dict):
            names.update(k for k in value if k.startswith("FACESEARCH_"))
        else:
            texts.extend(walk_strings(value))
    for text in texts:
        names.update(re.findall(r"\b(FACESEARCH_[A-Z0-9_]+)\s*=", text))
    return names


def _image_vars() -> set[str]:
    text = (INFRA / "docker" / "Dockerfile").read_text()
    return set(re.findall(r"\b(FACESEARCH_[A-Z0-9_]+)=", text))


def test_documented_env_vars_are_exactly_the_ones_set() -> None:
    documented = _doc_table_vars()
    set_by_infra = _terraform_vars() | _image_vars()
    assert len(set_by_infra) >= 20
    assert documented == set_by_infra, (
        f"only documented: {sorted(documented - set_by_infra)}; "
        f"only set: {sorted(set_by_infra - documented)}"
    )


def test_documented_composite_indexes_match_the_variable_default() -> None:
    default = load_module(MODULES / "facesearch").variables["firestore_composite_indexes"][
        "default"
    ]
    text = DOC.read_text()
    for index in default.values():
        fields = ", ".join(
            f"{f['field_path']} {'ASC' if f['order'] == 'ASCENDING' else 'DESC'}"
            for f in index["fields"]
        )
        assert f"`{index['collection']}({fields})`" in text, (index, "not in docs/deploy.md")


def test_doc_names_the_commands_that_exist() -> None:
    text = DOC.read_text()
    for path in (
        "infra/scripts/build-image.sh",
        "infra/scripts/tf-validate.sh",
        "infra/scripts/setup-tools.sh",
        "infra/scripts/distill_provider_schema.py",
        "infra/docker/cloudbuild.yaml",
        "infra/docker/gcloudignore",
    ):
        assert path in text, path
        assert (REPO / path).is_file(), path
    for env in ("dev", "prod"):
        assert f"infra/terraform/envs/{env}" in text or "envs/$ENV" in text


def test_doc_describes_the_retention_job_and_the_collection_grants() -> None:
    stack = load_module(MODULES / "facesearch")
    text = DOC.read_text()
    job = stack.resource("google_cloud_scheduler_job", "retention").body
    assert job["name"] == "${local.prefix}-retention"
    assert "`facesearch-<env>-retention`" in text
    assert f"`{stack.variables['retention_schedule']['default']}`" in text
    assert f"`{stack.variables['retention_time_zone']['default']}`" in text
    assert "`retention_schedule = null`" in text
    assert '{"v": 1, "action": "retention", "collection": null}' in text
    assert "kind=control" in text and "gcp-sa-cloudscheduler" in text
    roles = {r.name: r.body for r in stack.of_type("google_project_iam_custom_role")}
    for name in roles:
        assert f"`facesearch_<env>_{name}`" in text, name
    assert "`storage.objects.list` + `storage.objects.delete`" in text
    assert sorted(roles["collection_eraser"]["permissions"]) == [
        "storage.objects.delete",
        "storage.objects.list",
    ]
    assert "need no Terraform" in text
