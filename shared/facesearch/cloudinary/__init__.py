"""Cloudinary webhook: verified, deduplicated, SSRF-safe ingestion of Cloudinary uploads.

:mod:`.signature` (X-Cld-Signature check), :mod:`.notifications` (what each
notification type means to us), :mod:`.delivery` (SDK-built bounded-size URLs and
the Cloudinary-only fetcher for ingest), :mod:`.ledger` (create-if-absent dedupe),
:mod:`.webhook` (the flow), :mod:`.factory` (wiring), :mod:`.entry` (HTTP + errors).
"""

from facesearch.cloudinary.delivery import cloudinary_fetcher, delivery_url
from facesearch.cloudinary.entry import handle_http
from facesearch.cloudinary.factory import build_webhook
from facesearch.cloudinary.webhook import CloudinaryWebhook, WebhookResult

__all__ = [
    "CloudinaryWebhook",
    "WebhookResult",
    "build_webhook",
    "cloudinary_fetcher",
    "delivery_url",
    "handle_http",
]
