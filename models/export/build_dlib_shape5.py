"""Convert dlib's 5-point face landmark predictor to plain arrays (a deterministic ``.npz``).

Why: dlib's ResNet descriptor was trained on chips cut by ``get_face_chip`` from the
landmarks of *this* predictor (eye corners and nose base). Feeding it chips aligned on
any other points (MTCNN's eye centres, nose tip, mouth corners) costs accuracy. The
predictor is an ensemble-of-regression-trees cascade (Kazemi & Sullivan 2014) whose
evaluation is a few array lookups per tree, so :mod:`facesearch.vision.shape5` runs it
in numpy; this script only turns dlib's serialized object into arrays, with no dlib
needed (the format reader is shared with ``build_dlib_resnet.py``).

dlib's ``shape_predictor`` serialization (``dlib/image_processing/shape_predictor.h``)::

    int version (1)
    matrix<float,0,1> initial_shape            -nr, -nc, then nr*nc floats
    vector<vector<regression_tree>> forests    per cascade level, per tree:
        vector<split_feature> splits           idx1, idx2 (unsigned), thresh (float)
        vector<matrix<float,0,1>> leaf_values
    vector<vector<unsigned long>> anchor_idx   per level, per feature pixel
    vector<vector<vector<float,2>>> deltas     per level, per feature pixel: x, y

Every tree of the shipped model is complete and of the same depth, so the arrays are
rectangular: ``splits`` [levels, trees, nodes, 3], ``leaves`` [levels, trees, leaves,
2*parts], ``anchor`` [levels, features], ``deltas`` [levels, features, 2].

The ``.npz`` bytes are deterministic (stored zip members with a fixed timestamp), so
the sha256 pinned in ``models/manifest.json`` names exactly one file.

Usage::

    python models/export/build_dlib_shape5.py           # write models/generated/dlib_shape5.npz
    python models/export/build_dlib_shape5.py --check   # rebuild in memory, compare with file
    python models/export/build_dlib_shape5.py --write-manifest
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "models" / "generated" / "dlib_shape5.npz"
MANIFEST = REPO_ROOT / "models" / "manifest.json"
DAT_NAME = "shape_predictor_5_face_landmarks.dat"
MODEL_NAME = "dlib-shape5-v1"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

sys.path.insert(0, str(HERE))
from build_dlib_resnet import DlibFormatError, DlibReader  # noqa: E402


def _matrix_column(reader: DlibReader) -> np.ndarray:
    """matrix<float,0,1>: dlib writes -rows and -cols, then the elements."""
    rows, cols = -reader.integer(), -reader.integer()
    if rows < 0 or cols != 1:
        raise DlibFormatError(f"expected a column vector, found {rows}x{cols} at {reader.pos}")
    return np.array([reader.float32() for _ in range(rows)], dtype=np.float32)


def _count(reader: DlibReader) -> int:
    return reader.integer(signed=False)


def parse_shape_predictor(data: bytes) -> dict[str, np.ndarray]:
    """The predictor as rectangular arrays; refuses anything it does not fully consume."""
    reader = DlibReader(data)
    reader.expect_int((1,), "shape_predictor version")
    initial = _matrix_column(reader)
    levels = _count(reader)
    splits, leaves = [], []
    for _ in range(levels):
        trees = _count(reader)
        level_splits, level_leaves = [], []
        for _ in range(trees):
            tree_splits = [
                (reader.integer(signed=False), reader.integer(signed=False), reader.float32())
                for _ in range(_count(reader))
            ]
            tree_leaves = [_matrix_column(reader) for _ in range(_count(reader))]
            if len(tree_leaves) != len(tree_splits) + 1:
                raise DlibFormatError("a regression tree is not complete")
            level_splits.append(tree_splits)
            level_leaves.append(np.stack(tree_leaves))
        splits.append(np.array(level_splits, dtype=np.float64))
        leaves.append(np.stack(level_leaves))
    if _count(reader) != levels:
        raise DlibFormatError("anchor_idx does not have one entry per cascade level")
    anchors = [
        np.array([reader.integer(signed=False) for _ in range(_count(reader))], dtype=np.int32)
        for _ in range(levels)
    ]
    if _count(reader) != levels:
        raise DlibFormatError("deltas does not have one entry per cascade level")
    deltas = []
    for _ in range(levels):
        deltas.append(
            np.array(
                [(reader.float32(), reader.float32()) for _ in range(_count(reader))],
                dtype=np.float32,
            )
        )
    if not reader.at_end():
        raise DlibFormatError(f"{len(data) - reader.pos} unread bytes after the predictor")
    split_array = np.stack(splits)
    return {
        "initial_shape": initial,
        "split_index": split_array[..., :2].astype(np.int32),
        "split_threshold": split_array[..., 2].astype(np.float32),
        "leaves": np.stack(leaves).astype(np.float32),
        "anchor": np.stack(anchors),
        "deltas": np.stack(deltas),
    }


def to_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """A deterministic .npz: members in name order, stored, with a fixed timestamp."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def locate_dat() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("face_recognition_models is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / DAT_NAME
    if not path.is_file():
        raise SystemExit(f"{path} not found in the face_recognition_models package")
    return path


def build(dat_path: Path) -> bytes:
    return to_npz(parse_shape_predictor(dat_path.read_bytes()))


def update_manifest(sha256: str, dat_path: Path) -> None:
    raw = json.loads(MANIFEST.read_text())
    dat_sha = hashlib.sha256(dat_path.read_bytes()).hexdigest()
    raw["models"][MODEL_NAME] = {
        "file": str(DEFAULT_OUTPUT.relative_to(MANIFEST.parent)),
        "sha256": sha256,
        "role": "landmarks",
        "version": "1",
        "source": f"pypi:face-recognition-models==0.3.0 face_recognition_models/models/{DAT_NAME}"
        f" sha256:{dat_sha}",
        "source_sha256": dat_sha,
        "license": "CC0-1.0 (dlib model by Davis King, per the package's license file)",
        "produced_by": "models/export/build_dlib_shape5.py",
        "committed": False,
        "format": "npz: initial_shape [10], split_index [L,T,S,2], split_threshold [L,T,S],"
        " leaves [L,T,S+1,10], anchor [L,F], deltas [L,F,2] (dlib shape_predictor arrays)",
        "output": "5 points: right eye outer, inner corner; left eye outer, inner; nose base",
    }
    MANIFEST.write_text(json.dumps(raw, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dat", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="rebuild and compare with --output")
    parser.add_argument("--write-manifest", action="store_true", help=f"pin {MODEL_NAME}")
    args = parser.parse_args(argv)
    dat_path = args.dat or locate_dat()
    blob = build(dat_path)
    digest = hashlib.sha256(blob).hexdigest()
    if args.check:
        if not args.output.is_file() or args.output.read_bytes() != blob:
            print(f"{args.output} differs from a fresh build (sha256 {digest})", file=sys.stderr)
            return 1
        print(f"ok {args.output} sha256 {digest}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(args.output)
    if args.write_manifest:
        update_manifest(digest, dat_path)
    print(f"wrote {args.output} ({len(blob)} bytes) sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
