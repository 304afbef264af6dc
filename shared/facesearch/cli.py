"""The ``facesearch`` command line.

Every option can also come from its ``FACESEARCH_*`` environment variable (see
``facesearch.config``); precedence is flag > environment > default. Exit codes:
0 success, 1 a negative answer or failed check (e.g. ``models verify`` found a
bad file), 2 bad input or usage (typed errors are printed, never tracebacks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facesearch import __version__
from facesearch.config import REPO_ROOT, Settings, load_settings
from facesearch.errors import AmbiguousFace, FaceSearchError, NoFace

if TYPE_CHECKING:
    from facesearch.vision.types import ImageResult

Handler = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("models_dir", "embedder", "match_threshold", "min_face_px"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return load_settings(**overrides)


def _read_image(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FaceSearchError(f"cannot read {path}: {exc.strerror}") from exc


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))


# --- detect -------------------------------------------------------------------------


def cmd_detect(args: argparse.Namespace) -> int:
    from facesearch.vision.annotate import annotate
    from facesearch.vision.pipeline import FacePipeline

    pipeline = FacePipeline(_settings(args))
    data = _read_image(args.image)
    start = time.perf_counter()
    decoded = pipeline.decode(data)
    decode_ms = (time.perf_counter() - start) * 1000.0
    result = pipeline.process_decoded(decoded, decode_ms=decode_ms)
    if args.json:
        print(json.dumps(_result_json(result, args.image), indent=2))
    else:
        print(
            f"{args.image}: {result.width}×{result.height} {result.source_format}, "
            f"{len(result.faces)} face(s), model {result.model}"
        )
        rows = []
        for face in result.faces:
            det, quality = face.detection, face.quality
            assert quality is not None
            rows.append(
                [
                    face.index,
                    " ".join(f"{v:.0f}" for v in det.box),
                    f"{det.score:.3f}",
                    f"{face.liveness:.3f}" + ("" if face.live else " (spoof?)"),
                    f"{quality.score:.2f}",
                    f"{quality.yaw_deg:+.0f}/{quality.pitch_deg:+.0f}/{quality.roll_deg:+.0f}",
                    "; ".join(quality.reasons) or "ok",
                ]
            )
        if rows:
            _print_table(
                ["#", "box x1 y1 x2 y2", "det", "liveness", "quality", "yaw/pitch/roll", "notes"],
                rows,
            )
        timings = "  ".join(f"{k} {v:.1f}" for k, v in result.timings_ms.items())
        print(f"timings (ms): {timings}")
    if args.out:
        annotate(decoded.rgb, result, Path(args.out))
        print(f"annotated image written to {args.out}", file=sys.stderr)
    return 0


def _result_json(result: ImageResult, source: str) -> dict[str, Any]:
    """The same face fields as the API's answers (:class:`DetectedFace`)."""
    from facesearch.api.schemas import DetectedFace

    return {
        "image": source,
        "width": result.width,
        "height": result.height,
        "format": result.source_format,
        "model": result.model,
        "faces": [DetectedFace.from_detection(face).model_dump() for face in result.faces],
        "timings_ms": result.timings_ms,
    }


# --- match ----------------------------------------------------------------------------


def cmd_match(args: argparse.Namespace) -> int:
    from facesearch.vision.matching import compare_faces, pick_face
    from facesearch.vision.pipeline import FacePipeline

    settings = _settings(args)
    pipeline = FacePipeline(settings)
    results = [pipeline.process(_read_image(path)) for path in (args.image_a, args.image_b)]
    faces = [
        pick_face(result, choice, label=path, largest=args.largest)
        for result, choice, path in zip(
            results, (args.face_a, args.face_b), (args.image_a, args.image_b), strict=True
        )
    ]
    verdict = compare_faces(faces[0], faces[1], pipeline.embedder, settings.vision.match_threshold)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        answer = "SAME person" if verdict.same_person else "DIFFERENT people"
        print(
            f"{answer}: similarity {verdict.similarity:.4f} "
            f"(threshold {verdict.threshold:.4f}, model {verdict.model})"
        )
        for label, face in zip((args.image_a, args.image_b), faces, strict=True):
            quality = face.quality
            notes = "; ".join(quality.reasons) if quality and quality.reasons else "ok"
            print(
                f"  {label}: face #{face.index} liveness {face.liveness:.3f}, "
                f"quality {quality.score if quality else 0:.2f} ({notes})"
            )
    return 0 if verdict.same_person else 1


# --- models ---------------------------------------------------------------------------


def cmd_models_verify(args: argparse.Namespace) -> int:
    from facesearch.vision.registry import verify_all

    settings = _settings(args)
    report = verify_all(settings.vision.models_dir)
    rows = [[spec.name, spec.role, spec.file, spec.sha256[:12], status] for spec, status in report]
    _print_table(["model", "role", "file", "sha256", "status"], rows)
    failed = [spec.name for spec, status in report if status != "ok"]
    if failed:
        print(f"\n{len(failed)} model(s) failed verification: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"\nall {len(report)} model files match their pinned sha256")
    return 0


# --- config ---------------------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    """Print the effective settings, or the Markdown table the README embeds."""
    from facesearch.config import ENV_PREFIX, flat_names
    from facesearch.section import describe

    settings = _settings(args)
    if args.markdown:
        print("| variable | section | default | meaning |")
        print("|---|---|---|---|")
    for flat, (section, field) in flat_names().items():
        owner = type(getattr(settings, section)) if section else type(settings)
        info = owner.model_fields[field]
        if args.markdown:
            default = info.get_default(call_default_factory=False)
            if isinstance(default, Path) and default.is_relative_to(REPO_ROOT):
                default = Path("<repo>") / default.relative_to(REPO_ROOT)
            print(
                f"| `{ENV_PREFIX}{flat.upper()}` | {section or '-'} | `{default}` "
                f"| {describe(owner, field)} |"
            )
        else:
            value = getattr(getattr(settings, section) if section else settings, field)
            print(f"{ENV_PREFIX}{flat.upper()}={value}")
    return 0


# --- parser ---------------------------------------------------------------------------


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, help="models folder (FACESEARCH_MODELS_DIR)")
    parser.add_argument("--embedder", help="embedder name in the manifest (FACESEARCH_EMBEDDER)")
    parser.add_argument("--min-face-px", type=int, help="smallest face to detect, in pixels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facesearch",
        description="Face detection, matching and search (local or against a deployment).",
    )
    parser.add_argument("--version", action="version", version=f"facesearch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    detect = commands.add_parser("detect", help="find faces in an image and score them")
    detect.add_argument("image", help="image file (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF)")
    detect.add_argument("--out", help="write an annotated copy (boxes, landmarks, scores) here")
    detect.add_argument("--json", action="store_true", help="machine-readable output")
    _add_model_options(detect)
    detect.set_defaults(handler=cmd_detect)

    match = commands.add_parser(
        "match", help="are the faces in two images the same person? (exit 0 yes, 1 no)"
    )
    match.add_argument("image_a")
    match.add_argument("image_b")
    match.add_argument("--face-a", type=int, help="face index in image A when it has several")
    match.add_argument("--face-b", type=int, help="face index in image B when it has several")
    match.add_argument(
        "--largest",
        action="store_true",
        help="with several faces and no index, use the largest instead of failing",
    )
    match.add_argument(
        "--threshold",
        dest="match_threshold",
        type=float,
        help="cosine similarity threshold (default: calibrated per model)",
    )
    match.add_argument("--json", action="store_true", help="machine-readable output")
    _add_model_options(match)
    match.set_defaults(handler=cmd_match)

    models = commands.add_parser("models", help="model files: verify hashes")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    verify = model_commands.add_parser("verify", help="check every model file's sha256")
    verify.add_argument("--models-dir", type=Path, help="models folder")
    verify.set_defaults(handler=cmd_models_verify)

    config = commands.add_parser("config", help="show the effective settings (FACESEARCH_*)")
    config.add_argument("--markdown", action="store_true", help="the defaults as a Markdown table")
    config.set_defaults(handler=cmd_config)

    for register in _extensions():
        register(commands)
    return parser


def _extensions() -> list[Callable[[Any], None]]:
    """Subcommand groups that live with their subsystem (index, ...)."""
    registrars: list[Callable[[Any], None]] = []
    try:
        from facesearch.index.cli import add_index_commands
    except ImportError:  # pragma: no cover - the index package is part of the product
        pass
    else:
        registrars.append(add_index_commands)
    registrars.append(__import__("facesearch.ingest.cli", fromlist=["*"]).add_ingest_commands)
    registrars.append(__import__("facesearch.api.cli", fromlist=["*"]).add_api_commands)
    registrars.append(__import__("facesearch.api.video_cli", fromlist=["*"]).add_video_commands)
    registrars.append(
        __import__("facesearch.collections.cli", fromlist=["*"]).add_collection_commands
    )
    registrars.append(__import__("facesearch.people.cli", fromlist=["*"]).add_person_commands)
    registrars.append(__import__("facesearch.ops.cli", fromlist=["*"]).add_ops_commands)
    registrars.append(__import__("facesearch.jobs.cli", fromlist=["*"]).add_job_commands)
    return registrars


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (NoFace, AmbiguousFace) as error:
        print(f"facesearch: {error.message}", file=sys.stderr)
        return 2
    except FaceSearchError as error:
        print(f"facesearch: error ({error.code}): {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `facesearch config | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
