"""``facesearch doctor`` and ``facesearch dlq``: the operator's repair tools.

``doctor [--collection C] [--repair] [--json]`` reconciles each collection's index with
its metadata store in both directions (:mod:`facesearch.ops.reconcile`) and reports
stuck images; ``--repair`` queues what makes them agree (embeddings of missing faces,
deletions of orphans) and re-queues stuck images (:mod:`facesearch.ops.sweep`).
Embedded, the repair is applied before the command returns (the in-process indexer
drains the bus, stuck local files are ingested again); against the cloud
(``FACESEARCH_BACKEND=gcp``) it is queued for the indexer and ingest functions.
Exit 0: healthy (or repaired and healthy on a second look, embedded); 1: problems.

``dlq list | show ID | replay [ID ...] [--all]``: every dead-letter queue.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facesearch.backends import Backend, backend_for
from facesearch.config import Settings, load_settings
from facesearch.ingest.sources import SourceRef
from facesearch.ops.reconcile import FINDINGS, Reconciliation, reconcile, repair
from facesearch.ops.sweep import requeue_request
from facesearch.storage.metadata import DEFAULT_COLLECTION

if TYPE_CHECKING:
    from facesearch.local import EmbeddedSystem


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(**overrides)


def _collections(backend: Backend, args: argparse.Namespace) -> list[str]:
    if args.collection:
        return [args.collection]
    return backend.stuck_sweep().active_collections()


def check_collection(backend: Backend, collection_id: str) -> Reconciliation:
    reader = backend.index_reader(collection_id=collection_id)
    return reconcile(
        backend.metadata(collection_id), reader, stuck_after_s=backend.settings.ops.stuck_after_s
    )


def repair_collection(
    backend: Backend, report: Reconciliation, system: EmbeddedSystem | None = None
) -> dict[str, int]:
    """Queue the repair; embedded (``system``: its backend is ``backend``), apply it now:
    its indexer drains the bus, stuck local files are ingested again."""
    storage = backend.settings.storage
    counts = repair(
        report,
        backend.bus(),
        embeddings_topic=storage.embeddings_topic,
        deletions_topic=storage.deletions_topic,
    )
    swept = backend.stuck_sweep().run(report.collection_id)
    counts["stuck_requeued"] = swept.total
    store = backend.metadata(report.collection_id)
    expired = [r for i in report.expired if (r := store.get_image(i)) is not None]
    messages = [m for r in expired if (m := requeue_request(r, report.collection_id))]
    if messages:
        backend.bus().publish(backend.settings.storage.ingest_topic, messages)
    counts["expired_requeued"] = len(messages)
    if system is not None:
        reingested = 0
        for record in swept.local:  # embedded files: ingest them again by path
            path = Path(str(record.source_info.get("name") or record.source))
            if path.is_file():
                data = path.read_bytes()
                source = SourceRef.local_file(str(path), data, created_time=time.time())
                system.ingest_service.ingest(source.in_collection(report.collection_id), data)
                reingested += 1
        counts["stuck_reingested"] = reingested
        counts["applied"] = system.flush()
    return counts


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = _settings(args)
    system = _embedded(settings)
    backend = system.backend if system is not None else backend_for(settings)
    reports = []
    healthy = True
    for collection_id in _collections(backend, args):
        report = check_collection(backend, collection_id)
        if args.repair and (not report.ok or report.expired):
            repaired = repair_collection(backend, report, system)
            if system is not None:  # applied: look again
                report = check_collection(backend, collection_id)
            report.repaired = repaired
        healthy = healthy and report.ok
        reports.append(report)
    if args.json:
        print(json.dumps({"ok": healthy, "collections": [r.summary() for r in reports]}, indent=2))
    else:
        for r in reports:
            s = r.summary()
            state = "ok" if r.ok else "PROBLEMS"
            print(
                f"{r.collection_id}: {state}  index {r.index_live} live"
                f" ({r.index_model or 'empty'}), {r.records} face records,"
                f" {r.images_done} images done"
            )
            for name in FINDINGS:
                if s[name]:
                    print(f"  {name:<12} {s[name]:>6}  e.g. {', '.join(s[name + '_sample'][:3])}")
            if r.repaired:
                print(f"  repaired: {r.repaired}")
        print("healthy" if healthy else "problems found" + ("" if args.repair else " (--repair)"))
    return 0 if healthy else 1


def _embedded(settings: Settings) -> EmbeddedSystem | None:
    """Embedded mode: one system whose indexer is subscribed to the (durable) bus, so
    what a repair publishes is applied by ``flush`` (models load only if needed)."""
    if settings.backend != "local":
        return None
    from facesearch.local import EmbeddedSystem

    return EmbeddedSystem(settings)


def cmd_dlq(args: argparse.Namespace) -> int:
    settings = _settings(args)
    system = _embedded(settings)
    backend = system.backend if system is not None else backend_for(settings)
    queues = backend.dead_letters()
    if args.dlq_command == "list":
        letters = queues.letters(limit=args.limit)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "topic": d.topic,
                            "message_id": d.message_id,
                            "attributes": dict(d.attributes),
                            "bytes": len(d.data),
                            "published_at": d.published_at,
                            "error": d.error,
                        }
                        for d in letters
                    ],
                    indent=2,
                )
            )
        else:
            for d in letters:
                kind = d.attributes.get("kind", "?")
                print(f"{d.message_id}\t{d.topic}\t{kind}\t{len(d.data)} B\t{d.error[:80]}")
            print(f"{len(letters)} dead letter(s)")
        return 0
    if args.dlq_command == "show":
        letter = queues.show(args.message_id)
        print(
            json.dumps(
                {
                    "topic": letter.topic,
                    "message_id": letter.message_id,
                    "attributes": dict(letter.attributes),
                    "published_at": letter.published_at,
                    "error": letter.error,
                    "data": letter.data.decode("utf-8", errors="replace"),
                },
                indent=2,
            )
        )
        return 0
    if not args.all and not args.message_ids:
        print("facesearch dlq replay: name message ids or --all", file=sys.stderr)
        return 2
    replayed = queues.replay(None if args.all else args.message_ids)
    if system is not None:  # the embedded indexer applies them now
        system.flush()
    print(f"replayed {len(replayed)}: {' '.join(replayed)}")
    return 0


def add_ops_commands(commands: Any) -> None:
    doctor = commands.add_parser(
        "doctor", help="reconcile every index with the metadata store (--repair fixes)"
    )
    doctor.add_argument("--collection", help="one collection (default: every active one)")
    doctor.add_argument("--repair", action="store_true", help="queue / apply the repairs")
    doctor.add_argument("--json", action="store_true", help="machine-readable report")
    doctor.add_argument("--data-dir", type=Path, help="embedded state (FACESEARCH_DATA_DIR)")
    doctor.set_defaults(handler=cmd_doctor)

    dlq = commands.add_parser("dlq", help="dead letters: list, show, replay")
    sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="dead letters of every queue (left queued)")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one dead letter with its body")
    show.add_argument("message_id")
    replay = sub.add_parser("replay", help="back to the source topic (idempotent)")
    replay.add_argument("message_ids", nargs="*")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    for parser in (listing, show, replay):
        parser.add_argument("--data-dir", type=Path, help="embedded state (FACESEARCH_DATA_DIR)")
        parser.set_defaults(handler=cmd_dlq)


__all__ = ["DEFAULT_COLLECTION", "add_ops_commands", "cmd_dlq", "cmd_doctor"]
