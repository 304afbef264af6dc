"""``facesearch persons list|show|images|name|merge|split|reject|log|undo|recluster``.

Embedded by default (the SQLite store under ``--data-dir``, through the same
:class:`~facesearch.api.persons.PersonsService` the API uses, so answers are the API's
models); with ``--remote URL`` the same commands go to a query API (signed with the
client key). ``recluster`` runs where the data is: embedded, or with
``FACESEARCH_BACKEND=gcp`` on Firestore (what the Cloud Run Job does); it has no
``--remote`` form.

Exit codes: 0 fine, 2 bad input or usage (unknown person, refused correction, ...).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from facesearch.api.person_schemas import (
    CorrectionOut,
    CorrectionPage,
    PersonImagePage,
    PersonOut,
    PersonPage,
)
from facesearch.config import Settings, load_settings
from facesearch.storage.metadata import DEFAULT_COLLECTION


class PersonsApi(Protocol):
    """What the commands need; the embedded service and the HTTP client both provide it."""

    def persons(self, *, cursor: str | None, limit: int) -> PersonPage: ...
    def person(self, person_id: str) -> PersonOut: ...
    def person_images(
        self, person_id: str, *, cursor: str | None, limit: int
    ) -> PersonImagePage: ...
    def update_person(self, person_id: str, *, name: str | None) -> PersonOut: ...
    def merge_persons(self, person_id: str, others: list[str]) -> CorrectionOut: ...
    def split_person(
        self, person_id: str, face_ids: list[str], *, to_person: str | None, name: str | None
    ) -> CorrectionOut: ...
    def reject_face(self, person_id: str, face_id: str) -> CorrectionOut: ...
    def corrections(self, *, before: str | None, limit: int) -> CorrectionPage: ...
    def undo(self, correction_id: str) -> CorrectionOut: ...


class Embedded:
    """The embedded store's persons, with the client's method names."""

    def __init__(self, settings: Settings, collection_id: str) -> None:
        from facesearch.api.persons import PersonsService
        from facesearch.backends.local import LocalBackend
        from facesearch.backends.services import people_service

        backend = LocalBackend(settings)
        backend.collections().require_active(collection_id)
        self.service = PersonsService(
            people_service(backend, collection_id),
            backend.metadata(collection_id),
            backend.crop_urls(),
        )

    def persons(self, *, cursor: str | None, limit: int) -> PersonPage:
        return self.service.list_persons(cursor=cursor, limit=limit)

    def person(self, person_id: str) -> PersonOut:
        return self.service.get_person(person_id)

    def person_images(self, person_id: str, *, cursor: str | None, limit: int) -> PersonImagePage:
        return self.service.person_images(person_id, cursor=cursor, limit=limit)

    def update_person(self, person_id: str, *, name: str | None) -> PersonOut:
        return self.service.update_person(person_id, name=name, metadata=None)

    def merge_persons(self, person_id: str, others: list[str]) -> CorrectionOut:
        return self.service.merge(person_id, others)

    def split_person(
        self, person_id: str, face_ids: list[str], *, to_person: str | None, name: str | None
    ) -> CorrectionOut:
        return self.service.split(person_id, face_ids, to_person=to_person, name=name)

    def reject_face(self, person_id: str, face_id: str) -> CorrectionOut:
        return self.service.reject(person_id, face_id)

    def corrections(self, *, before: str | None, limit: int) -> CorrectionPage:
        return self.service.corrections(before=before, limit=limit)

    def undo(self, correction_id: str) -> CorrectionOut:
        return self.service.undo(correction_id)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    for name in ("client_key_id", "client_secret"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return load_settings(**overrides)


def _api(args: argparse.Namespace) -> PersonsApi:
    settings = _settings(args)
    if args.remote:
        from facesearch.client import Client

        collection = None if args.collection == DEFAULT_COLLECTION else args.collection
        return Client.from_settings(settings, url=args.remote, collection=collection)
    if settings.backend != "local":
        settings = settings.with_overrides(backend="local")
    return Embedded(settings, args.collection)


def _show(args: argparse.Namespace, out: BaseModel, text: str) -> int:
    print(out.model_dump_json(indent=2) if args.json else text)
    return 0


def _person_line(p: PersonOut) -> str:
    merged = f"  (+{len(p.merged)} merged)" if p.merged else ""
    return (
        f"{p.person_id}  {p.name or '-'}  {p.faces} face(s), {p.user_faces} user-assigned"
        f"  by {p.created_by}{merged}"
    )


def _correction_line(c: CorrectionOut) -> str:
    what = c.kind
    if c.kind == "name":
        what += f" {c.old_name!r} -> {c.new_name!r}"
    if c.merged:
        what += f" {','.join(c.merged)} into"
    moved = f", {len(c.faces)} face(s)" if c.faces else ""
    undone = f" (undone by {c.undone_by})" if c.undone_by else ""
    return f"{c.correction_id}  {c.actor}  {what} {c.person_id or ''}{moved}{undone}".rstrip()


def cmd_list(args: argparse.Namespace) -> int:
    page = _api(args).persons(cursor=args.cursor, limit=args.limit)
    lines = [_person_line(p) for p in page.items]
    if page.next_cursor:
        lines.append(f"more: --cursor {page.next_cursor}")
    return _show(args, page, "\n".join(lines) or "no persons")


def cmd_show(args: argparse.Namespace) -> int:
    person = _api(args).person(args.person_id)
    seen = (
        f"first seen {person.first_seen:.0f}, last seen {person.last_seen:.0f}"
        if person.first_seen is not None and person.last_seen is not None
        else "not seen"
    )
    return _show(args, person, f"{_person_line(person)}\n  cover {person.cover_face_id}, {seen}")


def cmd_images(args: argparse.Namespace) -> int:
    page = _api(args).person_images(args.person_id, cursor=args.cursor, limit=args.limit)
    lines = [f"{i.image_id}  faces {', '.join(f.face_id for f in i.faces)}" for i in page.items]
    if page.next_cursor:
        lines.append(f"more: --cursor {page.next_cursor}")
    return _show(args, page, "\n".join(lines) or "no images")


def cmd_name(args: argparse.Namespace) -> int:
    person = _api(args).update_person(args.person_id, name=args.name)
    return _show(args, person, _person_line(person))


def cmd_merge(args: argparse.Namespace) -> int:
    entry = _api(args).merge_persons(args.person_id, args.others)
    return _show(args, entry, _correction_line(entry))


def cmd_split(args: argparse.Namespace) -> int:
    entry = _api(args).split_person(
        args.person_id, args.face_ids, to_person=args.to_person, name=args.name
    )
    return _show(args, entry, _correction_line(entry))


def cmd_reject(args: argparse.Namespace) -> int:
    entry = _api(args).reject_face(args.person_id, args.face_id)
    return _show(args, entry, _correction_line(entry))


def cmd_log(args: argparse.Namespace) -> int:
    page = _api(args).corrections(before=args.before, limit=args.limit)
    lines = [_correction_line(c) for c in page.items]
    return _show(args, page, "\n".join(lines) or "no corrections")


def cmd_undo(args: argparse.Namespace) -> int:
    entry = _api(args).undo(args.correction_id)
    return _show(args, entry, _correction_line(entry))


def cmd_recluster(args: argparse.Namespace) -> int:
    from facesearch.backends import backend_for
    from facesearch.people.jobs import active_collections, recluster_collection, report_dict

    settings = _settings(args)
    backend = backend_for(settings)
    targets = active_collections(backend) if args.all else [args.collection]
    for collection_id in targets:
        report = recluster_collection(backend, collection_id)
        if args.json:
            print(json.dumps(report_dict(collection_id, report)))
        else:
            print(
                f"{collection_id}: {report.faces} faces, persons {report.persons_before} -> "
                f"{report.persons_after} ({report.kept_ids} ids kept, {report.new_ids} new, "
                f"{report.retired_ids} retired), {report.faces_rewritten} face records rewritten, "
                f"{report.unassigned} unassigned, {sum(report.seconds.values()):.1f}s"
            )
    return 0


def add_person_commands(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "persons",
        help="persons found by clustering: list, show, name, merge, split, reject, undo",
        description="Embedded by default (the store under --data-dir); with --remote URL the"
        " same commands go to a query API. Corrections are logged and undoable (persons log,"
        " persons undo). recluster re-clusters from the stored faces, keeping ids and names.",
    )
    commands = group.add_subparsers(dest="persons_command", metavar="ACTION", required=True)
    subs: list[argparse.ArgumentParser] = []

    def sub(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.set_defaults(handler=handler)
        subs.append(parser)
        return parser

    listing = sub("list", "persons with face counts, a page at a time", cmd_list)
    listing.add_argument("--cursor", help="next_cursor of the previous page")
    listing.add_argument("--limit", type=int, default=100)

    sub("show", "one person: counts, cover, first/last seen", cmd_show).add_argument("person_id")

    images = sub("images", 'every image of a person ("every photo of me")', cmd_images)
    images.add_argument("person_id")
    images.add_argument("--cursor", help="next_cursor of the previous page")
    images.add_argument("--limit", type=int, default=100)

    name = sub("name", "name (or rename) a person", cmd_name)
    name.add_argument("person_id")
    name.add_argument("name")

    merge = sub("merge", "merge other persons into this one", cmd_merge)
    merge.add_argument("person_id", help="the person that stays")
    merge.add_argument("others", nargs="+", help="persons merged into it")

    split = sub("split", "move chosen faces to a new person (or --to another)", cmd_split)
    split.add_argument("person_id")
    split.add_argument("face_ids", nargs="+")
    split.add_argument("--to", dest="to_person", help="an existing person to move them to")
    split.add_argument("--name", help="name of the new person")

    reject = sub("reject", "this face is not this person (remembered)", cmd_reject)
    reject.add_argument("person_id")
    reject.add_argument("face_id")

    log = sub("log", "the correction log, newest first", cmd_log)
    log.add_argument("--before", help="next_cursor of the previous page")
    log.add_argument("--limit", type=int, default=50)

    sub("undo", "undo a recent correction", cmd_undo).add_argument("correction_id")

    recluster = sub(
        "recluster", "re-cluster from the stored faces (ids, names kept)", cmd_recluster
    )
    recluster.add_argument("--all", action="store_true", help="every active collection")

    for parser in subs:
        parser.add_argument(
            "--collection",
            default=DEFAULT_COLLECTION,
            help="the collection (default: default)",
        )
        parser.add_argument("--data-dir", type=Path, help="embedded state (FACESEARCH_DATA_DIR)")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        if parser is not recluster:
            parser.add_argument("--remote", help="query API base URL instead of the local store")
            parser.add_argument("--key-id", dest="client_key_id", help="FACESEARCH_CLIENT_KEY_ID")
            parser.add_argument("--secret", dest="client_secret", help="FACESEARCH_CLIENT_SECRET")
