"""Ingest: turn an uploaded image into face records, crops and published embeddings.

:mod:`.sources` (what an event points at and its stable id), :mod:`.service`
(the idempotent flow), :mod:`.factory` (wiring from settings), :mod:`.entry`
(CloudEvent / Pub/Sub push handler with the one ack-vs-retry mapping),
:mod:`.cli` (``facesearch ingest`` / ``search`` in embedded mode).
"""
