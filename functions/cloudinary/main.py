"""Cloud Run function ``cloudinary``: Cloudinary's upload/delete notifications in.

functions-framework hands us a Flask request. Verification, dedupe, queueing
and the one mapping of errors to HTTP status / problem+json live in
:mod:`facesearch.cloudinary`. The webhook (secret, Firestore and Pub/Sub
clients) is built once per instance by the composition root
(:mod:`facesearch.backends`), on the first request.
"""

from __future__ import annotations

import threading

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from facesearch.backends import backend_for
from facesearch.backends.services import cloudinary_webhook
from facesearch.cloudinary.entry import handle_http
from facesearch.cloudinary.webhook import CloudinaryWebhook
from facesearch.config import get_settings
from facesearch.logs import configure_for
from facesearch.telemetry import configure as configure_telemetry
from facesearch.telemetry import request_scope

_settings = get_settings()
configure_for(_settings)
configure_telemetry(_settings, "cloudinary")  # FACESEARCH_TELEMETRY_*; off by default
_instance: dict[str, CloudinaryWebhook] = {}
_lock = threading.Lock()


def _get_webhook() -> CloudinaryWebhook:
    with _lock:
        if "webhook" not in _instance:
            _instance["webhook"] = cloudinary_webhook(backend_for(_settings))
        return _instance["webhook"]


@functions_framework.http
def cloudinary(request: Request) -> Response:
    with request_scope():  # spans flushed before the answer (CPU throttled after)
        return handle_http(request, _get_webhook)
