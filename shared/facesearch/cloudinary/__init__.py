"""Cloudinary webhook: verified, deduplicated, SSRF-safe ingestion of Cloudinary uploads.

:mod:`.signature` (X-Cld-Signature check), :mod:`.notifications` (what each
notification type means to us), :mod:`.delivery` (SDK-built bounded-size URLs and
the Cloudinary-only fetcher for ingest), :mod:`.ledger` (create-if-absent dedupe),
:mod:`.webhook` (the flow), :mod:`.entry` (HTTP + errors); wiring lives in
:mod:`facesearch.backends.services`.
Exports load lazily (:mod:`facesearch.lazy`).
"""

from typing import TYPE_CHECKING

from facesearch.lazy import lazy_exports

if TYPE_CHECKING:
    from facesearch.cloudinary.delivery import cloudinary_fetcher, delivery_url
    from facesearch.cloudinary.entry import handle_http
    from facesearch.cloudinary.webhook import CloudinaryWebhook, WebhookResult

_EXPORTS = {
    "cloudinary_fetcher": "facesearch.cloudinary.delivery",
    "delivery_url": "facesearch.cloudinary.delivery",
    "handle_http": "facesearch.cloudinary.entry",
    "CloudinaryWebhook": "facesearch.cloudinary.webhook",
    "WebhookResult": "facesearch.cloudinary.webhook",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = [
    "CloudinaryWebhook",
    "WebhookResult",
    "cloudinary_fetcher",
    "delivery_url",
    "handle_http",
]
