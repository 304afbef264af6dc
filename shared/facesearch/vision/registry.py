"""Model registry: every model file is pinned by sha256 in ``models/manifest.json``.

Why a manifest: a model silently replaced by another (or truncated by a failed
copy) gives wrong embeddings that look fine. Loading verifies the hash, so the
failure is loud and early, and every stored embedding can name the exact model.

Manifest entry fields: ``file`` (relative to the models dir), ``sha256``,
``role`` (detector | embedder | liveness), ``version``, ``source`` (registry
package and path the weights come from), ``license``, ``produced_by`` (the
committed script that makes the file), ``committed`` (true when the file is in
git, false when ``make models`` produces it at setup), and ``input``/``output``
descriptions. Embedders also carry ``match_threshold`` (calibrated).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from facesearch.errors import ModelError

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    sha256: str
    role: str
    version: str
    source: str = ""
    license: str = ""
    produced_by: str = ""
    committed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def path(self, models_dir: Path) -> Path:
        return models_dir / self.file

    @property
    def model_id(self) -> str:
        """Name+version stamped on every embedding and on the index manifest."""
        return f"{self.name}@{self.version}"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed (segments and model files are larger than we want in RAM)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@lru_cache(maxsize=8)
def load_manifest(models_dir: Path) -> dict[str, ModelSpec]:
    path = models_dir / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"model manifest not found at {path}") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"model manifest {path} is not valid JSON: {exc}") from exc
    known = {"file", "sha256", "role", "version", "source", "license", "produced_by", "committed"}
    specs: dict[str, ModelSpec] = {}
    for name, entry in raw.get("models", {}).items():
        specs[name] = ModelSpec(
            name=name,
            file=entry["file"],
            sha256=entry["sha256"],
            role=entry["role"],
            version=str(entry.get("version", "1")),
            source=entry.get("source", ""),
            license=entry.get("license", ""),
            produced_by=entry.get("produced_by", ""),
            committed=bool(entry.get("committed", False)),
            extra={k: v for k, v in entry.items() if k not in known},
        )
    return specs


def get_spec(models_dir: Path, name: str) -> ModelSpec:
    specs = load_manifest(models_dir)
    if name not in specs:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


@lru_cache(maxsize=32)
def _verified(path: Path, expected_sha256: str, mtime_ns: int, size: int) -> bool:
    return sha256_file(path) == expected_sha256


def verified_path(models_dir: Path, name: str) -> Path:
    """Path of a model file after checking it exists and matches its pinned hash."""
    spec = get_spec(models_dir, name)
    return verify_file(spec.path(models_dir), spec.sha256, label=name)


def verify_file(path: Path, expected_sha256: str, *, label: str) -> Path:
    if not path.is_file():
        raise ModelError(f"model {label!r} missing at {path}; run `make models` (or `make setup`)")
    stat = path.stat()
    if not _verified(path, expected_sha256.lower(), stat.st_mtime_ns, stat.st_size):
        raise ModelError(
            f"model {label!r} at {path} does not match its pinned sha256 {expected_sha256[:12]}…;"
            " the file is corrupt or was replaced — rebuild it with `make models`"
        )
    return path


def verify_all(models_dir: Path) -> list[tuple[ModelSpec, str]]:
    """(spec, 'ok' | reason) for every manifest entry; used by `facesearch models verify`."""
    report: list[tuple[ModelSpec, str]] = []
    for spec in load_manifest(models_dir).values():
        try:
            verify_file(spec.path(models_dir), spec.sha256, label=spec.name)
            report.append((spec, "ok"))
        except ModelError as exc:
            report.append((spec, exc.message))
    return report
