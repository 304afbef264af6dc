"""``facesearch video show ID``: a video's status, progress and tracks with their moments.

Embedded by default (the store under ``--data-dir``, read through the API's own video
service, so the answer is exactly what ``GET /v1/videos/{id}`` gives); with
``--remote URL`` the same request goes to a query API, signed with the client key.
Exit codes: 0 shown, 1 not found, 2 usage or other errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from facesearch.api.video_schemas import TrackOut, VideoOut
from facesearch.config import load_settings
from facesearch.errors import NotFound
from facesearch.storage.metadata import DEFAULT_COLLECTION


def add_video_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    video = subparsers.add_parser("video", help="videos: status, progress, tracks and moments")
    actions = video.add_subparsers(dest="video_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="a video's status, progress and tracks")
    show.add_argument("video_id", metavar="ID", help="the video id (facesearch ingest prints it)")
    show.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help="the video's collection (default 'default')",
    )
    show.add_argument("--limit", type=int, default=1000, help="tracks to show (default 1000)")
    show.add_argument("--json", action="store_true", help="the API's JSON (VideoOut)")
    show.add_argument("--data-dir", type=Path, help="embedded state (default FACESEARCH_DATA_DIR)")
    show.add_argument("--remote", help="query API base URL instead of the local store")
    show.add_argument("--key-id", dest="client_key_id", help="FACESEARCH_CLIENT_KEY_ID")
    show.add_argument("--secret", dest="client_secret", help="FACESEARCH_CLIENT_SECRET")
    show.set_defaults(handler=cmd_show)


def _fetch(args: argparse.Namespace) -> VideoOut:
    limit = max(1, min(args.limit, 1000))
    if args.remote:
        from facesearch.client import Client
        from facesearch.client_transport import ApiError

        keys = {
            k: v for k in ("client_key_id", "client_secret") if (v := getattr(args, k)) is not None
        }
        client = Client.from_settings(load_settings(**keys), url=args.remote)
        try:
            return client.in_collection(args.collection).video(args.video_id, limit=limit)
        except ApiError as error:
            if error.http_status == 404:
                raise NotFound(error.message) from error
            raise
    from facesearch.api.crops import LocalCropUrls
    from facesearch.api.videos import VideoService
    from facesearch.backends.local import DEFAULT_PUBLIC_URL, LocalBackend

    overrides: dict[str, Any] = {"backend": "local"}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    backend = LocalBackend(settings)
    backend.collections().require(args.collection)
    crops = LocalCropUrls.from_data_dir(
        settings.data_dir,
        settings.api.signed_url_ttl_s,
        base_url=settings.api.public_url or DEFAULT_PUBLIC_URL,
    )
    from facesearch.backends.services import people_service

    service = VideoService(
        backend.metadata(args.collection), crops, people_service(backend, args.collection)
    )
    return service.get_video(args.video_id, cursor=None, limit=limit)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f}"


def _moments(track: TrackOut) -> str:
    return ", ".join(f"{_seconds(m.start_ms)}-{_seconds(m.end_ms)} s" for m in track.moments)


def cmd_show(args: argparse.Namespace) -> int:
    try:
        video = _fetch(args)
    except NotFound as error:
        print(f"facesearch video show: {error.message}", file=sys.stderr)
        return 1
    if args.json:
        print(video.model_dump_json(indent=2))
        return 0
    progress = video.progress
    duration = "?" if video.duration_ms is None else f"{_seconds(video.duration_ms)} s"
    print(f"video {video.video_id} ({video.source}): {video.status}")
    print(
        f"  {duration}, {video.codec or '?'} {video.width or '?'}x{video.height or '?'},"
        f" chunks {progress.chunks_done}/{progress.chunks_total}, {video.track_count} track(s)"
    )
    if video.error_code:
        print(f"  error ({video.error_code}): {video.error_message}")
    for track in video.tracks:
        person = track.person_name or track.person_id or "-"
        print(
            f"  #{track.track_index:<3} {track.track_id}  person {person}  hits {track.hits}"
            f"  quality {track.quality if track.quality is not None else '?'}"
        )
        print(f"       on screen {_moments(track)}")
    if video.next_cursor:
        print(f"  ... more tracks (--limit, or GET /v1/videos/{video.video_id}?cursor=...)")
    return 0
