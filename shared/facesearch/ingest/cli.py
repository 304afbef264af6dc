"""``facesearch ingest PATH...`` and ``facesearch search IMAGE`` (embedded mode).

Both run the event pipeline in-process (:mod:`facesearch.local`): SQLite
metadata and the index under ``FACESEARCH_DATA_DIR`` (``--data-dir`` wins).
Exit codes: 0 fine, 1 nothing found / some inputs rejected (``ingest
--strict``), 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from facesearch.config import Settings, load_settings
from facesearch.errors import FaceSearchError
from facesearch.storage.metadata import DEFAULT_COLLECTION


def add_ingest_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``ingest`` and ``search`` on the main CLI."""
    ingest = subparsers.add_parser(
        "ingest",
        help="ingest photos and videos (files or folders) into the local collection",
        description="Photos and videos (decided by content). A video is processed here to the"
        " end, chunk by chunk as the cloud's instances would, with a progress bar in video"
        " seconds; its tracks become searchable faces (facesearch video show ID).",
    )
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument("--json", action="store_true", help="print the summary as JSON")
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.add_argument("--strict", action="store_true", help="exit 1 when any input was rejected")
    ingest.set_defaults(handler=cmd_ingest)

    search = subparsers.add_parser(
        "search", help="who in the local collection looks like the faces in this photo"
    )
    search.add_argument("image", type=Path, metavar="IMAGE")
    search.add_argument("-k", "--top", type=int, default=5, help="matches per face (default 5)")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(handler=cmd_search)

    for sub in (ingest, search):
        sub.add_argument(
            "--data-dir", type=Path, help="embedded state (default FACESEARCH_DATA_DIR)"
        )
        sub.add_argument(
            "--collection",
            default=DEFAULT_COLLECTION,
            help="the collection to use (default 'default'; others: facesearch collections create)",
        )


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"backend": "local"}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(**overrides)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    cells = [headers, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_ingest(args: argparse.Namespace) -> int:
    from facesearch.local import EmbeddedSystem, iter_image_files

    settings = _settings(args)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"facesearch ingest: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    files = list(iter_image_files(args.paths))
    progress: Any = None
    video_bar = None
    if not args.no_progress and not args.json:
        from tqdm import tqdm

        progress = tqdm(total=len(files), unit="file", file=sys.stderr, dynamic_ncols=True)
        video_bar = VideoBar()
    system = EmbeddedSystem(settings, collection_id=args.collection, on_video_progress=video_bar)
    dead_before = len(system.bus.dead_letters)  # the bus is durable: older runs' count too

    def tick(path: Path, outcome: Any) -> None:
        if video_bar is not None:
            video_bar.close()
        if progress is not None:
            progress.set_postfix_str(f"{path.name}: {outcome.outcome}", refresh=False)
            progress.update(1)

    try:
        summary = system.ingest_files(files, on_result=tick)
    finally:
        if progress is not None:
            progress.close()
    counts = system.metadata.counts()
    if args.json:
        print(
            json.dumps(
                {
                    "images": summary.images,
                    "videos": summary.videos,
                    "video_ids": summary.video_ids,
                    "done": summary.done,
                    "duplicates": summary.duplicates,
                    "faces": summary.faces,
                    "rejected": summary.rejected,
                    "skipped": summary.skipped,
                    "seconds": round(summary.seconds, 3),
                    "images_per_s": round(summary.images_per_s, 3),
                    "faces_per_s": round(summary.faces_per_s, 3),
                    "collection": {
                        "id": args.collection,
                        "images": counts.images,
                        "videos": counts.videos,
                        "faces": counts.faces,
                    },
                    "dead_letters": len(system.bus.dead_letters) - dead_before,
                },
                indent=2,
            )
        )
    else:
        rows = [
            ["files", str(summary.images)],
            ["  ingested", f"{summary.done} ({summary.videos} videos)"],
            ["  already known", str(summary.duplicates)],
            ["faces", f"{summary.faces} (video tracks included)"],
        ]
        for video_id in summary.video_ids[:5]:
            rows.append(["  video", f"{video_id}  (facesearch video show {video_id})"])
        if len(summary.video_ids) > 5:
            rows.append(["  video", f"... {len(summary.video_ids) - 5} more (--json lists all)"])
        for reason, sources in sorted(summary.rejected.items()):
            examples = ", ".join(sources[:3]) + (", ..." if len(sources) > 3 else "")
            rows.append([f"rejected: {reason}", f"{len(sources)}  ({examples})"])
        for reason, sources in sorted(summary.skipped.items()):
            rows.append([f"skipped: {reason}", str(len(sources))])
        speed = f"{summary.images_per_s:.2f} images/s, {summary.faces_per_s:.2f} faces/s"
        stored = (
            f"{counts.images} images, {counts.videos} videos, {counts.faces} faces"
            f" in {settings.data_dir}"
        )
        if args.collection != DEFAULT_COLLECTION:
            stored += f" (collection {args.collection})"
        rows += [
            ["time", f"{summary.seconds:.1f} s"],
            ["throughput", speed],
            ["collection", stored],
        ]
        print(_table(["", ""], rows))
    dead = len(system.bus.dead_letters) - dead_before
    if dead:
        print(f"warning: {dead} index message(s) failed (facesearch dlq list)", file=sys.stderr)
        return 1
    return 1 if args.strict and summary.rejected else 0


def _moments(spans: Any) -> str:
    """`` @ 0.0-1.9 s, 5.0-6.0 s`` for a video match (nothing for a photo's)."""
    if not spans:
        return ""
    return " @ " + ", ".join(f"{a / 1000:.1f}-{b / 1000:.1f} s" for a, b in spans)


class VideoBar:
    """A progress bar per video, in seconds of video processed (chunk after chunk)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._video: str | None = None

    def __call__(self, video_id: str, t_ms: int, duration_ms: int | None) -> None:
        from tqdm import tqdm

        if video_id != self._video:
            self.close()
            self._video = video_id
            total = None if duration_ms is None else round(duration_ms / 1000, 1)
            self._bar = tqdm(
                total=total,
                unit="s",
                desc=f"video {video_id[:8]}",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
                bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} s of video [{elapsed}<{remaining}]",
            )
        self._bar.n = round(t_ms / 1000, 1)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._video = None, None


def cmd_search(args: argparse.Namespace) -> int:
    from facesearch.local import EmbeddedSystem

    if args.top < 1:
        print("facesearch search: --top must be >= 1", file=sys.stderr)
        return 2
    try:
        data = args.image.read_bytes()
    except OSError as exc:
        print(f"facesearch search: cannot read {args.image}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        system = EmbeddedSystem(_settings(args), collection_id=args.collection)
        results = system.search(data, k=args.top)
    except FaceSearchError as error:
        print(f"facesearch search: error ({error.code}): {error.message}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {
                    "image": str(args.image),
                    "faces": [
                        {
                            "index": r.face.index,
                            "box": [round(float(v), 1) for v in r.face.detection.box],
                            "matches": [
                                {
                                    "face_id": m.face_id,
                                    "similarity": round(m.similarity, 4),
                                    "image_id": m.image_id,
                                    "source": m.source,
                                    **(
                                        {"moments_ms": [list(s) for s in m.moments]}
                                        if m.moments
                                        else {}
                                    ),
                                }
                                for m in r.matches
                            ],
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    else:
        print(f"{args.image}: {len(results)} face(s)")
        for r in results:
            box = " ".join(f"{v:.0f}" for v in r.face.detection.box)
            print(f"face #{r.face.index} (box {box}):")
            if not r.matches:
                print("  no matches (empty collection?)")
                continue
            rows = [
                [str(n), f"{m.similarity:.4f}", m.source + _moments(m.moments), m.face_id]
                for n, m in enumerate(r.matches, 1)
            ]
            print(
                "  " + _table(["#", "similarity", "source", "face id"], rows).replace("\n", "\n  ")
            )
    return 0 if any(r.matches for r in results) else 1
