"""Build-time self-check of the function image (also usable on any install of the project).

1. Every model in ``models/manifest.json`` is present and matches its pinned sha256
   (the same check as ``facesearch models verify``, via
   :func:`facesearch.vision.registry.verify_all`).
2. With ``--expect-cuda``: onnxruntime is the GPU build (CUDA execution provider compiled in)
   and the CPU-only ``onnxruntime`` distribution is not installed beside it.
3. functions-framework and the four entry points are importable-as-files.

Exits non-zero with one line per problem.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path

TARGETS = ("ingest", "indexer", "query", "cloudinary")


def check_models(models_dir: Path) -> list[str]:
    from facesearch.vision.registry import load_manifest, verify_all

    load_manifest.cache_clear()
    problems = [
        f"model {spec.name}: {status}" for spec, status in verify_all(models_dir) if status != "ok"
    ]
    count = len(load_manifest(models_dir))
    print(f"models: {count} in manifest, {count - len(problems)} verified")
    return problems


def check_onnxruntime(expect_cuda: bool) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    print(f"onnxruntime {ort.__version__}: {available}")
    problems = []
    if expect_cuda:
        if "CUDAExecutionProvider" not in available:
            problems.append(
                "onnxruntime has no CUDAExecutionProvider: the GPU build is not installed"
            )
        installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
        if "onnxruntime" in installed:
            problems.append("the CPU-only onnxruntime wheel is installed beside onnxruntime-gpu")
    if "CPUExecutionProvider" not in available:
        problems.append("onnxruntime has no CPUExecutionProvider fallback")
    return problems


def check_functions(app_dir: Path) -> list[str]:
    import functions_framework  # noqa: F401

    missing = [t for t in TARGETS if not (app_dir / "functions" / t / "main.py").is_file()]
    return [f"missing entry point functions/{t}/main.py" for t in missing]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--app-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--expect-cuda", action="store_true")
    args = parser.parse_args()
    problems = (
        check_models(args.models_dir)
        + check_onnxruntime(args.expect_cuda)
        + check_functions(args.app_dir)
    )
    for problem in problems:
        print(f"verify_image: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
