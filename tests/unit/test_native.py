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


@pytest.mark.parametrize(("dtype", "metric"), [("f16", "ip"), ("f32", "ip"), ("i8", "cos")])
@pytest.mark.parametrize("rows", [1, 3])
def test_raw_search_equals_the_public_wrapper(dtype: str, metric: str, rows: int) -> None:
    """native.search_many skips usearch's Python wrapper; it must answer exactly the same."""
    import numpy as np

    from facesearch.native import Index, search_many

    rng = np.random.default_rng(rows)
    data = rng.standard_normal((300, 24)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    index = Index(ndim=24, metric=metric, dtype=dtype)
    index.add(np.arange(300, dtype=np.uint64), data)
    queries = data[:rows] + 0.05 * rng.standard_normal((rows, 24)).astype(np.float32)
    keys, dist, found = search_many(index, queries, 7, exact=False, threads=1)
    wrapped = index.search(queries, 7, threads=1)
    want_keys = np.asarray(wrapped.keys).reshape(rows, -1)
    want_dist = np.asarray(wrapped.distances).reshape(rows, -1)
    assert found.tolist() == [7] * rows
    assert np.array_equal(keys, want_keys)
    assert np.array_equal(dist, want_dist)
