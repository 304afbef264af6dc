"""Committed model files match their manifest pins, and the tfjs converter's pure parts.

A committed model is one whose bytes live in git (``"committed": true``); nothing
rebuilds it at setup, so a silent change (a bad merge, LFS pointer, re-conversion
with other tool versions) would only show up as wrong scores. Here it fails loudly.
The converter itself needs TensorFlow (``make models-tfjs``); its TF-free parts —
reading tfjs weight shards, restoring ``TArgs``, canonical ONNX names — are tested
here with the project venv.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from facesearch.config import DEFAULT_MODELS_DIR
from facesearch.vision.registry import load_manifest, sha256_file

EXPORT_DIR = DEFAULT_MODELS_DIR / "export"


def _committed() -> list[tuple[str, dict[str, Any]]]:
    raw = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())["models"]
    return [(name, entry) for name, entry in sorted(raw.items()) if entry.get("committed")]


def _load_script(name: str) -> ModuleType:
    """Import a models/export script (not a package); its folder must be importable too."""
    if name in sys.modules:
        return sys.modules[name]
    if str(EXPORT_DIR) not in sys.path:
        sys.path.insert(0, str(EXPORT_DIR))
    spec = importlib.util.spec_from_file_location(name, EXPORT_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_there_are_committed_models() -> None:
    names = [name for name, _ in _committed()]
    assert {"mobileface-v1", "liveness-v1", "faceres-deep-v1"} <= set(names), names


@pytest.mark.parametrize(("name", "entry"), _committed(), ids=[n for n, _ in _committed()])
def test_committed_model_matches_its_pin(name: str, entry: dict[str, Any]) -> None:
    path = DEFAULT_MODELS_DIR / entry["file"]
    assert path.is_file(), f"{name}: {path} is missing"
    assert sha256_file(path) == entry["sha256"], f"{name}: {path} differs from its pin"
    assert load_manifest(DEFAULT_MODELS_DIR)[name].committed


@pytest.mark.parametrize(("name", "entry"), _committed(), ids=[n for n, _ in _committed()])
def test_committed_model_has_licence_and_provenance(name: str, entry: dict[str, Any]) -> None:
    folder = (DEFAULT_MODELS_DIR / entry["file"]).parent
    assert (folder / "LICENSE").is_file(), f"{name}: no LICENSE beside the model"
    provenance = (folder / "PROVENANCE.md").read_text()
    assert entry["sha256"] in provenance, f"{name}: PROVENANCE.md names another file hash"
    assert entry["license"] and entry["source"] and entry["produced_by"]


@pytest.mark.parametrize(("name", "entry"), _committed(), ids=[n for n, _ in _committed()])
def test_committed_model_loads_and_has_one_input(name: str, entry: dict[str, Any]) -> None:
    model = onnx.load(str(DEFAULT_MODELS_DIR / entry["file"]))
    onnx.checker.check_model(model)
    assert len(model.graph.input) == 1
    # attribute models have several heads (faceres-deep: gender, embedding, age)
    assert len(model.graph.output) == 1 or entry["role"] == "attributes"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


# --------------------------------------------------------------------------------------
# The converter's TF-free parts


def test_read_weights_cuts_shards_in_manifest_order_and_dequantises(tmp_path: Path) -> None:
    tfjs_graph = _load_script("tfjs_graph")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([7, -8], dtype=np.int32)
    c = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    q = np.array([0, 10, 255], dtype=np.uint8)  # affine: value * 0.5 - 1
    blob = a.tobytes() + b.tobytes() + c.astype(np.float16).tobytes() + q.tobytes()
    (tmp_path / "m.bin").write_bytes(blob[:20])
    (tmp_path / "m2.bin").write_bytes(blob[20:])
    manifest = [
        {
            "paths": ["m.bin", "m2.bin"],
            "weights": [
                {"name": "a", "shape": [2, 3], "dtype": "float32"},
                {"name": "b", "shape": [2], "dtype": "int32"},
                {
                    "name": "c",
                    "shape": [3],
                    "dtype": "float32",
                    "quantization": {"dtype": "float16", "original_dtype": "float32"},
                },
                {
                    "name": "q",
                    "shape": [3],
                    "dtype": "float32",
                    "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0},
                },
            ],
        }
    ]
    weights = tfjs_graph.read_weights(manifest, tmp_path)
    assert np.array_equal(weights["a"], a) and np.array_equal(weights["b"], b)
    assert weights["c"].dtype == np.float32 and np.allclose(weights["c"], c)
    assert np.allclose(weights["q"], [-1.0, 4.0, 126.5])


def test_read_weights_refuses_shards_of_the_wrong_length(tmp_path: Path) -> None:
    tfjs_graph = _load_script("tfjs_graph")
    (tmp_path / "m.bin").write_bytes(b"\0" * 12)
    manifest: list[dict[str, Any]] = [
        {"paths": ["m.bin"], "weights": [{"name": "a", "shape": [2], "dtype": "float32"}]}
    ]
    with pytest.raises(ValueError, match="unread bytes"):
        tfjs_graph.read_weights(manifest, tmp_path)
    manifest[0]["weights"][0]["shape"] = [4]
    with pytest.raises(ValueError, match="past the end"):
        tfjs_graph.read_weights(manifest, tmp_path)


def test_patch_restores_targs_on_fused_conv_only() -> None:
    tfjs_graph = _load_script("tfjs_graph")
    topology: dict[str, list[dict[str, Any]]] = {
        "node": [
            {
                "name": "c",
                "op": "_FusedConv2D",
                "attr": {"T": {"type": "DT_FLOAT"}, "num_args": {"i": "2"}},
            },
            {  # TF's _FusedMatMul has no TArgs attribute
                "name": "m",
                "op": "_FusedMatMul",
                "attr": {"T": {"type": "DT_FLOAT"}, "num_args": {"i": "1"}},
            },
            {"name": "r", "op": "Relu", "attr": {"T": {"type": "DT_FLOAT"}}},
        ]
    }
    assert tfjs_graph.patch_fused_targs(topology) == 1
    attrs = [n["attr"] for n in topology["node"]]
    assert attrs[0]["TArgs"] == {"list": {"type": ["DT_FLOAT", "DT_FLOAT"]}}
    assert "TArgs" not in attrs[1] and "TArgs" not in attrs[2]
    assert tfjs_graph.patch_fused_targs(topology) == 0  # idempotent


def _graph(counter: int) -> onnx.ModelProto:
    """A tiny graph whose generated names carry tf2onnx-style run-dependent counters."""
    w = helper.make_tensor(f"const_fold_opt__{counter}", TensorProto.FLOAT, [1], [2.0])
    nodes = [
        helper.make_node("Mul", ["x", w.name], [f"Mul__{counter + 1}:0"], f"Mul__{counter + 1}"),
        helper.make_node("Relu", [f"Mul__{counter + 1}:0"], ["y"], f"Relu__{counter + 7}"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [w],
    )
    return helper.make_model(graph)


def test_canonical_names_make_differently_numbered_runs_identical() -> None:
    convert = _load_script("convert_tfjs")
    first, second = _graph(576), _graph(913)
    assert first.SerializeToString() != second.SerializeToString()
    for model in (first, second):
        convert._normalise(model, "g")
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(
        deterministic=True
    )
    onnx.checker.check_model(first)
    assert [n.name for n in first.graph.node] == ["Mul", "Relu"]
    assert first.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert first.producer_name == convert.PRODUCER_NAME
