"""Cloudinary webhook: verified, deduplicated, SSRF-safe ingestion of Cloudinary uploads.

:mod:`.signature` (X-Cld-Signature check), :mod:`.notifications` (what each
notification type means to us), :mod:`.delivery` (SDK-built bounded-size URLs and
the Cloudinary-only fetcher for ingest), :mod:`.webhook` (the flow), :mod:`.entry`
(HTTP + errors); the ledger lives with the other adapters in
:mod:`facesearch.storage`, the wiring in :mod:`facesearch.backends.services`.
"""
