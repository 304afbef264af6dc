"""Convert dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX.

Why: the dlib model is the best face embedder whose trained weights install offline
(PyPI ``face-recognition-models``; LFW 99.38% published by dlib), but dlib cannot run on
onnxruntime-gpu in Cloud Run. This script reads dlib's own serialization format in pure
Python (no dlib at setup) and writes an equivalent ONNX graph.

The network is ``anet_type`` from dlib's ``examples/dnn_face_recognition_ex.cpp``::

    loss_metric<fc_no_bias<128, avg_pool_everything<
        alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

dlib serializes a network as nested layers: each ``add_layer`` writes its version, then
its whole sub-network, then its own details, so a file reads from the input layer
upwards while the version integers of the outer layers come first. Tag and skip layers
leave no details. The layer order can therefore not be recovered from the bytes alone:
the parser is driven by the architecture above, and checks every version string,
kernel size, stride, padding and tensor shape against it, and that the whole file is
consumed.

Model input is NCHW float32 ``(pixel - mean) / 256`` with dlib's channel means, RGB
order, 150x150 (the mean/scale are recorded in the manifest, applied by FaceEmbedder).
Output: 128-d descriptor, not normalised (exactly what dlib returns).

Usage::

    python models/export/build_dlib_resnet.py          # write models/generated/dlib_resnet_v1.onnx
    python models/export/build_dlib_resnet.py --check  # rebuild in memory, compare with file
    python models/export/build_dlib_resnet.py --print-sha256
    python models/export/build_dlib_resnet.py --write-manifest  # (re)pin entry dlib-resnet-v1
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO_ROOT / "models" / "generated" / "dlib_resnet_v1.onnx"
DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
MANIFEST = REPO_ROOT / "models" / "manifest.json"
MODEL_NAME = "dlib-resnet-v1"
# Provisional: dlib's published operating point (Euclidean 0.6 on raw descriptors, whose
# norms are ~1.46) as a cosine, 1 - (0.6/1.46)**2 / 2. To be calibrated on a labelled set.
PROVISIONAL_MATCH_THRESHOLD = 0.915

# Pinned so the output bytes (and so the manifest sha256) never change between runs.
PRODUCER_NAME = "facesearch-export"
PRODUCER_VERSION = "1"
OPSET = 17
IR_VERSION = 8
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
INPUT_SIZE = 150

# float_details special exponents (dlib/float_details.h).
_IS_INF, _IS_NINF, _IS_NAN = 32000, 32001, 32002
_CONV_MODE = 0  # dlib layer_mode
_FC_NO_BIAS = 1  # dlib fc_bias_mode


class DlibFormatError(ValueError):
    """The bytes do not match what dlib's serializer writes for this architecture."""


# --------------------------------------------------------------------------------------
# dlib serialization primitives (dlib/serialize.h, dlib/float_details.h, dnn/tensor.h)
# --------------------------------------------------------------------------------------


class DlibReader:
    """Cursor over a dlib-serialized byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at byte {self.pos} (wanted {n})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def integer(self, *, signed: bool = True) -> int:
        """dlib integer: control byte (bit 7 = negative, low 4 bits = byte count), then LE bytes."""
        at = self.pos
        control = self._take(1)[0]
        size = control & 0x0F
        negative = bool(control & 0x80)
        if size == 0 or size > 8 or (control & 0x70):
            raise DlibFormatError(f"bad integer control byte {control:#04x} at byte {at}")
        if negative and not signed:
            raise DlibFormatError(f"negative value for an unsigned integer at byte {at}")
        value = int.from_bytes(self._take(size), "little")
        return -value if negative else value

    def expect_int(self, allowed: tuple[int, ...], what: str) -> int:
        at = self.pos
        value = self.integer()
        if value not in allowed:
            raise DlibFormatError(f"{what}: expected one of {allowed}, found {value} at byte {at}")
        return value

    def boolean(self) -> bool:
        at = self.pos
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool byte {char!r} at byte {at}")
        return char == b"1"

    def string(self) -> str:
        size = self.integer(signed=False)
        return self._take(size).decode("ascii")

    def expect_string(self, allowed: tuple[str, ...], what: str) -> str:
        at = self.pos
        value = self.string()
        if value not in allowed:
            raise DlibFormatError(
                f"{what}: expected one of {allowed}, found {value!r} at byte {at}"
            )
        return value

    def float32(self) -> np.float32:
        """dlib float_details: int64 mantissa then int16 exponent, value = mantissa * 2**exponent.

        dlib converts back with ``std::ldexp((float)mantissa, exponent)``; doing the same in
        float32 is exact for every value that was a float when serialized.
        """
        mantissa = self.integer()
        exponent = self.integer()
        if exponent == _IS_INF:
            return np.float32(np.inf)
        if exponent == _IS_NINF:
            return np.float32(-np.inf)
        if exponent == _IS_NAN:
            return np.float32(np.nan)
        return np.float32(math.ldexp(float(np.float32(mantissa)), exponent))

    def tensor(self) -> np.ndarray:
        """resizable_tensor: version 2, (n, k, nr, nc) as ints, then raw little-endian float32."""
        self.expect_int((2,), "tensor version")
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape):
            raise DlibFormatError(f"negative tensor shape {shape} at byte {self.pos}")
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        self.expect_int((1,), "alias_tensor version")
        n, k, nr, nc = (self.integer() for _ in range(4))
        return n, k, nr, nc

    def at_end(self) -> bool:
        return self.pos == len(self.data)


# --------------------------------------------------------------------------------------
# The architecture, as dlib's template nesting (outermost first)
# --------------------------------------------------------------------------------------


@dataclass
class Node:
    """One level of dlib's nested network type.

    kind: input | con | affine | relu | max_pool | avg_pool | add_prev | fc | tag | skip | loss
    """

    kind: str
    args: dict[str, int] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


def _con(n: int, k: int, stride: int) -> Node:
    pad = 0 if stride != 1 else k // 2  # dlib's default padding rule
    return Node("con", {"filters": n, "k": k, "stride": stride, "pad": pad})


def _pool(kind: str, k: int, stride: int) -> Node:
    pad = 0 if stride != 1 else k // 2
    return Node(kind, {"k": k, "stride": stride, "pad": pad})


def _block(n: int, stride: int, sub: list[Node]) -> list[Node]:
    # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>  with BN = affine
    return [Node("affine"), _con(n, 3, 1), Node("relu"), Node("affine"), _con(n, 3, stride), *sub]


def _ares(n: int, sub: list[Node]) -> list[Node]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [
        Node("relu"),
        Node("add_prev", {"tag": 1}),
        *_block(n, 1, [Node("tag", {"id": 1}), *sub]),
    ]


def _ares_down(n: int, sub: list[Node]) -> list[Node]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    inner = _block(n, 2, [Node("tag", {"id": 1}), *sub])
    return [
        Node("relu"),
        Node("add_prev", {"tag": 2}),
        _pool("avg_pool", 2, 2),
        Node("skip", {"id": 1}),
        Node("tag", {"id": 2}),
        *inner,
    ]


def anet_type() -> list[Node]:
    """dnn_face_recognition_ex.cpp's anet_type, outermost (loss) first."""
    net: list[Node] = [
        _pool("max_pool", 3, 2),
        Node("relu"),
        Node("affine"),
        _con(32, 7, 2),
        Node("input", {"size": INPUT_SIZE}),
    ]
    for _ in range(3):  # alevel4
        net = _ares(32, net)
    net = _ares_down(64, net)  # alevel3
    for _ in range(3):
        net = _ares(64, net)
    net = _ares_down(128, net)  # alevel2
    for _ in range(2):
        net = _ares(128, net)
    net = _ares_down(256, net)  # alevel1
    for _ in range(2):
        net = _ares(256, net)
    net = _ares_down(256, net)  # alevel0
    global_pool = Node("avg_pool", {"k": 0, "stride": 1, "pad": 0})  # avg_pool_everything
    return [Node("loss"), Node("fc", {"outputs": 128}), global_pool, *net]


# --------------------------------------------------------------------------------------
# Type-driven parser
# --------------------------------------------------------------------------------------


def _read_details(reader: DlibReader, node: Node) -> None:
    """Layer details as written by each layer's serialize() (dlib/dnn/layers.h, input.h)."""
    if node.kind == "input":
        reader.expect_string(("input_rgb_image_sized",), "input layer")
        node.params["mean"] = np.array(
            [reader.float32(), reader.float32(), reader.float32()], dtype=np.float32
        )
        size = (reader.integer(signed=False), reader.integer(signed=False))
        if size != (node.args["size"], node.args["size"]):
            raise DlibFormatError(f"input size {size}, expected {node.args['size']}")
    elif node.kind == "con":
        version = reader.expect_string(("con_4", "con_5"), "con_")
        params = reader.tensor()
        filters = reader.integer()
        nr, nc = reader.integer(), reader.integer()
        sy, sx = reader.integer(), reader.integer()
        py, px = reader.integer(), reader.integer()
        a = node.args
        if (filters, nr, nc, sy, sx, py, px) != (
            a["filters"],
            a["k"],
            a["k"],
            a["stride"],
            a["stride"],
            a["pad"],
            a["pad"],
        ):
            raise DlibFormatError(
                f"con_ geometry {(filters, nr, nc, sy, sx, py, px)} does not match {a}"
            )
        w_shape = reader.alias_tensor()
        b_shape = reader.alias_tensor()
        for _ in range(4):  # learning-rate / weight-decay multipliers
            reader.float32()
        use_bias = reader.boolean() if version == "con_5" else True
        flat = params.reshape(-1)
        w_count = int(np.prod(w_shape))
        if (
            w_shape[0] != filters
            or b_shape != (1, filters, 1, 1)
            or flat.size != w_count + (filters if use_bias else 0)
        ):
            raise DlibFormatError(f"con_ params {params.shape} vs filters {w_shape}/{b_shape}")
        node.params["weight"] = flat[:w_count].reshape(w_shape)
        node.params["bias"] = flat[w_count:] if use_bias else np.zeros(filters, np.float32)
    elif node.kind == "affine":
        version = reader.expect_string(("affine_", "affine_2"), "affine_")
        params = reader.tensor().reshape(-1)
        gamma = reader.alias_tensor()
        beta = reader.alias_tensor()
        mode = reader.integer()
        if version == "affine_2" and reader.boolean():
            raise DlibFormatError("disabled affine_ layer not supported")
        count = int(np.prod(gamma))
        if mode != _CONV_MODE or gamma != beta or gamma[0] != 1 or gamma[2:] != (1, 1):
            raise DlibFormatError(f"affine_ expected CONV_MODE per-channel, got {mode} {gamma}")
        if params.size != 2 * count:
            raise DlibFormatError(f"affine_ params size {params.size} != 2*{count}")
        node.params["gamma"], node.params["beta"] = params[:count], params[count:]
    elif node.kind == "relu":
        reader.expect_string(("relu_",), "relu_")
    elif node.kind == "add_prev":
        reader.expect_string(("add_prev_",), "add_prev_")
    elif node.kind in ("max_pool", "avg_pool"):
        reader.expect_string((f"{node.kind}_2",), node.kind)
        geometry = tuple(reader.integer() for _ in range(6))
        a = node.args
        if geometry != (a["k"], a["k"], a["stride"], a["stride"], a["pad"], a["pad"]):
            raise DlibFormatError(f"{node.kind} geometry {geometry} does not match {a}")
    elif node.kind == "fc":
        version = reader.expect_string(("fc_2", "fc_3"), "fc_")
        outputs = reader.integer(signed=False)
        inputs = reader.integer(signed=False)
        params = reader.tensor().reshape(-1)
        w_shape = reader.alias_tensor()
        reader.alias_tensor()  # biases (empty for fc_no_bias)
        if reader.integer() != _FC_NO_BIAS:
            raise DlibFormatError("expected fc_no_bias")
        for _ in range(4):
            reader.float32()
        if version == "fc_3":
            reader.boolean()
        if outputs != node.args["outputs"] or w_shape != (inputs, outputs, 1, 1):
            raise DlibFormatError(f"fc_ shape {w_shape} / outputs {outputs}")
        node.params["weight"] = params[: inputs * outputs].reshape(inputs, outputs)
    else:
        raise DlibFormatError(f"no details reader for {node.kind}")


def _parse(reader: DlibReader, net: list[Node], i: int) -> None:
    """Deserialize net[i] and everything below it, mirroring dlib's recursive deserialize()."""
    node = net[i]
    if node.kind == "loss":
        reader.expect_int((1,), "add_loss_layer version")
        reader.expect_string(("loss_metric_", "loss_metric_2"), "loss_metric")
        # margin, dist_thresh (loss_metric_2 only) are training-time values: read past them.
        reader.float32()
        reader.float32()
        _parse(reader, net, i + 1)
        return
    if node.kind in ("tag", "skip"):
        reader.expect_int((1,), f"add_{node.kind}_layer version")
        _parse(reader, net, i + 1)
        return
    if net[i + 1].kind == "input":
        # add_layer specialised for an input layer: the input layer is stored inline.
        version = reader.expect_int((2, 3), "add_layer<input> version")
        _read_details(reader, net[i + 1])
        _read_details(reader, node)
        for _ in range(3):
            reader.boolean()
        reader.tensor()  # x_grad
        reader.tensor()  # cached_output
        reader.tensor()  # grad_final
        if version >= 3:
            reader.integer()  # sample_expansion_factor
        return
    version = reader.expect_int((1, 2), "add_layer version")
    _parse(reader, net, i + 1)
    _read_details(reader, node)
    for _ in range(3):
        reader.boolean()
    reader.tensor()  # x_grad
    reader.tensor()  # cached_output
    if version == 2:
        reader.tensor()  # params_grad


def parse_dlib_model(data: bytes) -> list[Node]:
    """Parse the .dat bytes into the anet_type node list (outermost first), weights filled in."""
    net = anet_type()
    reader = DlibReader(data)
    _parse(reader, net, 0)
    if not reader.at_end():
        raise DlibFormatError(f"{len(data) - reader.pos} trailing bytes after the network")
    return net


# --------------------------------------------------------------------------------------
# ONNX graph
# --------------------------------------------------------------------------------------


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str, **attrs: Any) -> str:
        out = self.name(prefix)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _pool_out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def build_onnx(net: list[Node], source_sha256: str) -> onnx.ModelProto:
    """Translate the parsed network (input to output); each affine is folded into its conv.

    Folding ``affine(con(x)) = gamma*(W*x + b) + beta`` into ``(gamma*W)*x + (gamma*b + beta)``
    is done in float64 and rounded once to float32: faster on every provider and within
    float32 rounding of dlib's two-step arithmetic.
    """
    g = _GraphBuilder()
    current = INPUT_NAME
    shape = (3, INPUT_SIZE, INPUT_SIZE)  # C, H, W (batch is dynamic)
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    layers = list(reversed(net))
    for i, node in enumerate(layers):
        a = node.args
        if node.kind in ("input", "loss", "affine"):
            if node.kind == "affine" and layers[i - 1].kind != "con":
                raise DlibFormatError("affine_ not directly after con_: cannot fold")
            continue  # affine was folded by the con before it
        if node.kind == "con":
            weight = node.params["weight"].astype(np.float64)
            bias = node.params["bias"].astype(np.float64)
            if weight.shape[1] != shape[0]:
                raise DlibFormatError(f"con_ expects {weight.shape[1]} channels, got {shape[0]}")
            if layers[i + 1].kind == "affine":
                gamma = layers[i + 1].params["gamma"].astype(np.float64)
                beta = layers[i + 1].params["beta"].astype(np.float64)
                weight = weight * gamma[:, None, None, None]
                bias = bias * gamma + beta
            current = g.op(
                "Conv",
                [
                    current,
                    g.const("conv_w", weight.astype(np.float32)),
                    g.const("conv_b", bias.astype(np.float32)),
                ],
                "conv",
                kernel_shape=[a["k"], a["k"]],
                strides=[a["stride"], a["stride"]],
                pads=[a["pad"]] * 4,
            )
            hw = (
                _pool_out(shape[1], a["k"], a["stride"], a["pad"]),
                _pool_out(shape[2], a["k"], a["stride"], a["pad"]),
            )
            shape = (a["filters"], *hw)
        elif node.kind == "relu":
            current = g.op("Relu", [current], "relu")
        elif node.kind in ("max_pool", "avg_pool") and a["k"] == 0:  # avg_pool_everything
            current = g.op("GlobalAveragePool", [current], "gap")
            shape = (shape[0], 1, 1)
        elif node.kind in ("max_pool", "avg_pool"):
            current = g.op(
                "MaxPool" if node.kind == "max_pool" else "AveragePool",
                [current],
                node.kind,
                kernel_shape=[a["k"], a["k"]],
                strides=[a["stride"], a["stride"]],
                pads=[a["pad"]] * 4,
            )
            shape = (
                shape[0],
                _pool_out(shape[1], a["k"], a["stride"], a["pad"]),
                _pool_out(shape[2], a["k"], a["stride"], a["pad"]),
            )
        elif node.kind == "tag":
            tags[a["id"]] = (current, shape)
        elif node.kind == "skip":
            current, shape = tags[a["id"]]
        elif node.kind == "add_prev":
            other, other_shape = tags[a["tag"]]
            # dlib add_prev_: output dims = max of both; missing elements count as 0.
            out_shape = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )
            current = g.op(
                "Add",
                [
                    _zero_pad(g, current, shape, out_shape),
                    _zero_pad(g, other, other_shape, out_shape),
                ],
                "add",
            )
            shape = out_shape
        elif node.kind == "fc":
            weight = node.params["weight"]
            if shape[0] * shape[1] * shape[2] != weight.shape[0]:
                raise DlibFormatError(f"fc_ expects {weight.shape[0]} inputs, got {shape}")
            flat = g.op("Flatten", [current], "flatten", axis=1)
            current = g.op("MatMul", [flat, g.const("fc_w", weight)], "fc")
        else:
            raise DlibFormatError(f"no ONNX translation for {node.kind}")
    g.nodes.append(helper.make_node("Identity", [current], [OUTPUT_NAME], name="output"))

    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 128])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=(
            f"dlib ResNet face descriptor converted from {DAT_NAME} (sha256 {source_sha256}). "
            "Input: NCHW RGB (pixel - mean) / 256, 150x150. Output: 128-d, not normalised."
        ),
    )
    model.ir_version = IR_VERSION
    mean = next(n for n in net if n.kind == "input").params["mean"]
    helper.set_model_props(
        model, {"mean_rgb": ",".join(f"{float(m):.6g}" for m in mean), "scale": "256"}
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _zero_pad(
    g: _GraphBuilder, name: str, have: tuple[int, int, int], want: tuple[int, int, int]
) -> str:
    """Zero-pad (C, H, W) at the end up to ``want``, as dlib's tt::add treats missing elements."""
    missing = [w - h for h, w in zip(have, want, strict=True)]
    if not any(missing):
        return name
    pads = np.array([0, 0, 0, 0, 0, *missing], np.int64)
    return g.op("Pad", [name, g.const("pads", pads)], "pad", mode="constant")


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def locate_dat() -> Path:
    """The .dat file inside the installed face_recognition_models package.

    ``face_recognition_models.face_recognition_model_location()`` imports
    ``pkg_resources``, which current setuptools no longer ships, so the file is found
    from the package's location without importing it.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "face_recognition_models is not installed (pip install face-recognition-models)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / DAT_NAME
    if not path.is_file():
        raise SystemExit(f"{path} not found in the face_recognition_models package")
    return path


def update_manifest(onnx_sha256: str, dat_path: Path, mean_rgb: list[float]) -> None:
    """Merge this model's entry into the manifest, keeping keys other scripts own.

    ``input.template`` and ``template_derivation`` belong to derive_dlib_template.py and
    ``match_threshold`` to calibration; they are only filled in when missing.
    """
    raw = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    models = raw.setdefault("models", {})
    old = models.get(MODEL_NAME, {})
    dat_sha = hashlib.sha256(dat_path.read_bytes()).hexdigest()
    entry = {
        "file": str(DEFAULT_OUTPUT.relative_to(MANIFEST.parent)),
        "sha256": onnx_sha256,
        "role": "embedder",
        "version": old.get("version", "1"),
        "source": f"pypi:face-recognition-models==0.3.0 face_recognition_models/models/{DAT_NAME}"
        f" sha256:{dat_sha}",
        "source_sha256": dat_sha,
        "license": "CC0-1.0 (dlib model by Davis King, per the package's license file)",
        "produced_by": "models/export/build_dlib_resnet.py",
        "committed": False,
        "opset": OPSET,
        "input": {
            "size": [INPUT_SIZE, INPUT_SIZE],
            "layout": "NCHW",
            "channels": "RGB",
            "mean": mean_rgb,
            "std": 256.0,
            "template": old.get("input", {}).get("template"),
        },
        "output": {"embedding": "[N,128] float32, not normalised (dlib's raw descriptor)"},
        "match_threshold": old.get("match_threshold", PROVISIONAL_MATCH_THRESHOLD),
        "match_threshold_note": old.get(
            "match_threshold_note",
            "provisional: dlib's published 0.6 Euclidean threshold as a cosine; not calibrated",
        ),
    }
    for kept in ("template_derivation", "alignment", "version_note"):  # owned elsewhere
        if kept in old:
            entry[kept] = old[kept]
    models[MODEL_NAME] = entry
    MANIFEST.write_text(json.dumps(raw, indent=2) + "\n")


def build(dat_path: Path) -> tuple[bytes, list[float]]:
    """ONNX bytes, and the input layer's channel means (R, G, B) as stored by dlib."""
    data = dat_path.read_bytes()
    net = parse_dlib_model(data)
    model = build_onnx(net, hashlib.sha256(data).hexdigest())
    blob: bytes = model.SerializeToString(deterministic=True)
    mean = next(n for n in net if n.kind == "input").params["mean"]
    return blob, [float(f"{float(m):.6g}") for m in mean]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dat", type=Path, default=None, help="dlib .dat file (default: from the package)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="rebuild and compare with --output")
    parser.add_argument("--print-sha256", action="store_true")
    parser.add_argument("--write-manifest", action="store_true", help=f"pin {MODEL_NAME}")
    args = parser.parse_args(argv)

    dat_path = args.dat or locate_dat()
    blob, mean_rgb = build(dat_path)
    digest = hashlib.sha256(blob).hexdigest()
    if args.check:
        if not args.output.is_file():
            print(f"missing {args.output}", file=sys.stderr)
            return 1
        if args.output.read_bytes() != blob:
            print(f"{args.output} differs from a fresh build (sha256 {digest})", file=sys.stderr)
            return 1
        print(f"ok {args.output} sha256 {digest}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(args.output)
    if args.write_manifest:
        update_manifest(digest, dat_path, mean_rgb)
    print(
        digest if args.print_sha256 else f"wrote {args.output} ({len(blob)} bytes) sha256 {digest}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
