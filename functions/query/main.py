"""Cloud Run function ``query``: the signed query API over HTTP.

functions-framework hands us a Flask request (a werkzeug ``Request``); routing,
signature checks, validation and the one mapping of errors to problem+json
all live in :mod:`facesearch.api`; with ``FACESEARCH_CONSOLE_MODE`` set, the web
console (:mod:`facesearch.console`) sits in front and passes every other path on.
The app — models, index reader, Firestore and key ring clients — is built once
per instance by the composition root (:mod:`facesearch.backends`), on the first
request, so a cold start that only answers ``/healthz`` probes stays cheap to import.
"""

from __future__ import annotations

import threading

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from facesearch.api.app import QueryApp
from facesearch.backends import backend_for
from facesearch.backends.services import console_app, query_app
from facesearch.config import get_settings
from facesearch.console.app import ConsoleApp
from facesearch.logs import configure_for
from facesearch.telemetry import configure as configure_telemetry
from facesearch.telemetry import request_scope

_settings = get_settings()
configure_for(_settings)
configure_telemetry(_settings, "query")  # FACESEARCH_TELEMETRY_*; off by default
_instance: dict[str, QueryApp | ConsoleApp] = {}
_lock = threading.Lock()


def _get_app() -> QueryApp | ConsoleApp:
    """The query API, behind the web console when FACESEARCH_CONSOLE_MODE is iam or iap."""
    with _lock:
        if "app" not in _instance:
            backend = backend_for(_settings)
            app = query_app(backend)
            _instance["app"] = app if _settings.console.mode == "off" else console_app(backend, app)
        return _instance["app"]


@functions_framework.http
def query(request: Request) -> Response:
    with request_scope():  # spans flushed before the answer (CPU throttled after)
        return _get_app().handle(request)
