"""usearch + onnxruntime in one process: the import order that crashed must not recur."""

from __future__ import annotations

import subprocess
import sys

import pytest

SNIPPETS = [
    "import facesearch.native, onnxruntime",
    "import facesearch.index.reader, facesearch.vision.pipeline",
    "import facesearch.index.segment, facesearch.vision.embed",
]


@pytest.mark.parametrize("code", SNIPPETS)
def test_both_native_libraries_load_in_any_module_order(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code + "; print('ok')"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{code!r} exited {result.returncode}: {result.stderr[-500:]}"
    assert result.stdout.strip() == "ok"


def test_usearch_is_only_imported_through_facesearch_native() -> None:
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "shared" / "facesearch"
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "native.py"
        and any(
            line.strip().startswith(("import usearch", "from usearch"))
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == [], f"import usearch via facesearch.native in: {offenders}"
