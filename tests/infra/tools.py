"""Locate the command-line tools the infra checks need; a missing tool is a failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.infra.tf import INFRA

TOOLS_VENV = INFRA / ".tools" / "venv"


def tool(name: str, hint: str) -> Path:
    """A required command-line tool, or a test failure that says how to install it."""
    local = TOOLS_VENV / "bin" / name
    if local.is_file():
        return local
    found = shutil.which(name)
    if found:
        return Path(found)
    pytest.fail(f"{name} not found (looked in {TOOLS_VENV}/bin and PATH): {hint}", pytrace=False)
