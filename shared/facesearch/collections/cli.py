"""``facesearch collections list|create|show|update|erase|sweep``.

Embedded by default (the SQLite store under ``--data-dir``), through the same
:class:`~facesearch.api.collections.CollectionAdmin` the API uses; with
``--remote URL`` the same commands go to a query API (signed with the client
key). Embedded ``erase`` finishes before it returns and prints the erase report;
remote ``erase`` starts it (202) and ``--wait`` polls until the collection shows
``erased``. ``sweep`` applies retention now (the scheduler's job in the cloud).

Exit codes: 0 fine, 1 an erase finished with leftovers, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from facesearch.config import Settings, load_settings

#: how often ``erase --remote --wait`` asks for the collection's status
POLL_S = 2.0


def add_collection_commands(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "collections",
        help="separate face collections (per event, per customer): create, list, erase",
        description="Embedded by default (the store under --data-dir); with --remote URL the"
        " same commands go to a query API. Embedded erase finishes before it returns and prints"
        " its report; remote erase starts it and --wait polls until it is done. sweep applies"
        " retention now (a daily scheduled job does it in the cloud).",
    )
    commands = group.add_subparsers(dest="collections_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="every collection with its status")
    listing.set_defaults(handler=cmd_list)

    create = commands.add_parser("create", help="a new, empty collection with its own settings")
    create.add_argument("collection_id", help="1-63 of a-z, 0-9 and '-' (never reused)")
    create.add_argument("--name", default="", help="a display name")
    _add_settings_options(create)
    create.set_defaults(handler=cmd_create)

    show = commands.add_parser("show", help="settings, status, counts, index; or erase report")
    show.add_argument("collection_id")
    show.set_defaults(handler=cmd_show)

    update = commands.add_parser("update", help="rename, or change settings (not the embedder)")
    update.add_argument("collection_id")
    update.add_argument("--name", help="a new display name")
    _add_settings_options(update)
    update.set_defaults(handler=cmd_update)

    erase = commands.add_parser(
        "erase", help="remove every image, face, person, crop, index object and ledger entry"
    )
    erase.add_argument("collection_id")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.add_argument("--wait", action="store_true", help="with --remote: poll until erased")
    erase.set_defaults(handler=cmd_erase)

    sweep = commands.add_parser(
        "sweep", help="apply retention now: forget faces older than each collection keeps them"
    )
    sweep.add_argument("collection_id", nargs="?", help="one collection (default: all due)")
    sweep.set_defaults(handler=cmd_sweep)

    for sub in (listing, create, show, update, erase, sweep):
        sub.add_argument("--data-dir", type=Path, help="embedded state (FACESEARCH_DATA_DIR)")
        sub.add_argument("--json", action="store_true", help="machine-readable output")
        if sub is not sweep:  # retention runs where the data is (the indexer, in the cloud)
            sub.add_argument("--remote", help="query API base URL instead of the local store")
            sub.add_argument("--key-id", dest="client_key_id", help="FACESEARCH_CLIENT_KEY_ID")
            sub.add_argument("--secret", dest="client_secret", help="FACESEARCH_CLIENT_SECRET")


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embedder", help="embedder from the model manifest (at create only)")
    parser.add_argument("--threshold", type=float, help="same-person cosine threshold")
    parser.add_argument("--retention-days", type=int, help="forget faces older than this")
    parser.add_argument("--max-faces", type=int, help="refuse ingest beyond this many faces")
    parser.add_argument("--requests-per-s", type=float, help="signed API requests per second")
    parser.add_argument(
        "--quality", metavar="JSON", help="quality overrides, e.g. '{\"min_face_px\": 60}'"
    )


def _settings_body(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The collection settings the options give, over ``base`` (an update keeps the rest)."""
    body = dict(base or {})
    for option, key in (
        ("embedder", "embedder"),
        ("threshold", "match_threshold"),
        ("retention_days", "retention_days"),
        ("max_faces", "max_faces"),
        ("requests_per_s", "requests_per_s"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            body[key] = value
    if args.quality:
        try:
            body["quality"] = json.loads(args.quality)
        except ValueError as exc:
            raise SystemExit(f"facesearch collections: --quality is not JSON: {exc}") from exc
    return body


def _local_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"backend": "local"}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(**overrides)


class _Local:
    """The admin over the embedded store; erase runs to the end before returning."""

    def __init__(self, args: argparse.Namespace) -> None:
        from facesearch.backends.local import LocalBackend
        from facesearch.backends.services import collection_admin

        self.backend = LocalBackend(_local_settings(args))
        self.admin = collection_admin(self.backend, start_erase=self._erase_now)

    def _erase_now(self, collection_id: str) -> None:
        self.backend.erase_job().run(collection_id)


def _client(args: argparse.Namespace) -> Any:
    from facesearch.client import Client

    overrides = {
        k: v for k in ("client_key_id", "client_secret") if (v := getattr(args, k)) is not None
    }
    return Client.from_settings(load_settings(**overrides), url=args.remote)


def _print(args: argparse.Namespace, out: Any) -> None:
    if args.json:
        print(out.model_dump_json(indent=2))
        return
    data = out.model_dump()
    print(f"{data['collection_id']}  {data['status']}  {data['name']!r}")
    settings = {k: v for k, v in data["settings"].items() if v not in (None, {}, [])}
    quality = {k: v for k, v in (settings.pop("quality", None) or {}).items() if v is not None}
    if quality:
        settings["quality"] = quality
    print(f"  settings: {json.dumps(settings) if settings else '(deployment defaults)'}")
    stats = data.get("stats")
    if stats:
        index = stats["index"]
        print(
            f"  {stats['images']} images, {stats['faces']} faces, {stats['persons']} persons;"
            f" index {index['live_faces']} faces in {index['segments']} segments"
        )
    if data["erase_report"]:
        print(f"  erase report: {json.dumps(data['erase_report'], sort_keys=True)}")


def cmd_list(args: argparse.Namespace) -> int:
    items: list[Any] = []
    cursor = None
    while True:
        if args.remote:
            page = _client(args).collections(cursor=cursor, limit=500)
        else:
            page = _Local(args).admin.list(cursor=cursor, limit=500)
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    if args.json:
        print(json.dumps([c.model_dump() for c in items], indent=2))
        return 0
    for c in items:
        print(f"{c.collection_id:<32} {c.status:<8} {c.name}")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    settings = _settings_body(args)
    if args.remote:
        out = _client(args).create_collection(args.collection_id, name=args.name, settings=settings)
    else:
        from facesearch.api.collection_schemas import CollectionCreate

        body = CollectionCreate.model_validate(
            {"collection_id": args.collection_id, "name": args.name, "settings": settings}
        )
        out = _Local(args).admin.create(body)
    _print(args, out)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    if args.remote:
        out = _client(args).get_collection(args.collection_id)
    else:
        out = _Local(args).admin.get(args.collection_id)
    _print(args, out)
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    if args.remote:
        client = _client(args)
        current = client.get_collection(args.collection_id)
        base = current.settings.model_dump(exclude_none=True)
        out = client.update_collection(
            args.collection_id, name=args.name, settings=_settings_body(args, base)
        )
    else:
        from facesearch.api.collection_schemas import CollectionPatch

        local = _Local(args)
        current = local.admin.get(args.collection_id)
        base = current.settings.model_dump(exclude_none=True)
        patch = CollectionPatch.model_validate(
            {"name": args.name, "settings": _settings_body(args, base)}
        )
        out = local.admin.update(args.collection_id, patch)
    _print(args, out)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print("facesearch collections erase: pass --yes to confirm", file=sys.stderr)
            return 2
        answer = input(f"erase collection {args.collection_id} and everything in it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 2
    if args.remote:
        client = _client(args)
        out = client.erase_collection(args.collection_id)
        while args.wait and out.status != "erased":
            time.sleep(POLL_S)
            out = client.get_collection(args.collection_id)
    else:
        out = _Local(args).admin.erase(args.collection_id)
    _print(args, out)
    leftovers = out.erase_report.get("leftovers") or {}
    return 1 if any(leftovers.values()) else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from facesearch.backends.local import LocalBackend

    backend = LocalBackend(_local_settings(args))
    sweep = backend.retention()
    if args.collection_id:
        backend.collections().require_active(args.collection_id)
    due = [args.collection_id] if args.collection_id else sweep.due()
    report = {}
    for collection_id in due:
        step = sweep.run(collection_id)
        report[collection_id] = {"images": step.images, "faces": step.faces}
    if args.json:
        print(json.dumps(report, indent=2))
    elif not report:
        print("no collection has a retention period")
    for collection_id, counts in report.items() if not args.json else ():
        print(f"{collection_id}: forgot {counts['images']} images, {counts['faces']} faces")
    return 0
