"""CLI subcommands of the query API: ``sign``, ``serve``, ``remote-search``, ``match --remote``.

Registered by :func:`add_api_commands` from ``facesearch.cli``. Every option
has a ``FACESEARCH_*`` twin (flag > environment > default): the client key
comes from ``--key-id``/``--secret`` or FACESEARCH_CLIENT_KEY_ID /
FACESEARCH_CLIENT_SECRET, or the only key in FACESEARCH_SIGNING_KEYS.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from facesearch.api.serving import SERVERS
from facesearch.config import Settings, load_settings
from facesearch.storage.metadata import DEFAULT_COLLECTION

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("client_key_id", "client_secret", "client_url"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return load_settings(**overrides)


def _add_collection_option(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"{prefix}the collection to ask (default 'default')",
    )


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-id", dest="client_key_id", help="FACESEARCH_CLIENT_KEY_ID")
    parser.add_argument("--secret", dest="client_secret", help="FACESEARCH_CLIENT_SECRET")


# --- sign -------------------------------------------------------------------------------------


def cmd_sign(args: argparse.Namespace) -> int:
    """Print the signature headers for one request (or a ready curl command)."""
    from facesearch.auth import sign_request
    from facesearch.client import client_key_from_settings

    key = client_key_from_settings(_settings(args))
    body = b""
    if args.data_file:
        body = (
            sys.stdin.buffer.read() if args.data_file == "-" else Path(args.data_file).read_bytes()
        )
    headers = sign_request(key, args.method.upper(), args.url, body)
    if args.json:
        print(json.dumps(headers, indent=2))
    elif args.curl:
        parts = ["curl", "-sS", "-X", args.method.upper()]
        for name, value in headers.items():
            parts += ["-H", f"{name}: {value}"]
        if args.content_type:
            parts += ["-H", f"Content-Type: {args.content_type}"]
        if args.data_file:
            parts += ["--data-binary", f"@{args.data_file}"]
        parts.append(args.url)
        print(shlex.join(parts))
    else:
        for name, value in headers.items():
            print(f"{name}: {value}")
    return 0


# --- serve ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the query API on localhost on a production WSGI server (``--server``)."""
    import os

    from facesearch.api.serving import PRE_FORK, default_threads, serve
    from facesearch.logs import configure_for
    from facesearch.telemetry import configure as configure_telemetry

    overrides: dict[str, Any] = {}
    for name in ("serve_server", "serve_workers", "serve_threads"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    settings = load_settings(**overrides)
    if not settings.api.public_url:  # links point at where we listen, not at a Host header
        public_url = f"http://{args.host}:{args.port}"
        settings = settings.with_overrides(public_url=public_url)
        # pre-forked workers inherit these settings; an env var covers re-imports too
        os.environ["FACESEARCH_PUBLIC_URL"] = public_url
    if settings.telemetry.metrics == "off":  # a local server exposes GET /metrics
        settings = settings.with_overrides(telemetry_metrics="prometheus")
    api = settings.api
    if args.console:
        if api.serve_server in PRE_FORK:
            print(
                f"facesearch serve: --console needs one process (--server waitress or werkzeug),"
                f" not {api.serve_server}",
                file=sys.stderr,
            )
            return 2
        settings = settings.with_overrides(console_mode="local")
    configure_for(settings)
    configure_telemetry(settings, "serve")
    if not api.signing_keys and not api.signing_keys_secret:
        print(
            'facesearch serve: no signing keys (set FACESEARCH_SIGNING_KEYS=\'{"id": "secret"}\')'
            "; every signed route will answer 403",
            file=sys.stderr,
        )
    threads = api.serve_threads or default_threads()
    wsgi: Any = None
    console = None
    where = f"http://{args.host}:{args.port}"
    if api.serve_server not in PRE_FORK:  # one process: build the app here, before listening
        from facesearch.backends import backend_for
        from facesearch.backends.services import query_app

        backend = backend_for(settings)
        app = query_app(backend)
        health = app.service.operations.health()
        where += f" ({health.status}, {health.index_faces or 0} faces indexed)"
        wsgi = app
        if args.console:
            from facesearch.backends.services import console_app

            console = wsgi = console_app(backend, app)
    print(
        f"facesearch query API on {where}: {api.serve_server}, {api.serve_workers} worker(s)"
        f" x {threads} threads",
        file=sys.stderr,
    )
    if console is not None:
        print(
            "web console: open this one-time link within "
            f"{settings.console.login_link_ttl_s} s (it works once):\n  {console.login_url()}",
            file=sys.stderr,
        )
    serve(
        api.serve_server,
        host=args.host,
        port=args.port,
        workers=api.serve_workers,
        threads=threads,
        app=wsgi,
        settings=settings,
        max_connections=api.serve_max_connections,
    )
    return 0


# --- remote search / match ---------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from facesearch.client import Client

    collection = getattr(args, "collection", None)
    return Client.from_settings(
        _settings(args),
        url=args.remote,
        collection=None if collection == DEFAULT_COLLECTION else collection,
    )


def cmd_remote_search(args: argparse.Namespace) -> int:
    client = _client(args)
    params = {
        "k": getattr(args, "k", None) or getattr(args, "top", None),
        "threshold": getattr(args, "threshold", None),
        "min_liveness": getattr(args, "min_liveness", None),
        "min_quality": getattr(args, "min_quality", None),
        "face_index": getattr(args, "face_index", None),
    }
    image = str(args.image)
    if image.startswith("https://"):
        result = client.search_url(image, **params)
    else:
        result = client.search_image(Path(image).read_bytes(), **params)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    print(
        f"{args.image}: {len(result.faces)} face(s), index {result.index_size} faces, "
        f"threshold {result.threshold:.4f}, model {result.model}"
    )
    for face in result.faces:
        box = " ".join(f"{v:.0f}" for v in face.bbox or [])
        print(
            f"face #{face.face_index} [{box}]"
            + (f" skipped: {face.skipped}" if face.skipped else "")
        )
        for match in face.matches:
            label = match.person_name or match.person_id or "-"
            print(f"  {match.similarity:.4f}  {match.face_id}  image {match.image_id}  {label}")
    return 0


def _remote_match(args: argparse.Namespace) -> int:
    client = _client(args)
    verdict = client.match(
        Path(args.image_a).read_bytes(),
        Path(args.image_b).read_bytes(),
        face_a=args.face_a,
        face_b=args.face_b,
        largest=args.largest,
        threshold=args.match_threshold,
    )
    if args.json:
        print(verdict.model_dump_json(indent=2))
    else:
        answer = "SAME person" if verdict.same_person else "DIFFERENT people"
        print(
            f"{answer}: similarity {verdict.similarity:.4f} "
            f"(threshold {verdict.threshold:.4f}, model {verdict.model})"
        )
    return 0 if verdict.same_person else 1


def _add_remote_mode(commands: Any, name: str, remote: Any) -> None:
    """``facesearch match A B --remote URL`` / ``search IMAGE --remote URL``: the same
    command answered by a query API; without --remote the local handler runs unchanged."""
    parser = commands.choices.get(name)
    if parser is None:
        return
    local = parser.get_default("handler")
    parser.add_argument(
        "--remote", help="base URL of a query API to ask instead of running locally"
    )
    if not any("--collection" in action.option_strings for action in parser._actions):
        _add_collection_option(parser, "with --remote: ")
    _add_key_options(parser)

    def handler(args: argparse.Namespace) -> int:
        if args.remote:
            return int(remote(args))
        return int(local(args))

    parser.set_defaults(handler=handler)


def add_api_commands(commands: Any) -> None:
    sign = commands.add_parser("sign", help="signature headers for a query API request")
    sign.add_argument("method", help="HTTP method, e.g. GET or POST")
    sign.add_argument("url", help="full URL or path with query string")
    sign.add_argument("--data-file", help="the exact request body ('-' = stdin)")
    sign.add_argument("--content-type", help="with --curl: the body's Content-Type")
    output = sign.add_mutually_exclusive_group()
    output.add_argument("--curl", action="store_true", help="print a complete curl command")
    output.add_argument("--json", action="store_true", help="headers as a JSON object")
    _add_key_options(sign)
    sign.set_defaults(handler=cmd_sign)

    serve = commands.add_parser("serve", help="run the signed query API on localhost")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"bind address ({DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    serve.add_argument(
        "--console",
        action="store_true",
        help="also serve the web console; prints a one-time login link",
    )
    serve.add_argument(
        "--server",
        dest="serve_server",
        choices=SERVERS,
        help="HTTP server (FACESEARCH_SERVE_SERVER; default waitress, see docs/api.md)",
    )
    serve.add_argument(
        "--workers",
        dest="serve_workers",
        type=int,
        help="worker processes (FACESEARCH_SERVE_WORKERS)",
    )
    serve.add_argument(
        "--threads",
        dest="serve_threads",
        type=int,
        help="threads per worker (FACESEARCH_SERVE_THREADS; default 4 per CPU)",
    )
    serve.set_defaults(handler=cmd_serve)

    search = commands.add_parser(
        "remote-search", help="search a deployed (or served) collection with an image"
    )
    search.add_argument("image", help="image file, or an https URL on the API's allow-list")
    search.add_argument("--remote", help="query API base URL (FACESEARCH_CLIENT_URL)")
    search.add_argument("--k", type=int, help="matches per face")
    search.add_argument("--threshold", type=float, help="minimum similarity")
    search.add_argument("--min-liveness", type=float)
    search.add_argument("--min-quality", type=float)
    search.add_argument("--face-index", type=int, help="search only this face")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    _add_collection_option(search)
    _add_key_options(search)
    search.set_defaults(handler=cmd_remote_search)

    _add_remote_mode(commands, "match", _remote_match)
    _add_remote_mode(commands, "search", cmd_remote_search)
