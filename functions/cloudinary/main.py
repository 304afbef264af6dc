"""Cloud Run function ``cloudinary``: Cloudinary's upload/delete notifications in.

functions-framework hands us a Flask request. Verification, dedupe, queueing
and the one mapping of errors to HTTP status / problem+json live in
:mod:`facesearch.cloudinary`. The webhook (secret, Firestore and Pub/Sub
clients) is built once per instance, on the first request.
"""

from __future__ import annotations

import threading

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from facesearch.cloudinary import CloudinaryWebhook, build_webhook, handle_http
from facesearch.config import get_settings
from facesearch.logs import configure

_settings = get_settings()
configure(_settings.log_level, json_output=_settings.log_json)
_instance: dict[str, CloudinaryWebhook] = {}
_lock = threading.Lock()


def _get_webhook() -> CloudinaryWebhook:
    with _lock:
        if "webhook" not in _instance:
            _instance["webhook"] = build_webhook(_settings)
        return _instance["webhook"]


@functions_framework.http
def cloudinary(request: Request) -> Response:
    return handle_http(request, _get_webhook)
