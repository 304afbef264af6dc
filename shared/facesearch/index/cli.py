"""``facesearch index stats | verify | compact``.

The lead's ``facesearch`` CLI calls :func:`add_index_commands` on its
subparsers. Each handler takes the parsed args and returns an exit code:
0 = fine, 1 = the index has a problem (verify), 2 = bad usage/config.
``--url`` overrides ``FACESEARCH_INDEX_URL`` (flag > env > default).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

from facesearch.backends import backend_for
from facesearch.config import get_settings
from facesearch.errors import ConfigError, FaceSearchError
from facesearch.index.maintenance import IndexStats, collect_stats, verify

Handler = Callable[[argparse.Namespace, TextIO], int]


def add_index_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``index`` with its three subcommands on the main CLI."""
    index = subparsers.add_parser("index", help="inspect and maintain the search index")
    commands = index.add_subparsers(dest="index_command", required=True, metavar="COMMAND")

    stats = commands.add_parser("stats", help="segments, sizes, deletions, leftovers")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(handler=cmd_stats)

    check = commands.add_parser("verify", help="re-download and check every segment")
    check.add_argument("--deep", action="store_true", help="also self-search every segment")
    check.set_defaults(handler=cmd_verify)

    compact = commands.add_parser("compact", help="merge segments, drop deleted vectors, GC")
    compact.add_argument("--full", action="store_true", help="merge everything into one segment")
    compact.add_argument("--no-gc", action="store_true", help="skip garbage collection")
    compact.add_argument(
        "--grace-s",
        type=float,
        default=None,
        help="GC grace period in seconds (default FACESEARCH_INDEX_GC_GRACE_S)",
    )
    compact.set_defaults(handler=cmd_compact)

    for sub in (stats, check, compact):
        sub.add_argument("--url", help="index location (default FACESEARCH_INDEX_URL)")


def _friendly(handler: Handler) -> Callable[..., int]:
    """Typed errors become one readable line and an exit code, not a traceback."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
        try:
            return handler(args, out or sys.stdout)
        except ConfigError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        except FaceSearchError as exc:
            print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
            return 1

    return run


@_friendly
def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    stats = collect_stats(backend_for(get_settings()).index_store(args.url))
    if args.json:
        print(json.dumps(_stats_json(stats), indent=2), file=out)
    else:
        out.write(format_stats(stats))
    return 0


@_friendly
def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    report = verify(backend_for(get_settings()).index_store(args.url), deep=args.deep)
    for check in report.checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}", file=out)
    print("index is healthy" if report.ok else "index has problems", file=out)
    return 0 if report.ok else 1


@_friendly
def cmd_compact(args: argparse.Namespace, out: TextIO) -> int:
    writer = backend_for(get_settings()).index_writer(args.url)
    result = writer.compact(full=args.full, gc=False)
    print(
        f"merges: {result.merges}; segments {result.segments_before} -> "
        f"{result.segments_after}; deleted vectors dropped: {result.vectors_dropped}",
        file=out,
    )
    if not args.no_gc:
        gc = writer.gc(grace_s=args.grace_s)
        print(
            f"gc: {len(gc.deleted_objects)} objects deleted, "
            f"{gc.forgotten_retired} retired segments forgotten",
            file=out,
        )
    return 0


def format_stats(stats: IndexStats) -> str:
    manifest = stats.manifest
    if manifest is None:
        return f"index   {stats.url}\n        empty (no manifest yet)\n"
    deleted = manifest.tombstone_count
    share = 100.0 * deleted / manifest.vector_count if manifest.vector_count else 0.0
    lines = [
        f"index   {stats.url}",
        f"        manifest v{manifest.version}, updated {_when(manifest.updated_at)}",
        f"model   {manifest.model}   dims {manifest.dims}   dtype {manifest.dtype}   "
        f"metric {manifest.metric}",
        f"faces   {manifest.live_count:,} live in {len(manifest.segments)} segments "
        f"({manifest.vector_count:,} vectors, {deleted:,} deleted = {share:.1f}%)",
        f"bytes   {_size(stats.stored_bytes)} in live segments; "
        f"{stats.retired_objects} retired objects awaiting GC; "
        f"{stats.orphan_objects} orphans ({_size(stats.orphan_bytes)})",
        "",
        f"{'segment':<32} {'vectors':>10} {'deleted':>8} {'live':>10} {'size':>10}  created",
    ]
    for seg in stats.segments:
        lines.append(
            f"{seg.id:<32} {seg.vectors:>10,} {seg.deleted:>8,} {seg.live:>10,} "
            f"{_size(seg.index_bytes + seg.ids_bytes):>10}  {_when(seg.created_at)}"
        )
    return "\n".join(lines) + "\n"


def _stats_json(stats: IndexStats) -> dict[str, Any]:
    manifest = stats.manifest
    return {
        "url": stats.url,
        "empty": manifest is None,
        "manifest_version": manifest.version if manifest else None,
        "model": str(manifest.model) if manifest else None,
        "dims": manifest.dims if manifest else None,
        "dtype": manifest.dtype if manifest else None,
        "live": manifest.live_count if manifest else 0,
        "vectors": manifest.vector_count if manifest else 0,
        "deleted": manifest.tombstone_count if manifest else 0,
        "stored_bytes": stats.stored_bytes,
        "retired_objects": stats.retired_objects,
        "orphan_objects": stats.orphan_objects,
        "segments": [asdict(s) for s in stats.segments],
    }


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
