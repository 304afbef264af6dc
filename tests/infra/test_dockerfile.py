"""Structure of the function image that hadolint cannot know about."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.infra.tf import INFRA, REPO

DOCKER = INFRA / "docker"
DOCKERFILE = DOCKER / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _args() -> dict[str, str]:
    return dict(rest.split("=", 1) for kw, rest in _instructions() if kw == "ARG" and "=" in rest)


def test_base_image_is_a_pinned_cuda_runtime_matching_onnxruntime_gpu() -> None:
    args = _args()
    base = args["CUDA_IMAGE"]
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-cudnn-runtime-ubuntu\d+\.\d+", base)
    assert match, f"base must be an exact nvidia/cuda X.Y.Z-cudnn-runtime tag, got {base}"
    assert "latest" not in base
    # onnxruntime-gpu <= 1.26 is built for CUDA 12 / cuDNN 9; 1.27+ for CUDA 13.
    ort = tuple(int(p) for p in args["ONNXRUNTIME_GPU_VERSION"].split("."))
    cuda_major = int(match.group(1))
    assert cuda_major == (12 if ort <= (1, 26, 0) else 13), (base, ort)
    froms = [rest for kw, rest in _instructions() if kw == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    assert all(f.startswith("${CUDA_IMAGE}") for f in froms), froms


def test_runs_as_non_root_with_the_functions_framework_entrypoint() -> None:
    instructions = _instructions()
    users = [rest for kw, rest in instructions if kw == "USER"]
    assert users, "no USER instruction: the image would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}, users[-1]
    last_user = max(i for i, (kw, _) in enumerate(instructions) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in instructions[last_user:]), "RUN after USER drop"
    entry = [rest for kw, rest in instructions if kw == "ENTRYPOINT"]
    assert entry == ['["/app/entrypoint.sh"]'], entry
    script = (DOCKER / "entrypoint.sh").read_text()
    assert "exec functions-framework" in script and '--target="${target}"' in script


def test_gpu_extra_replaces_cpu_onnxruntime_and_build_verifies_models() -> None:
    runs = " ".join(rest for kw, rest in _instructions() if kw == "RUN")
    assert 'pip install ".[gpu]"' in runs
    assert "pip uninstall -y onnxruntime" in runs
    assert "onnxruntime-gpu==${ONNXRUNTIME_GPU_VERSION}" in runs
    assert "verify_image.py --expect-cuda --models-dir /app/models" in runs
    copies = [rest for kw, rest in _instructions() if kw == "COPY"]
    assert "models/ models/" in copies and "functions/ functions/" in copies


def test_dockerignore_keeps_the_context_small_but_complete() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**")] == "**", "context must start from deny-all"
    for needed in (
        "!pyproject.toml",
        "!README.md",
        "!shared/",
        "!functions/",
        "!models/",
        "!infra/docker/entrypoint.sh",
        "!infra/docker/verify_image.py",
    ):
        assert needed in ignore, needed


def _run_entrypoint(target: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "functions-framework").write_text('#!/bin/sh\necho "ARGS $*"\n')
    (fake / "functions-framework").chmod(0o755)
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh")],
        env={"PATH": f"{fake}:/usr/bin:/bin", "FUNCTION_TARGET": target, "PORT": "9090"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
        cwd=REPO,
    )


def test_entrypoint_maps_target_to_its_source_and_rejects_unknown(tmp_path: Path) -> None:
    ok = _run_entrypoint("indexer", tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [
        "ARGS",
        "--source=/app/functions/indexer/main.py",
        "--target=indexer",
        "--host=0.0.0.0",
        "--port=9090",
    ]
    (tmp_path / "bin" / "python3").write_text('#!/bin/sh\necho "PY $*"\n')
    (tmp_path / "bin" / "python3").chmod(0o755)
    job = _run_entrypoint("recluster", tmp_path)
    assert job.returncode == 0, job.stderr
    assert job.stdout.split() == ["PY", "-m", "facesearch.people.jobs"]
    bad = _run_entrypoint("shell", tmp_path)
    assert bad.returncode == 64 and "must be one of" in bad.stderr
