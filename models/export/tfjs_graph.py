"""Turn a TensorFlow.js *graph model* (model.json + .bin shards) into a TF GraphDef.

Why our own reader instead of the ``tensorflowjs`` pip package: that package pulls
tensorflow-decision-forests, jax and flax, far more than a 100-line job needs.
The format is simple: ``modelTopology`` is a GraphDef in protobuf-JSON form whose
``Const`` nodes carry no values; the values are the concatenated ``.bin`` shards,
cut in ``weightsManifest`` order (name, shape, dtype, optional quantisation).

One patch is needed: the tfjs converter drops the ``TArgs`` attribute of
``_FusedConv2D`` (in TF 2.15 the only fused op whose definition has it; checked with
``op_def_registry``). TensorFlow refuses to import such a node (``TArgs`` has no
default), so we restore it as ``[T] * num_args`` — the fused extra inputs (bias, ...)
share the op's dtype.

Only numpy is imported at module level; TensorFlow is imported inside
``to_graph_def``, the one function that needs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# tfjs dtype name -> numpy dtype of the *stored* bytes
_STORED_DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "int32": np.int32,
    "bool": np.bool_,
    "float16": np.float16,
    "uint8": np.uint8,
    "uint16": np.uint16,
}
FUSED_OPS_NEEDING_TARGS = ("_FusedConv2D",)


@dataclass(frozen=True)
class TfjsGraphModel:
    """A parsed tfjs graph model: topology dict, weight arrays, signature names."""

    topology: dict[str, Any]
    weights: dict[str, np.ndarray]
    input_names: list[str]  # tensor names, e.g. "data:0"
    output_names: list[str]


def _dequantise(raw: np.ndarray, quant: dict[str, Any], original: str) -> np.ndarray:
    """Undo tfjs weight quantisation (float16, or affine uint8/uint16)."""
    target = _STORED_DTYPES[original]
    if quant["dtype"] == "float16":
        return np.asarray(raw, dtype=target)
    if "scale" in quant:
        scaled = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
        return np.asarray(scaled, dtype=target)
    raise ValueError(f"unsupported tfjs quantisation {quant}")


def read_weights(manifest: list[dict[str, Any]], shard_dir: Path) -> dict[str, np.ndarray]:
    """Cut the concatenated shards of each manifest group into named arrays."""
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join((shard_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization")
            stored = quant["dtype"] if quant else spec["dtype"]
            if stored not in _STORED_DTYPES:
                raise ValueError(f"weight {spec['name']}: unsupported dtype {stored}")
            dtype = np.dtype(_STORED_DTYPES[stored])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            size = count * dtype.itemsize
            if offset + size > len(blob):
                raise ValueError(f"weight {spec['name']} runs past the end of its shards")
            raw = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
            offset += size
            array = _dequantise(raw, quant, spec["dtype"]) if quant else raw.copy()
            weights[spec["name"]] = array.reshape(spec["shape"])
        if offset != len(blob):
            raise ValueError(f"shards {group['paths']}: {len(blob) - offset} unread bytes")
    return weights


def patch_fused_targs(topology: dict[str, Any]) -> int:
    """Add the ``TArgs`` attr the tfjs converter dropped; returns how many nodes changed."""
    patched = 0
    for node in topology["node"]:
        if node["op"] not in FUSED_OPS_NEEDING_TARGS:
            continue
        attr = node.setdefault("attr", {})
        if "TArgs" in attr:
            continue
        num_args = int(attr.get("num_args", {}).get("i", 0))
        dtype = attr["T"]["type"]
        attr["TArgs"] = {"list": {"type": [dtype] * num_args}}
        patched += 1
    return patched


def _signature_names(model_json: dict[str, Any], key: str) -> list[str]:
    """Tensor names from ``signature`` (older converters put it in ``userDefinedMetadata``)."""
    signature = model_json.get("signature") or (
        (model_json.get("userDefinedMetadata") or {}).get("signature") or {}
    )
    entries = signature.get(key) or {}
    names = [str(v["name"]) for v in entries.values() if "name" in v]
    return [n if ":" in n else f"{n}:0" for n in names]


def load_tfjs(model_json_path: Path) -> TfjsGraphModel:
    """Parse model.json and its shards; input/output names come from the signature."""
    model_json = json.loads(model_json_path.read_text())
    if model_json.get("format") != "graph-model":
        raise ValueError(f"{model_json_path}: not a tfjs graph model")
    topology = model_json["modelTopology"]
    weights = read_weights(model_json["weightsManifest"], model_json_path.parent)
    inputs = _signature_names(model_json, "inputs") or [
        f"{n['name']}:0" for n in topology["node"] if n["op"] == "Placeholder"
    ]
    outputs = _signature_names(model_json, "outputs")
    if not outputs:
        raise ValueError(f"{model_json_path}: no output names in the signature")
    return TfjsGraphModel(topology, weights, inputs, outputs)


def to_graph_def(model: TfjsGraphModel) -> Any:
    """Build a ``tf.compat.v1.GraphDef`` with weights filled into the Const nodes."""
    import tensorflow as tf
    from google.protobuf import json_format

    topology = json.loads(json.dumps(model.topology))  # private copy to patch
    patch_fused_targs(topology)
    graph_def = json_format.ParseDict(
        {k: topology[k] for k in ("node", "library", "versions") if k in topology},
        tf.compat.v1.GraphDef(),
    )
    for node in graph_def.node:
        if node.op != "Const":
            continue
        if node.name not in model.weights:
            raise ValueError(f"Const node {node.name!r} has no weight in the manifest")
        value = model.weights[node.name]
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, shape=value.shape))
    return graph_def
