"""The GPU smoke script without a GPU: it must refuse clearly, and its measurements
run end to end on the CPU provider (the same code path, another provider)."""

from __future__ import annotations

import json

import onnxruntime as ort
import pytest

from tests.bench import common, gpu_smoke


@pytest.mark.skipif(gpu_smoke.CUDA in ort.get_available_providers(), reason="this machine has CUDA")
def test_without_cuda_it_fails_saying_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_smoke.main([]) == 2
    message = capsys.readouterr().err
    assert "CUDAExecutionProvider is not in this onnxruntime build" in message
    assert ".[gpu]" in message


def test_the_checks_run_on_the_cpu_provider(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert (
        gpu_smoke.main(["--provider", "CPUExecutionProvider", "--batches", "1,4", "--seconds", "0"])
        == 0
    )
    report = json.loads((tmp_path / "gpu_smoke.json").read_text())["summary"]
    assert report["passed"] and len(report["checks"]) == 6
    assert report["embedding_max_abs_diff"] <= 1e-5  # same provider: identical maths
    assert set(report["faces_per_s"]) == {"1", "4"}
    assert report["detector_images_per_s"] > 0
