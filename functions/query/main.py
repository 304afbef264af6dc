"""Cloud Run function ``query``: the signed query API over HTTP.

functions-framework hands us a Flask request (a werkzeug ``Request``); routing,
signature checks, validation and the one mapping of errors to problem+json
all live in :mod:`facesearch.api`. The app — models, index reader, Firestore
and key ring clients — is built once per instance, on the first request, so a
cold start that only answers ``/healthz`` probes stays cheap to import.
"""

from __future__ import annotations

import threading

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from facesearch.api import QueryApp, build_app
from facesearch.config import get_settings
from facesearch.logs import configure

_settings = get_settings()
configure(_settings.log_level, json_output=_settings.log_json)
_instance: dict[str, QueryApp] = {}
_lock = threading.Lock()


def _get_app() -> QueryApp:
    with _lock:
        if "app" not in _instance:
            _instance["app"] = build_app(_settings)
        return _instance["app"]


@functions_framework.http
def query(request: Request) -> Response:
    return _get_app().handle(request)
